package fake_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track/fake"
)

func TestRateLimit(t *testing.T) {
	t.Parallel()
	body := func(t testing.TB) []byte { return batch(t, identify("u1", nil)) }
	// post sends n batches as a and returns the statuses.
	post := func(t *testing.T, srv *fake.Server, a auth, n int) []int {
		t.Helper()
		var got []int
		for range n {
			got = append(got, send(t, srv, a, http.MethodPost, "/api/v2/batch", body(t)).Status)
		}
		return got
	}
	ok, limited := http.StatusOK, http.StatusTooManyRequests

	t.Run("BucketStartsFullAndRefillsAtTheRate", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		srv := start(t, fake.Options{RateLimit: 10, Now: clk.Now})
		require.Equal(t, []int{ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, limited}, post(t, srv, good, 11))
		clk.Advance(99 * time.Millisecond)
		require.Equal(t, []int{limited}, post(t, srv, good, 1))
		clk.Advance(time.Millisecond)
		require.Equal(t, []int{ok, limited}, post(t, srv, good, 2))
		clk.Advance(time.Hour) // never more than the burst
		require.Len(t, filter(post(t, srv, good, 12), ok), 10)
		l := srv.Ledger()
		require.EqualValues(t, 21, l.Accepted)
		require.EqualValues(t, 5, l.RateLimited)
		require.EqualValues(t, 21, l.OpsAccepted)
	})
	t.Run("429IsBareByDefault", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{RateLimit: 1, Now: newClock().Now})
		post(t, srv, good, 1)
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t))
		require.Equal(t, limited, got.Status)
		require.Empty(t, got.Body)
		require.Empty(t, got.Header.Get("Retry-After"))
		require.Empty(t, srv.Requests()[1].Fault)
	})
	t.Run("RetryAfterSaysWhenATokenIsBack", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		srv := start(t, fake.Options{RateLimit: 0.25, RetryAfter: true, Now: clk.Now})
		post(t, srv, good, 1)
		require.Equal(t, "4", send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t)).Header.Get("Retry-After"))
		clk.Advance(2500 * time.Millisecond)
		require.Equal(t, "2", send(t, srv, good, http.MethodPost, "/api/v2/batch", body(t)).Header.Get("Retry-After"))
	})
	t.Run("BurstSetsTheBucketSize", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{RateLimit: 100, Burst: 3, Now: newClock().Now})
		require.Equal(t, []int{ok, ok, ok, limited}, post(t, srv, good, 4))
	})
	t.Run("EachWorkspaceHasItsOwnBucket", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{RateLimit: 2, Now: newClock().Now})
		other := auth{"site-2", "k"}
		require.Equal(t, []int{ok, ok, limited}, post(t, srv, good, 3))
		require.Equal(t, []int{ok, ok, limited}, post(t, srv, other, 3))
		l := srv.Ledger()
		require.EqualValues(t, 1, l.PerWorkspace[testSite].RateLimited)
		require.EqualValues(t, 1, l.PerWorkspace["site-2"].RateLimited)
		require.EqualValues(t, 2, l.RateLimited)
	})
	t.Run("FaultOverridesTheRateAtRunTime", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		srv := start(t, fake.Options{Now: clk.Now}) // no limit
		require.Len(t, filter(post(t, srv, good, 20), ok), 20)
		require.NoError(t, srv.SetFaults(fake.Faults{RateLimit: fake.Rate(2)}))
		require.Equal(t, []int{ok, ok, limited}, post(t, srv, good, 3))
		require.Equal(t, fake.FaultRateLimit, srv.Requests()[22].Fault)
		clk.Advance(500 * time.Millisecond)
		require.Equal(t, []int{ok, limited}, post(t, srv, good, 2))
		require.NoError(t, srv.SetFaults(fake.Faults{RateLimit: fake.Rate(0)})) // zero: no limit
		require.Len(t, filter(post(t, srv, good, 5), ok), 5)
		require.NoError(t, srv.SetFaults(fake.Faults{}))
		require.Len(t, filter(post(t, srv, good, 5), ok), 5)
	})
	t.Run("UnauthenticatedRequestsSpendNoTokens", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{RateLimit: 1, Now: newClock().Now, Credentials: map[string]string{testSite: testKey}})
		post(t, srv, auth{testSite, "wrong"}, 3)
		require.Equal(t, []int{ok, limited}, post(t, srv, good, 2))
	})
	t.Run("ResetRefillsTheBuckets", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{RateLimit: 1, Now: newClock().Now})
		require.Equal(t, []int{ok, limited}, post(t, srv, good, 2))
		srv.Reset()
		require.Equal(t, []int{ok}, post(t, srv, good, 1))
	})
}

func filter(statuses []int, want int) []int {
	var out []int
	for _, s := range statuses {
		if s == want {
			out = append(out, s)
		}
	}
	return out
}
