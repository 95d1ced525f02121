package fake_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track/fake"
)

// control calls the control API without auth.
func control(t testing.TB, base, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func TestControlAPI(t *testing.T) {
	t.Parallel()

	t.Run("LedgerIsServedAsJSON", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Now: newClock().Now})
		send(t, srv, good, http.MethodPost, "/api/v2/batch", batch(t, identify("u1", nil), event("u1", "buy", ulid1, nil)))
		got := control(t, srv.URL, http.MethodGet, "/_fake/ledger", "")
		require.Equal(t, http.StatusOK, got.Status)
		var l fake.Ledger
		require.NoError(t, json.Unmarshal(got.Body, &l))
		want := srv.Ledger()
		if diff := cmp.Diff(want, l, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Fatalf("ledger (-want +got):\n%s", diff)
		}
		require.EqualValues(t, 2, l.OpsAccepted)
		require.Contains(t, string(got.Body), `"ops_accepted":2`)
		require.Contains(t, string(got.Body), `"per_workspace":{"site-1":`)
	})
	t.Run("FaultsRoundTrip", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		got := control(t, srv.URL, http.MethodPut, "/_fake/faults",
			`{"down":true,"down_status":502,"error_rate":0.25,"error_statuses":[500],"latency":"250ms","storm_429":true,`+
				`"rate_limit":20,"close_connection":0.1,"reject_attribute":"poison","unauthorized":true}`)
		require.Equal(t, http.StatusOK, got.Status, "body %s", got.Body)
		want := fake.Faults{Down: true, DownStatus: 502, ErrorRate: 0.25, ErrorStatuses: []int{500}, Latency: 250 * time.Millisecond,
			Storm429: true, RateLimit: fake.Rate(20), CloseConnection: 0.1, RejectAttribute: "poison", Unauthorized: true}
		if diff := cmp.Diff(want, srv.Faults()); diff != "" {
			t.Fatalf("faults (-want +got):\n%s", diff)
		}
		var echoed fake.Faults
		require.NoError(t, json.Unmarshal(got.Body, &echoed))
		require.Equal(t, want, echoed)

		got = control(t, srv.URL, http.MethodGet, "/_fake/faults", "")
		require.Equal(t, http.StatusOK, got.Status)
		require.Contains(t, string(got.Body), `"latency":"250ms"`)

		require.Equal(t, http.StatusOK, control(t, srv.URL, http.MethodPut, "/_fake/faults", `{"latency":1000000}`).Status)
		require.Equal(t, fake.Faults{Latency: time.Millisecond}, srv.Faults(), "PUT replaces every fault")
		require.Equal(t, http.StatusOK, control(t, srv.URL, http.MethodPut, "/_fake/faults", `{}`).Status)
		require.Equal(t, fake.Faults{}, srv.Faults())
	})
	t.Run("BadFaultsAreRefused", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		for _, body := range []string{`{"error_rate":2}`, `{"colour":1}`, `{"latency":"soon"}`, `{"latency":true}`, `{`} {
			got := control(t, srv.URL, http.MethodPut, "/_fake/faults", body)
			require.Equal(t, http.StatusBadRequest, got.Status, body)
			require.Contains(t, string(got.Body), `"error"`)
		}
		require.Equal(t, fake.Faults{}, srv.Faults())
	})
	t.Run("ResetClearsLedgerAndRequests", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Faults: fake.Faults{RejectAttribute: "x"}})
		send(t, srv, good, http.MethodPost, "/api/v2/batch", batch(t, identify("u1", nil)))
		require.Equal(t, http.StatusNoContent, control(t, srv.URL, http.MethodPost, "/_fake/reset", "").Status)
		l := srv.Ledger()
		require.Zero(t, l.Requests)
		require.Empty(t, l.PerWorkspace)
		require.Empty(t, srv.Requests())
		require.Equal(t, "x", srv.Faults().RejectAttribute, "faults stay")
		// After a reset the same op is new again.
		send(t, srv, good, http.MethodPost, "/api/v2/batch", batch(t, identify("u1", nil)))
		require.EqualValues(t, 1, srv.Ledger().UniqueOps)
	})
	t.Run("RequestsNewestFirstLimited", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		for _, id := range []string{"u1", "u2", "u3"} {
			send(t, srv, good, http.MethodPut, "/api/v1/customers/"+id, []byte(`{}`))
		}
		var got []fake.Request
		ans := control(t, srv.URL, http.MethodGet, "/_fake/requests?limit=2", "")
		require.Equal(t, http.StatusOK, ans.Status)
		require.NoError(t, json.Unmarshal(ans.Body, &got))
		require.Len(t, got, 2)
		require.Equal(t, "/api/v1/customers/u2", got[0].Path)
		require.Equal(t, "u3", got[1].Ops[0].Identifiers.ID)
		require.NoError(t, json.Unmarshal(control(t, srv.URL, http.MethodGet, "/_fake/requests", "").Body, &got))
		require.Len(t, got, 3)
		require.Equal(t, http.StatusBadRequest, control(t, srv.URL, http.MethodGet, "/_fake/requests?limit=x", "").Status)
	})
	t.Run("NeedsNoAuthIgnoresFaultsAndIsNotCounted", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Credentials: map[string]string{}, Faults: fake.Faults{Down: true, Unauthorized: true, CloseConnection: 1}})
		for range 3 {
			require.Equal(t, http.StatusOK, control(t, srv.URL, http.MethodGet, "/_fake/ledger", "").Status)
		}
		require.Zero(t, srv.Ledger().Requests)
	})
	t.Run("UnknownPathsAndMethods", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		require.Equal(t, http.StatusNotFound, control(t, srv.URL, http.MethodGet, "/_fake/nothing", "").Status)
		got := control(t, srv.URL, http.MethodGet, "/_fake/reset", "")
		require.Equal(t, http.StatusMethodNotAllowed, got.Status)
		require.Equal(t, "POST", got.Header.Get("Allow"))
		require.Equal(t, http.StatusMethodNotAllowed, control(t, srv.URL, http.MethodDelete, "/_fake/faults", "").Status)
		require.Equal(t, http.StatusMethodNotAllowed, control(t, srv.URL, http.MethodPost, "/_fake/ledger", "").Status)
	})
}

func TestStandalone(t *testing.T) {
	t.Parallel()

	t.Run("ServeAnswersUntilTheContextEnds", func(t *testing.T) {
		t.Parallel()
		srv, err := fake.New(fake.Options{})
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()

		base := "http://" + ln.Addr().String()
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/customers/u1/suppress", nil)
		require.NoError(t, err)
		req.SetBasicAuth("s", "k")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, http.StatusOK, control(t, base, http.MethodGet, "/_fake/ledger", "").Status)

		cancel()
		require.NoError(t, <-done)
		require.EqualValues(t, 1, srv.Ledger().OpsAccepted)
		srv.Close() // no-op for New
	})
	t.Run("ListenAndServeReportsABadAddress", func(t *testing.T) {
		t.Parallel()
		srv, err := fake.New(fake.Options{})
		require.NoError(t, err)
		require.Error(t, srv.ListenAndServe(t.Context(), "256.0.0.1:http"))
	})
	t.Run("HandlerServesWithoutAListener", func(t *testing.T) {
		t.Parallel()
		srv, err := fake.New(fake.Options{})
		require.NoError(t, err)
		require.Empty(t, srv.URL)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/customers/u1/unsuppress", nil)
		req.SetBasicAuth("s", "k")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		require.EqualValues(t, map[string]int64{"unsuppress": 1}, srv.Ledger().OpsByAction)
	})
}
