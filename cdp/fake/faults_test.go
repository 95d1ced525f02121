package fake_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp/fake"
)

var okBody = batch(trackCall("u1", "e", "m1"))

func TestFaults_FailNextFailsExactlyNRequests(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Faults: fake.Faults{FailNext: 2, FailStatus: http.StatusBadGateway}})
	require.Equal(t, 2, srv.Faults().FailNext)
	for range 2 {
		require.Equal(t, http.StatusBadGateway, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
	}
	require.Zero(t, srv.Faults().FailNext, "Faults reports what is left")
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
	require.NoError(t, srv.SetFaults(fake.Faults{FailNext: 1}))
	a := send(t, srv, req{path: "/v1/batch", body: okBody})
	require.Equal(t, fake.DefaultFailStatus, a.Status)
	require.Equal(t, fake.FaultFailNext, srv.Requests()[3].Fault)
	require.Equal(t, http.StatusUnauthorized, send(t, srv, req{path: "/v1/batch", body: okBody, key: "-"}).Status,
		"FailNext counts only authenticated requests")
	l := srv.Ledger()
	require.Equal(t, int64(3), l.ServerErrors)
	require.Equal(t, int64(1), l.UniqueCalls)
}

func TestFaults_DownUnauthorizedStormAndErrorRate(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Seed: 42})
	tests := []struct {
		name       string
		faults     fake.Faults
		wantStatus int
		wantFault  string
	}{
		{"Down", fake.Faults{Down: true}, http.StatusServiceUnavailable, fake.FaultDown},
		{"DownStatus", fake.Faults{Down: true, DownStatus: 502}, 502, fake.FaultDown},
		{"Unauthorized", fake.Faults{Unauthorized: true}, http.StatusUnauthorized, fake.FaultUnauthorized},
		{"Storm429", fake.Faults{Storm429: true}, http.StatusTooManyRequests, fake.FaultStorm429},
		{"ErrorRate", fake.Faults{ErrorRate: 1, ErrorStatuses: []int{504}}, 504, fake.FaultErrorRate},
	}
	for _, tt := range tests {
		require.NoError(t, srv.SetFaults(tt.faults))
		a := send(t, srv, req{path: "/v1/batch", body: okBody})
		require.Equal(t, tt.wantStatus, a.Status, tt.name)
		reqs := srv.Requests()
		require.Equal(t, tt.wantFault, reqs[len(reqs)-1].Fault, tt.name)
	}
	require.Zero(t, srv.Ledger().CallsAccepted)
	require.NoError(t, srv.SetFaults(fake.Faults{}))
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
}

func TestFaults_ErrorRateIsAFraction(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Seed: 7, Faults: fake.Faults{ErrorRate: 0.5}})
	fails := 0
	for i := range 200 {
		a := send(t, srv, req{path: "/v1/track", body: `{"userId":"u1","event":"e","messageId":"` + string(rune('a'+i%26)) + `"}`})
		if a.Status >= 500 {
			fails++
		}
	}
	require.InDelta(t, 100, fails, 30)
	require.Equal(t, int64(fails), srv.Ledger().ServerErrors)
}

func TestFaults_LatencyAndClosedConnectionsAcceptNothing(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Faults: fake.Faults{Latency: time.Minute}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := trySend(ctx, srv, req{path: "/v1/batch", body: okBody})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return srv.Ledger().Canceled == 1 }, 10*time.Second, 5*time.Millisecond)

	require.NoError(t, srv.SetFaults(fake.Faults{Latency: 20 * time.Millisecond}))
	start := time.Now()
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)

	require.NoError(t, srv.SetFaults(fake.Faults{CloseConnection: 1}))
	_, err = trySend(context.Background(), srv, req{path: "/v1/batch", body: batch(trackCall("u1", "x", "m9"))})
	require.Error(t, err)
	l := srv.Ledger()
	require.Equal(t, int64(1), l.Closed)
	require.Equal(t, int64(1), l.CallsAccepted, "only the request that got its answer counts")
}

func TestFaults_RejectAttributeRefusesPoisonCalls(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Faults: fake.Faults{RejectAttribute: "poison"}})
	a := send(t, srv, req{path: "/v1/batch", body: batch(
		trackCall("u1", "ok", "m1"),
		`{"type":"track","userId":"u1","event":"e","properties":{"poison":1}}`,
		`{"type":"identify","userId":"u1","traits":{"poison":1}}`,
	)})
	require.Equal(t, http.StatusBadRequest, a.Status)
	require.Equal(t, []string{
		"batch[1].properties.poison: rejected by the fake's reject_attribute fault",
		"batch[2].traits.poison: rejected by the fake's reject_attribute fault",
	}, errorsOf(t, a.Body))
	require.Equal(t, fake.FaultRejectAttribute, srv.Requests()[0].Fault)
	a = send(t, srv, req{path: "/v1/identify", body: `{"userId":"u1","traits":{"poison":1}}`, permissive: true})
	require.Equal(t, http.StatusOK, a.Status)
	l := srv.Ledger()
	require.Zero(t, l.CallsAccepted)
	require.Equal(t, int64(3), l.CallsRejected)
	require.Equal(t, int64(1), l.CallsDropped)
}

func TestFaults_RejectsWhatItCannotHonour(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	for _, f := range []fake.Faults{
		{ErrorRate: 1.5}, {CloseConnection: -1}, {Latency: -time.Second}, {FailNext: -1},
		{RateLimit: fake.Rate(-1)}, {DownStatus: 42}, {FailStatus: 1000}, {ErrorStatuses: []int{0}},
	} {
		require.Error(t, srv.SetFaults(f), "%+v", f)
	}
	_, err := fake.New(fake.Options{RateLimit: -1})
	require.Error(t, err)
	_, err = fake.New(fake.Options{Burst: -1})
	require.Error(t, err)
	require.Panics(t, func() { fake.NewServer(fake.Options{Faults: fake.Faults{ErrorRate: 2}}) })
}

func TestFaults_JSONCarriesLatencyAsADuration(t *testing.T) {
	t.Parallel()
	in := fake.Faults{Latency: 250 * time.Millisecond, FailNext: 3, RateLimit: fake.Rate(5), AcceptValidOnReject: true}
	b, err := in.MarshalJSON()
	require.NoError(t, err)
	require.JSONEq(t, `{"latency":"250ms","fail_next":3,"rate_limit":5,"accept_valid_on_reject":true}`, string(b))
	var out fake.Faults
	require.NoError(t, out.UnmarshalJSON(b))
	require.Equal(t, in, out)
	require.NoError(t, out.UnmarshalJSON([]byte(`{"latency":1000}`)))
	require.Equal(t, time.Microsecond, out.Latency)
	for _, bad := range []string{`{"latency":"soon"}`, `{"latency":true}`, `{"nope":1}`, `{} {}`} {
		require.Error(t, out.UnmarshalJSON([]byte(bad)), bad)
	}
}
