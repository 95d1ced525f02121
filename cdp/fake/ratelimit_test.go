package fake_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp/fake"
)

func TestRateLimit_TokenBucketPerWorkspace(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := start(t, fake.Options{Keys: keys(), Now: clk.Now, RateLimit: 2, RetryAfter: true})
	post := func(key string) answer {
		return send(t, srv, req{path: "/v1/batch", body: okBody, key: key})
	}
	require.Equal(t, http.StatusOK, post("").Status)
	require.Equal(t, http.StatusOK, post("").Status)
	a := post("")
	require.Equal(t, http.StatusTooManyRequests, a.Status, "the burst of 2 is spent")
	require.Equal(t, "1", a.Header.Get("Retry-After"))
	require.Empty(t, a.Body, "a bare 429")
	require.Equal(t, http.StatusOK, post("cdp-key-2").Status, "another workspace has its own bucket")
	clk.Advance(500 * time.Millisecond)
	require.Equal(t, http.StatusOK, post("").Status, "one token back after half a second")
	require.Equal(t, http.StatusTooManyRequests, post("").Status)
	l := ws(srv)
	require.Equal(t, int64(2), l.RateLimited)
	require.Equal(t, 5, l.MaxReceivedPerSecond, "429s included")
	require.Equal(t, 3, l.MaxRequestsPerSecond)
}

func TestRateLimit_ChangesAtRunTimeAndOmitsRetryAfterByDefault(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := start(t, fake.Options{Now: clk.Now})
	for range 10 {
		require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: okBody}).Status, "no limit by default")
	}
	require.NoError(t, srv.SetFaults(fake.Faults{RateLimit: fake.Rate(1)}))
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
	a := send(t, srv, req{path: "/v1/batch", body: okBody})
	require.Equal(t, http.StatusTooManyRequests, a.Status)
	require.Empty(t, a.Header.Get("Retry-After"), "the real API sends none")
	reqs := srv.Requests()
	require.Equal(t, fake.FaultRateLimit, reqs[len(reqs)-1].Fault)
	require.NoError(t, srv.SetFaults(fake.Faults{RateLimit: fake.Rate(0)}))
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: okBody}).Status, "zero lifts the limit")
}

func TestRateLimit_BurstOption(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := start(t, fake.Options{Now: clk.Now, RateLimit: 1, Burst: 3})
	for range 3 {
		require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
	}
	require.Equal(t, http.StatusTooManyRequests, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
}
