package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/ratelimit"
)

// counter is a go-redis hook that counts round trips.
type counter struct{ n atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

type testBundle struct {
	db     *redistest.DB
	prefix string
	calls  *counter // round trips of the first limiter
}

// allowed is a Result's Allowed, as a check on its shape: an allowed
// Result carries its token, a denied one none.
func allowed(t *testing.T, res ratelimit.Result) bool {
	t.Helper()
	require.Equal(t, res.Allowed, res.Token.Workspace != "", "a token exactly when allowed: %+v", res)
	return res.Allowed
}

// setup returns n limiters on one Redis database, each with a client of its
// own (as separate pods would have), sharing one key prefix.
func setup(t *testing.T, n int, cfg ratelimit.Config) ([]*ratelimit.Limiter, *testBundle) {
	t.Helper()
	db := redistest.New(t)
	cfg.Prefix = redistest.Prefix(t)
	b := &testBundle{db: db, prefix: cfg.Prefix, calls: &counter{}}
	ls := make([]*ratelimit.Limiter, n)
	for i := range ls {
		rdb := redis.NewClient(db.Options())
		t.Cleanup(func() { _ = rdb.Close() })
		if i == 0 {
			rdb.AddHook(b.calls)
		}
		ls[i] = ratelimit.New(rdb, cfg)
	}
	return ls, b
}

func TestLimitString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		lim  ratelimit.Limit
		want string
	}{
		{name: "defaults", lim: ratelimit.Limit{Rate: 80}, want: "80 req/s (burst 8, critical share 20%)"},
		{name: "slow rate has burst 1", lim: ratelimit.PerSecond(0.5), want: "0.5 req/s (burst 1, critical share 20%)"},
		{name: "rounds burst up", lim: ratelimit.Limit{Rate: 81}, want: "81 req/s (burst 9, critical share 20%)"},
		{name: "explicit", lim: ratelimit.Limit{Rate: 10, Burst: 3, CriticalShare: 0.5}, want: "10 req/s (burst 3, critical share 50%)"},
		{name: "negative share reserves nothing", lim: ratelimit.Limit{Rate: 10, CriticalShare: -1}, want: "10 req/s (burst 1, critical share 0%)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.lim.String())
		})
	}
}

func TestAllow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("AllowsTheBurstThenDeniesWithRetryAfter", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 1, ratelimit.Config{})
		lim := ratelimit.Limit{Rate: 0.1, Burst: 3} // one token per 10 s
		for i := range 3 {
			res, err := ls[0].Allow(ctx, "ws", lim, true)
			require.NoError(t, err)
			require.True(t, allowed(t, res), "request %d", i)
			require.Equal(t, "ws", res.Token.Workspace)
			require.True(t, res.Token.Critical)
			require.Equal(t, 0.1, res.Rate, "the effective rate is the budget")
			require.WithinDuration(t, time.Now(), res.Token.At, 5*time.Second, "Redis's clock")
		}
		res, err := ls[0].Allow(ctx, "ws", lim, true)
		require.NoError(t, err)
		require.False(t, allowed(t, res))
		require.False(t, res.CoolingDown)
		require.Greater(t, res.RetryAfter, 5*time.Second)
		require.LessOrEqual(t, res.RetryAfter, 10*time.Second)

		// Another workspace has a budget of its own.
		res, err = ls[0].Allow(ctx, "other", lim, true)
		require.NoError(t, err)
		require.True(t, res.Allowed)
	})

	t.Run("BudgetHoldsAcrossInstances", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 3, ratelimit.Config{})
		lim := ratelimit.Limit{Rate: 40, Burst: 4}
		const run = 1500 * time.Millisecond
		var allowed, denied atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for i, l := range ls {
			for g := range 4 {
				wg.Go(func() {
					for time.Since(start) < run {
						res, err := l.Allow(ctx, "ws", lim, (i+g)%2 == 0)
						if err != nil {
							t.Error(err)
							return
						}
						if res.Allowed {
							allowed.Add(1)
						} else {
							denied.Add(1)
						}
					}
				})
			}
		}
		wg.Wait()
		window := time.Since(start)
		limit := lim.Rate*window.Seconds() + float64(lim.Burst)
		t.Logf("allowed %d, denied %d in %s (limit %.1f)", allowed.Load(), denied.Load(), window, limit)
		require.LessOrEqual(t, float64(allowed.Load()), limit+1)
		require.Positive(t, denied.Load(), "the hammering must have hit the limit")
		// Generous lower bound: the budget is actually used, not just refused.
		require.GreaterOrEqual(t, float64(allowed.Load()), lim.Rate*run.Seconds()/4)
	})

	t.Run("CriticalRequestsKeepTheirShare", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 2, ratelimit.Config{})
		// 0.2 req/s: refills are negligible while the test runs.
		lim := ratelimit.Limit{Rate: 0.2, Burst: 10, CriticalShare: 0.3}
		bulkAllowed := 0
		for range 20 {
			res, err := ls[0].Allow(ctx, "ws", lim, false)
			require.NoError(t, err)
			if res.Allowed {
				bulkAllowed++
			} else {
				require.Greater(t, res.RetryAfter, time.Duration(0))
			}
		}
		require.Equal(t, 7, bulkAllowed, "bulk gets floor(10×0.7)")

		critAllowed := 0
		for range 20 {
			res, err := ls[1].Allow(ctx, "ws", lim, true)
			require.NoError(t, err)
			if res.Allowed {
				critAllowed++
			}
		}
		require.Equal(t, 3, critAllowed, "critical gets the rest of the burst")
	})

	t.Run("CriticalGetsThroughWhileBulkHammers", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 2, ratelimit.Config{})
		lim := ratelimit.Limit{Rate: 20, Burst: 2, CriticalShare: 0.5}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := ls[0].Allow(ctx, "ws", lim, false); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		// Critical requests at about their reserved rate (10/s) mostly pass.
		passed := 0
		for range 20 {
			if _, err := ls[1].Wait(ctx, "ws", lim, true, 5*time.Second); err == nil {
				passed++
			}
		}
		close(stop)
		wg.Wait()
		require.Equal(t, 20, passed, "every critical request went within 5 s")
	})

	t.Run("RejectsInvalidLimits", func(t *testing.T) {
		t.Parallel()
		ls, b := setup(t, 1, ratelimit.Config{})
		for _, lim := range []ratelimit.Limit{{}, {Rate: -1}, {Rate: 1, Burst: -1}, {Rate: 1, CriticalShare: 1}} {
			_, err := ls[0].Allow(ctx, "ws", lim, false)
			require.ErrorIs(t, err, ratelimit.ErrInvalidLimit, "%+v", lim)
		}
		_, err := ls[0].Allow(ctx, "", ratelimit.PerSecond(1), false)
		require.ErrorIs(t, err, ratelimit.ErrInvalidConfig)
		_, err = ratelimit.New(b.db.Client, ratelimit.Config{CoolDownBase: time.Minute, CoolDownMax: time.Second}).
			Allow(ctx, "ws", ratelimit.PerSecond(1), false)
		require.ErrorIs(t, err, ratelimit.ErrInvalidConfig)
		require.Equal(t, int64(0), b.calls.n.Load())
	})
}

func TestWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ReturnsOnceAllowed", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 1, ratelimit.Config{})
		lim := ratelimit.Limit{Rate: 20, Burst: 1}
		for range 3 {
			tok, err := ls[0].Wait(ctx, "ws", lim, false, 10*time.Second)
			require.NoError(t, err)
			require.Equal(t, "ws", tok.Workspace)
			require.False(t, tok.Critical)
		}
	})

	t.Run("ReturnsDelayErrorInsteadOfSleepingPastMaxWait", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 2, ratelimit.Config{})
		lim := ratelimit.Limit{Rate: 0.05, Burst: 1} // one token per 20 s
		res, err := ls[1].Allow(ctx, "ws", lim, true)
		require.NoError(t, err)
		require.True(t, res.Allowed)

		start := time.Now()
		_, err = ls[0].Wait(ctx, "ws", lim, true, 200*time.Millisecond)
		require.Less(t, time.Since(start), 5*time.Second)
		require.ErrorIs(t, err, ratelimit.ErrLimited)
		var de *ratelimit.DelayError
		require.True(t, errors.As(err, &de))
		require.False(t, de.CoolingDown)
		require.Greater(t, de.RetryAfter, 10*time.Second)
	})

	t.Run("HonoursTheContextDeadline", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 1, ratelimit.Config{})
		lim := ratelimit.Limit{Rate: 0.05, Burst: 1}
		_, err := ls[0].Wait(ctx, "ws", lim, true, 0)
		require.NoError(t, err)
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err = ls[0].Wait(dctx, "ws", lim, true, time.Hour)
		require.ErrorIs(t, err, ratelimit.ErrLimited)
	})

	t.Run("ReportsACoolDown", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 2, ratelimit.Config{CoolDownBase: 20 * time.Second, CoolDownMax: 20 * time.Second})
		lim := ratelimit.PerSecond(100)
		tok, err := ls[1].Wait(ctx, "ws", lim, true, time.Second)
		require.NoError(t, err)
		_, err = ls[1].Throttled(ctx, tok, 0)
		require.NoError(t, err)
		_, err = ls[0].Wait(ctx, "ws", lim, true, time.Second)
		var de *ratelimit.DelayError
		require.True(t, errors.As(err, &de), "got %v", err)
		want := &ratelimit.DelayError{RetryAfter: de.RetryAfter, CoolingDown: true}
		if diff := cmp.Diff(want, de); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		require.Greater(t, de.RetryAfter, 10*time.Second)
	})

	t.Run("WaitsThroughAShortCoolDown", func(t *testing.T) {
		t.Parallel()
		ls, _ := setup(t, 2, ratelimit.Config{CoolDownBase: 100 * time.Millisecond})
		lim := ratelimit.PerSecond(100)
		tok, err := ls[1].Wait(ctx, "ws", lim, false, time.Second)
		require.NoError(t, err)
		_, err = ls[1].Throttled(ctx, tok, 0)
		require.NoError(t, err)
		_, err = ls[0].Wait(ctx, "ws", lim, false, 10*time.Second)
		require.NoError(t, err)
	})

	t.Run("PacesAtTheEffectiveRate", func(t *testing.T) {
		t.Parallel()
		// One cut takes 100 req/s down to 10 (burst 10 scaled to 1).
		ls, _ := setup(t, 2, ratelimit.Config{CoolDownBase: time.Millisecond,
			Adaptive: ratelimit.Adaptive{Decrease: 0.1}})
		lim := ratelimit.PerSecond(100)
		tok, err := ls[0].Wait(ctx, "ws", lim, true, time.Second)
		require.NoError(t, err)
		_, err = ls[0].Throttled(ctx, tok, 0)
		require.NoError(t, err)
		start := time.Now()
		for range 6 {
			_, err := ls[1].Wait(ctx, "ws", lim, true, 5*time.Second)
			require.NoError(t, err)
		}
		// The cut empties the bucket: six tokens at 10 req/s take 0.6 s
		// (at the budget they would take none).
		require.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
	})
}
