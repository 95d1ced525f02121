package ratelimit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/ratelimit"
)

// clock is a virtual clock for the scripts (Config.Now), so the control law
// is tested in virtual seconds that take no real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects JSON log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the logged records whose message is msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

type fleet struct {
	ls    []*ratelimit.Limiter
	clock *clock
	logs  *logBuffer
	b     *testBundle
	lim   ratelimit.Limit
}

// newFleet returns n limiters (replicas) on one Redis database and one
// virtual clock, with budget lim.
func newFleet(t *testing.T, n int, lim ratelimit.Limit, cfg ratelimit.Config) *fleet {
	t.Helper()
	c := newClock()
	logs := &logBuffer{}
	cfg.Now = c.Now
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ls, b := setup(t, n, cfg)
	return &fleet{ls: ls, clock: c, logs: logs, b: b, lim: lim}
}

// take returns a token of replica i, failing the test when none is free.
func (f *fleet) take(t *testing.T, i int, critical bool) ratelimit.Token {
	t.Helper()
	res, err := f.ls[i].Allow(context.Background(), "ws", f.lim, critical)
	require.NoError(t, err)
	require.True(t, allowed(t, res), "replica %d: no token (retry after %s, cooling %v)", i, res.RetryAfter, res.CoolingDown)
	return res.Token
}

// accept sends n requests from replica i spread over d, each accepted.
func (f *fleet) accept(t *testing.T, i, n int, d time.Duration, critical bool) {
	t.Helper()
	for range n {
		f.clock.Advance(d / time.Duration(n))
		require.NoError(t, f.ls[i].Succeeded(context.Background(), f.take(t, i, critical)))
	}
}

func (f *fleet) state(t *testing.T) ratelimit.State {
	t.Helper()
	st, err := f.ls[len(f.ls)-1].State(context.Background(), "ws", f.lim)
	require.NoError(t, err)
	return st
}

func (f *fleet) throttled(t *testing.T, tok ratelimit.Token, retryAfter time.Duration) time.Duration {
	t.Helper()
	d, err := f.ls[0].Throttled(context.Background(), tok, retryAfter)
	require.NoError(t, err)
	return d
}

func TestAdaptiveRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	budget := ratelimit.Limit{Rate: 80, Burst: 8, CriticalShare: 0.2}

	t.Run("StartsAtTheBudget", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 1, budget, ratelimit.Config{})
		require.Equal(t, ratelimit.State{Budget: 80, Rate: 80, SinceDecrease: -1}, f.state(t))
	})

	t.Run("CutsOncePerRoundTripHoweverManyReplicasSee429s", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 3, budget, ratelimit.Config{})
		// Every replica has requests out at the budget when the limit drops.
		var out []ratelimit.Token
		for i := range 3 {
			for range 2 {
				out = append(out, f.take(t, i, true))
			}
		}
		f.clock.Advance(10 * time.Millisecond)
		for i, tok := range out {
			_, err := f.ls[i%3].Throttled(ctx, tok, 0)
			require.NoError(t, err)
		}
		require.Equal(t, 40.0, f.state(t).Rate, "six 429s of one round: one cut by half")
		require.Len(t, f.logs.records(t, "rate limited: effective rate cut"), 1)

		// A request sent after the cut (and its cool-down) that meets a 429
		// says the new rate is still too high: the next round cuts again.
		f.clock.Advance(2 * time.Second)
		tok := f.take(t, 1, true)
		f.clock.Advance(10 * time.Millisecond)
		f.throttled(t, tok, 0)
		require.Equal(t, 20.0, f.state(t).Rate)
	})

	t.Run("FirstCutCoolsDownEveryReplica", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 3, budget, ratelimit.Config{CoolDownBase: 2 * time.Second})
		wait := f.throttled(t, f.take(t, 0, false), 0)
		require.GreaterOrEqual(t, wait, 1600*time.Millisecond, "base less at most 20%% jitter")
		require.LessOrEqual(t, wait, 2*time.Second)
		for i, l := range f.ls {
			for _, critical := range []bool{false, true} {
				res, err := l.Allow(ctx, "ws", budget, critical)
				require.NoError(t, err)
				require.False(t, allowed(t, res), "replica %d", i)
				require.True(t, res.CoolingDown)
				require.Equal(t, 40.0, res.Rate)
				require.Equal(t, wait, res.RetryAfter.Round(time.Millisecond))
			}
		}
		require.Equal(t, wait, f.state(t).CoolDown.Round(time.Millisecond))
		f.clock.Advance(wait)
		f.take(t, 2, false)
	})

	t.Run("MeasuredCutFollowsWhatCustomerioAccepted", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 2, budget, ratelimit.Config{})
		f.throttled(t, f.take(t, 0, true), 0) // 80 → 40, cool-down ≤ 1 s
		f.clock.Advance(time.Second)
		// Customer.io takes 10 critical requests in 2 s: 5 req/s.
		f.accept(t, 1, 10, 2*time.Second, true)
		tok := f.take(t, 1, true)
		wait := f.throttled(t, tok, 0)
		st := f.state(t)
		require.InDelta(t, 0.9*10/3.0, st.Rate, 0.01, "90%% of 10 accepted over the 3 s since the cut")
		require.Zero(t, st.CoolDown, "a measured cut needs no cool-down")
		require.Equal(t, time.Duration(float64(time.Second)/st.Rate), wait, "the throttled request waits one interval")
		rec := f.logs.records(t, "rate limited: effective rate cut")
		require.Len(t, rec, 2)
		require.InDelta(t, 10/3.0, rec[1]["measured_rate"], 0.01)
		require.Equal(t, "ws", rec[1]["workspace_id"])

		// The cut empties the buckets: the next token is one interval away.
		res, err := f.ls[0].Allow(ctx, "ws", budget, true)
		require.NoError(t, err)
		require.False(t, allowed(t, res))
		require.False(t, res.CoolingDown)
		require.InDelta(t, float64(time.Second)/st.Rate, float64(res.RetryAfter), float64(time.Millisecond))
	})

	t.Run("AcceptancesOfRequestsSentBeforeTheCutDoNotCount", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 2, budget, ratelimit.Config{})
		// Five requests went out at the budget just before the limit
		// dropped; their answers (or the calls reporting them) come late,
		// after the 429 that cut the rate.
		var early []ratelimit.Token
		for range 5 {
			early = append(early, f.take(t, 0, true))
		}
		f.throttled(t, f.take(t, 1, true), 0)
		f.clock.Advance(time.Second)
		for _, tok := range early {
			require.NoError(t, f.ls[0].Succeeded(ctx, tok))
		}
		f.accept(t, 1, 10, time.Second, true)
		f.throttled(t, f.take(t, 1, true), 0)
		require.InDelta(t, 0.9*10/2.0, f.state(t).Rate, 0.01, "10 accepted in the 2 s since the cut, not 15")
	})

	t.Run("BulkRequestsCountInUnitsOfTheEffectiveRate", func(t *testing.T) {
		t.Parallel()
		// A fleet sending only bulk requests may use 80% of the rate: its
		// 8 accepted requests in 2 s measure 5 req/s of effective rate.
		f := newFleet(t, 1, budget, ratelimit.Config{})
		f.throttled(t, f.take(t, 0, false), 0)
		f.clock.Advance(time.Second)
		f.accept(t, 0, 8, time.Second, false)
		f.throttled(t, f.take(t, 0, false), 0)
		require.InDelta(t, 0.9*(8/0.8)/2, f.state(t).Rate, 0.01)
	})

	t.Run("HonoursRetryAfter", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 2, budget, ratelimit.Config{CoolDownMax: 2 * time.Second})
		first := f.take(t, 0, true)
		second := f.take(t, 1, true)
		require.Equal(t, 30*time.Second, f.throttled(t, first, 30*time.Second))
		// A 429 of the same round cuts nothing more but still extends the
		// cool-down to its Retry-After.
		require.Equal(t, 45*time.Second, f.throttled(t, second, 45*time.Second))
		st := f.state(t)
		require.Equal(t, 45*time.Second, st.CoolDown)
		require.Equal(t, 40.0, st.Rate)
	})

	t.Run("RisesAfterTheHoldByGrowingStepsUpToTheBudget", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 2, budget, ratelimit.Config{})
		f.throttled(t, f.take(t, 0, true), 0)
		f.clock.Advance(time.Second)
		f.accept(t, 0, 20, 2*time.Second, true)
		f.throttled(t, f.take(t, 0, true), 0) // measured: 0.9 × 20/3 = 6 req/s
		require.InDelta(t, 6, f.state(t).Rate, 0.01)

		// No rise during the hold (3 s), however much is accepted.
		f.accept(t, 1, 15, 2900*time.Millisecond, true)
		require.InDelta(t, 6, f.state(t).Rate, 0.01)
		// Then the k-th run raises by k quarters of the 6 req/s the cut set,
		// at most 8 (a tenth of 80); the run is Run (4) at the budget,
		// scaled with the rate: 1 request at 6 req/s.
		f.accept(t, 1, 1, 200*time.Millisecond, true)
		require.InDelta(t, 7.5, f.state(t).Rate, 0.01)

		// A request let through before that step says nothing of the new
		// rate: its acceptance does not raise it again.
		f.clock.Advance(200 * time.Millisecond)
		early := f.take(t, 0, true)
		f.accept(t, 1, 1, 200*time.Millisecond, true) // second step: +3
		require.InDelta(t, 10.5, f.state(t).Rate, 0.01)
		require.NoError(t, f.ls[0].Succeeded(ctx, early))
		require.InDelta(t, 10.5, f.state(t).Rate, 0.01)

		rates := []float64{7.5, 10.5}
		for f.state(t).Rate < 80 {
			f.accept(t, 0, 1, 200*time.Millisecond, true)
			rates = append(rates, f.state(t).Rate)
			require.Less(t, len(rates), 60, "the rate never reached the budget: %v", rates)
		}
		t.Logf("rates after each accepted request: %v", rates)
		require.InDeltaSlice(t, []float64{7.5, 10.5, 15, 21, 28.5, 36.5}, rates[:6], 0.01,
			"steps of 1.5, 3, 4.5, 6, 7.5, then 8")
		require.InDeltaSlice(t, []float64{36.5, 44.5, 44.5}, rates[6:9], 0.01, "runs of 2 from 36.5 req/s")
		require.Equal(t, 80.0, rates[len(rates)-1], "never past the budget")
		for i := 1; i < len(rates); i++ {
			require.LessOrEqual(t, rates[i]-rates[i-1], 8.0+1e-9, "at most a tenth of the budget at a time")
		}
		require.Len(t, f.logs.records(t, "rate limit lifted: effective rate back at the budget"), 1)
		// At the budget the state holds no rate: a higher budget applies at once.
		st, err := f.ls[0].State(ctx, "ws", ratelimit.Limit{Rate: 100})
		require.NoError(t, err)
		require.Equal(t, 100.0, st.Rate)
	})

	t.Run("CoolDownGrowsWhileNothingGetsThroughAndTheRateStopsAtItsFloor", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 2, budget, ratelimit.Config{CoolDownBase: time.Second, CoolDownMax: 5 * time.Second})
		var waits []time.Duration
		var rates []float64
		for i := range 8 {
			wait := f.throttled(t, f.take(t, i%2, true), 0)
			waits = append(waits, wait)
			rates = append(rates, f.state(t).Rate)
			f.clock.Advance(wait)
		}
		t.Logf("cool-downs %v, rates %v", waits, rates)
		for i, min := range []time.Duration{800, 1600, 3200, 4000, 4000} {
			require.GreaterOrEqual(t, waits[i], min*time.Millisecond, "429 #%d", i+1)
			require.LessOrEqual(t, waits[i], 5*time.Second, "429 #%d", i+1)
		}
		require.Equal(t, []float64{40, 20, 10, 5, 2.5, 1.25, 1.25, 1.25}, rates, "halved down to 1/64 of the budget")

		// One accepted request ends the streak: the next cut cools down from the base.
		f.accept(t, 0, 1, 100*time.Millisecond, true)
		f.clock.Advance(20 * time.Second) // beyond the measurement window
		require.LessOrEqual(t, f.throttled(t, f.take(t, 0, true), 0), time.Second)
	})

	t.Run("CriticalShareStaysInsideTheEffectiveRate", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 2, ratelimit.Limit{Rate: 80, Burst: 1, CriticalShare: 0.5}, ratelimit.Config{
			Adaptive: ratelimit.Adaptive{Decrease: 0.25}, CoolDownBase: time.Millisecond})
		f.throttled(t, f.take(t, 0, true), 0) // 80 → 20 req/s
		f.clock.Advance(time.Second)
		count := func(critical bool) int {
			n := 0
			for range 1000 { // 10 s in 10 ms steps
				f.clock.Advance(10 * time.Millisecond)
				res, err := f.ls[1].Allow(ctx, "ws", f.lim, critical)
				require.NoError(t, err)
				if allowed(t, res) {
					n++
				}
			}
			return n
		}
		require.InDelta(t, 100, count(false), 2, "bulk: half of 20 req/s for 10 s")
		require.InDelta(t, 200, count(true), 2, "critical: all of 20 req/s for 10 s")
	})

	t.Run("SucceededCostsNoRoundTripAtTheBudget", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 1, budget, ratelimit.Config{})
		l := f.ls[0]
		tok := f.take(t, 0, true)
		before := f.b.calls.n.Load()
		for range 100 {
			require.NoError(t, l.Succeeded(ctx, tok))
		}
		require.Equal(t, before, f.b.calls.n.Load(), "no decrease yet: nothing to count")

		f.throttled(t, tok, 0)
		f.clock.Advance(time.Second)
		tok = f.take(t, 0, true)
		require.NoError(t, l.Succeeded(ctx, tok)) // loads the script (EVALSHA, then EVAL) if no other test did
		before = f.b.calls.n.Load()
		require.NoError(t, l.Succeeded(ctx, tok))
		require.Equal(t, before+1, f.b.calls.n.Load(), "below the budget every acceptance counts")
	})

	t.Run("OnRateReportsChangesSeenByEachReplica", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		got := map[int][]float64{}
		c := newClock()
		ls := make([]*ratelimit.Limiter, 2)
		_, b := setup(t, 1, ratelimit.Config{})
		for i := range ls {
			ls[i] = ratelimit.New(b.db.Client, ratelimit.Config{Prefix: b.prefix, Now: c.Now,
				OnRate: func(ws string, rate float64) {
					mu.Lock()
					defer mu.Unlock()
					require.Equal(t, "ws", ws)
					got[i] = append(got[i], rate)
				}})
		}
		res, err := ls[0].Allow(ctx, "ws", budget, true)
		require.NoError(t, err)
		_, err = ls[0].Throttled(ctx, res.Token, 0)
		require.NoError(t, err)
		c.Advance(2 * time.Second)
		_, err = ls[1].Allow(ctx, "ws", budget, true)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, map[int][]float64{0: {80, 40}, 1: {40}}, got)
	})

	t.Run("RejectsAZeroToken", func(t *testing.T) {
		t.Parallel()
		f := newFleet(t, 1, budget, ratelimit.Config{})
		_, err := f.ls[0].Throttled(ctx, ratelimit.Token{}, 0)
		require.ErrorIs(t, err, ratelimit.ErrInvalidConfig)
		require.ErrorIs(t, f.ls[0].Succeeded(ctx, ratelimit.Token{Workspace: "ws"}), ratelimit.ErrInvalidConfig)
		require.Zero(t, f.b.calls.n.Load())
	})

	t.Run("RejectsAnInvalidAdaptiveConfig", func(t *testing.T) {
		t.Parallel()
		for _, a := range []ratelimit.Adaptive{{Decrease: 1}, {Keep: 1.5}, {Step: -1}, {Probe: 2}, {Run: -1}, {MinRate: 2},
			{MinWindow: time.Second, MaxWindow: time.Millisecond}} {
			ls, _ := setup(t, 1, ratelimit.Config{Adaptive: a})
			_, err := ls[0].Allow(ctx, "ws", budget, true)
			require.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "%+v", a)
		}
	})
}
