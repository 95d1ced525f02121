package fake_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	body := func(t testing.TB) []byte { return batch(t, identify("u1", map[string]any{"plan": "pro"})) }

	t.Run("DownAnswersDownStatusToEverything", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{Down: true, DownStatus: http.StatusBadGateway}})
		for _, path := range []string{"/api/v2/batch", "/api/v2/nothing"} {
			got := send(t, srv, good, http.MethodPost, path, body(t))
			require.Equal(t, http.StatusBadGateway, got.Status)
			errorMessage(t, got.Body)
		}
		l := srv.Ledger()
		require.EqualValues(t, 2, l.ServerErrors)
		require.Zero(t, l.OpsAccepted)
		require.Equal(t, fake.FaultDown, srv.Requests()[0].Fault)
	})
	t.Run("DownDefaultsTo503", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		require.NoError(t, srv.SetFaults(fake.Faults{Down: true}))
		require.Equal(t, http.StatusServiceUnavailable, send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t)).Status)
		require.NoError(t, srv.SetFaults(fake.Faults{}))
		require.Equal(t, http.StatusOK, send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t)).Status)
	})
	t.Run("ErrorRateIsRoughlyHonoured", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Seed: 42, Faults: fake.Faults{ErrorRate: 0.3}})
		const n = 400
		statuses := map[int]int{}
		for range n {
			statuses[send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t)).Status]++
		}
		failed := n - statuses[http.StatusOK]
		require.InDelta(t, 0.3*n, failed, 0.1*n, "statuses %v", statuses)
		for s := range statuses {
			require.True(t, s == http.StatusOK || slices.Contains(fake.DefaultErrorStatuses(), s), "status %d", s)
		}
		l := srv.Ledger()
		require.EqualValues(t, failed, l.ServerErrors)
		require.EqualValues(t, statuses[http.StatusOK], l.OpsAccepted)
	})
	t.Run("ErrorStatusesAreUsed", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{ErrorRate: 1, ErrorStatuses: []int{http.StatusGatewayTimeout}}})
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t))
		require.Equal(t, http.StatusGatewayTimeout, got.Status)
		require.Equal(t, fake.FaultErrorRate, srv.Requests()[0].Fault)
	})
	t.Run("LatencyDelaysTheAnswer", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{Latency: 50 * time.Millisecond}})
		began := time.Now()
		require.Equal(t, http.StatusOK, send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t)).Status)
		require.GreaterOrEqual(t, time.Since(began), 50*time.Millisecond)
	})
	t.Run("LatencyRespectsTheRequestContext", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{Latency: time.Hour}})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := trySend(ctx, srv, good, http.MethodPost, "/api/v2/batch", body(t))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Eventually(t, func() bool { return srv.Ledger().Canceled == 1 }, 10*time.Second, 5*time.Millisecond)
		l := srv.Ledger()
		require.Zero(t, l.OpsAccepted)
		require.Zero(t, l.Accepted)
		require.Equal(t, fake.FaultLatency, srv.Requests()[0].Fault)
	})
	t.Run("CloseEndsRequestsHeldByLatency", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{})
		var once sync.Once
		now := func() time.Time { once.Do(func() { close(arrived) }); return time.Now() }
		srv := fake.NewServer(fake.Options{Now: now, Faults: fake.Faults{Latency: time.Hour}})
		errc := make(chan error, 1)
		go func() {
			_, err := trySend(context.Background(), srv, good, http.MethodPost, "/api/v2/batch", body(t))
			errc <- err
		}()
		<-arrived // the request is in the handler, held by Latency
		srv.Close()
		require.Error(t, <-errc)
		require.EqualValues(t, 1, srv.Ledger().Canceled)
	})
	t.Run("Storm429AnswersBare429", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{Storm429: true}})
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t))
		require.Equal(t, http.StatusTooManyRequests, got.Status)
		require.Empty(t, got.Body)
		require.Empty(t, got.Header.Get("Retry-After"))
		l := srv.Ledger()
		require.EqualValues(t, 1, l.RateLimited)
		require.Zero(t, l.OpsAccepted)
		require.Equal(t, fake.FaultStorm429, srv.Requests()[0].Fault)
	})
	t.Run("Storm429CarriesRetryAfterWhenAsked", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{RetryAfter: true, Faults: fake.Faults{Storm429: true}})
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t))
		require.Equal(t, http.StatusTooManyRequests, got.Status)
		require.Equal(t, "1", got.Header.Get("Retry-After"))
	})
	t.Run("CloseConnectionGivesNoAnswer", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{CloseConnection: 1}})
		_, err := trySend(context.Background(), srv, good, http.MethodPost, "/api/v2/batch", body(t))
		require.Error(t, err)
		require.False(t, errors.Is(err, context.DeadlineExceeded))
		l := srv.Ledger()
		require.EqualValues(t, 1, l.Closed)
		require.Zero(t, l.OpsAccepted)
		require.Equal(t, fake.FaultCloseConnection, srv.Requests()[0].Fault)
		require.Zero(t, srv.Requests()[0].Status)
	})
	t.Run("CloseConnectionFractionIsRoughlyHonoured", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Seed: 7, Faults: fake.Faults{CloseConnection: 0.5}})
		const n = 200
		failed := 0
		for range n {
			if _, err := trySend(context.Background(), srv, good, http.MethodPost, "/api/v2/batch", body(t)); err != nil {
				failed++
			}
		}
		require.InDelta(t, 0.5*n, failed, 0.15*n)
		l := srv.Ledger()
		require.EqualValues(t, failed, l.Closed)
		require.EqualValues(t, n-failed, l.OpsAccepted)
	})
	t.Run("UnauthorizedAnswers401ToEverything", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{Unauthorized: true}})
		for _, path := range []string{"/api/v2/batch", "/api/v1/customers/u1/suppress", "/api/v2/nothing"} {
			got := send(t, srv, good, http.MethodPost, path, body(t))
			require.Equal(t, http.StatusUnauthorized, got.Status, path)
			errorMessage(t, got.Body)
		}
		require.EqualValues(t, 3, srv.Ledger().ClientErrors)
		require.Equal(t, fake.FaultUnauthorized, srv.Requests()[0].Fault)
	})
	t.Run("RejectAttributeMakesPoisonOpsBatchIndexErrors", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{RejectAttribute: "poison"}})
		ops := batch(t, identify("u1", nil), event("u2", "bought", ulid1, map[string]any{"poison": true}), identify("u3", map[string]any{"ok": 1}))
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", ops)
		require.Equal(t, http.StatusMultiStatus, got.Status)
		require.Equal(t, []track.ItemError{{Index: 1, Reason: fake.ReasonRejected, Field: "attributes.poison",
			Message: "rejected by the fake's reject_attribute fault"}}, batchErrors(t, got.Body))
		l := srv.Ledger()
		require.EqualValues(t, 2, l.OpsAccepted)
		require.EqualValues(t, 1, l.OpsRejected)
		require.Equal(t, fake.FaultRejectAttribute, srv.Requests()[0].Fault)
	})
	t.Run("RejectAttributeRefusesSingleOpCalls", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{RejectAttribute: "poison"}})
		got := send(t, srv, good, http.MethodPut, "/api/v1/customers/u1", []byte(`{"poison":1}`))
		require.Equal(t, http.StatusBadRequest, got.Status)
		require.Contains(t, errorMessage(t, got.Body), "attributes.poison")
		got = send(t, srv, good, http.MethodPost, "/api/v2/entity", mustJSON(t, identify("u1", map[string]any{"poison": 1})))
		require.Equal(t, http.StatusBadRequest, got.Status)
		require.Zero(t, srv.Ledger().OpsAccepted)
		require.EqualValues(t, 2, srv.Ledger().OpsRejected)
	})
	t.Run("SetFaultsRefusesWhatItCannotHonour", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		for _, f := range []fake.Faults{
			{ErrorRate: 1.5}, {CloseConnection: -0.1}, {Latency: -time.Second},
			{RateLimit: fake.Rate(-1)}, {DownStatus: 42}, {ErrorStatuses: []int{1000}},
		} {
			require.Error(t, srv.SetFaults(f), "%+v", f)
		}
		require.Equal(t, fake.Faults{}, srv.Faults())
		_, err := fake.New(fake.Options{Faults: fake.Faults{ErrorRate: 2}})
		require.Error(t, err)
	})
}
