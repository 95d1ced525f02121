package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/internal/redistest"
)

// errServer counts as a failure; errClient (a 4xx) does not.
var (
	errServer = errors.New("503 service unavailable")
	errClient = errors.New("400 bad request")
)

func isFailure(err error) bool { return errors.Is(err, errServer) }

// clock is an injected clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_800_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// succeed, fail and failWith run one call through the Set.
func succeed(t *testing.T, s *breaker.Set, ws string) {
	t.Helper()
	require.NoError(t, s.Execute(context.Background(), ws, func() error { return nil }))
}

func fail(t *testing.T, s *breaker.Set, ws string) {
	t.Helper()
	failWith(t, s, ws, errServer)
}

func failWith(t *testing.T, s *breaker.Set, ws string, want error) {
	t.Helper()
	err := s.Execute(context.Background(), ws, func() error { return want })
	require.ErrorIs(t, err, want)
}

// refused asserts the Set refuses a call without running it.
func refused(t *testing.T, s *breaker.Set, ws string) *breaker.OpenError {
	t.Helper()
	err := s.Execute(context.Background(), ws, func() error {
		t.Fatal("fn ran while the breaker is open")
		return nil
	})
	require.ErrorIs(t, err, breaker.ErrOpen)
	require.ErrorIs(t, err, gobreaker.ErrOpenState)
	var oe *breaker.OpenError
	require.True(t, errors.As(err, &oe))
	return oe
}

func TestExecute(t *testing.T) {
	t.Parallel()

	t.Run("OpensAfterFiveConsecutiveFailures", func(t *testing.T) {
		t.Parallel()
		s := breaker.New(breaker.Config{IsFailure: isFailure})
		for range 4 {
			fail(t, s, "ws")
		}
		succeed(t, s, "ws") // breaks the streak
		for range 4 {
			fail(t, s, "ws")
		}
		require.EqualValues(t, "CLOSED", s.Status("ws").State)
		fail(t, s, "ws")
		require.EqualValues(t, "OPEN", s.Status("ws").State)
		refused(t, s, "ws")
		require.EqualValues(t, "CLOSED", s.Status("other").State, "workspaces are separate")
		succeed(t, s, "other")
	})

	t.Run("ErrorsThatAreNotFailuresNeverOpenIt", func(t *testing.T) {
		t.Parallel()
		s := breaker.New(breaker.Config{IsFailure: isFailure})
		for range 50 {
			failWith(t, s, "ws", errClient)
		}
		require.Equal(t, breaker.Status{State: "CLOSED"}, s.Status("ws"))
	})

	t.Run("NilIsFailureCountsEveryError", func(t *testing.T) {
		t.Parallel()
		s := breaker.New(breaker.Config{Failures: 2})
		failWith(t, s, "ws", errClient)
		failWith(t, s, "ws", errClient)
		refused(t, s, "ws")
	})

	t.Run("CallersCancellationIsNotCounted", func(t *testing.T) {
		t.Parallel()
		s := breaker.New(breaker.Config{IsFailure: func(error) bool { return true }})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for range 10 {
			err := s.Execute(ctx, "ws", func() error { return ctx.Err() })
			require.ErrorIs(t, err, context.Canceled)
		}
		require.EqualValues(t, "CLOSED", s.Status("ws").State)

		// A timeout of the request itself (the caller's ctx still alive) counts.
		for range 5 {
			failWith(t, s, "ws", fmt.Errorf("post: %w", context.DeadlineExceeded))
		}
		refused(t, s, "ws")
	})

	t.Run("IsExcludedErrorsAreNotCounted", func(t *testing.T) {
		t.Parallel()
		errWait := errors.New("rate limited locally")
		s := breaker.New(breaker.Config{Failures: 1, Successes: 1, OpenTimeout: 20 * time.Millisecond,
			IsExcluded: func(err error) bool { return errors.Is(err, errWait) }})
		for range 10 {
			failWith(t, s, "ws", errWait)
		}
		require.EqualValues(t, "CLOSED", s.Status("ws").State)
		fail(t, s, "ws")
		require.Eventually(t, func() bool { return s.Status("ws").State == "HALF_OPEN" }, 10*time.Second, 5*time.Millisecond)
		// An excluded error in half-open does not close it.
		failWith(t, s, "ws", errWait)
		require.EqualValues(t, "HALF_OPEN", s.Status("ws").State)
	})

	t.Run("OpenErrorCarriesTimeLeft", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := breaker.New(breaker.Config{IsFailure: isFailure, Now: clk.Now})
		opened := clk.Now()
		for range 5 {
			fail(t, s, "ws")
		}
		clk.Advance(10 * time.Second)
		got := refused(t, s, "ws")
		want := &breaker.OpenError{Workspace: "ws", Until: opened.Add(breaker.DefaultOpenTimeout), RetryAfter: 20 * time.Second}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("OpenError (-want +got):\n%s", diff)
		}
		require.Contains(t, got.Error(), "20s")
	})

	t.Run("HalfOpenClosesAfterThreeSuccesses", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		var changes []string
		s := breaker.New(breaker.Config{IsFailure: isFailure, OpenTimeout: 30 * time.Millisecond,
			OnStateChange: func(ws string, from, to gobreaker.State) {
				mu.Lock()
				changes = append(changes, fmt.Sprintf("%s: %s->%s", ws, from, to))
				mu.Unlock()
			}})
		for range 5 {
			fail(t, s, "ws")
		}
		require.Eventually(t, func() bool { return s.Status("ws").State == "HALF_OPEN" }, 10*time.Second, 5*time.Millisecond)
		succeed(t, s, "ws")
		succeed(t, s, "ws")
		require.EqualValues(t, "HALF_OPEN", s.Status("ws").State)
		succeed(t, s, "ws")
		require.Equal(t, breaker.Status{State: "CLOSED"}, stripLastFailure(s.Status("ws")))
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []string{"ws: closed->open", "ws: open->half-open", "ws: half-open->closed"}, changes)
	})

	t.Run("FailureInHalfOpenReopens", func(t *testing.T) {
		t.Parallel()
		s := breaker.New(breaker.Config{IsFailure: isFailure, OpenTimeout: 30 * time.Millisecond})
		for range 5 {
			fail(t, s, "ws")
		}
		require.Eventually(t, func() bool { return s.Status("ws").State == "HALF_OPEN" }, 10*time.Second, 5*time.Millisecond)
		succeed(t, s, "ws")
		fail(t, s, "ws")
		require.EqualValues(t, "OPEN", s.Status("ws").State)
	})

	t.Run("HalfOpenRefusesMoreThanItsProbes", func(t *testing.T) {
		t.Parallel()
		s := breaker.New(breaker.Config{IsFailure: isFailure, OpenTimeout: 30 * time.Millisecond})
		for range 5 {
			fail(t, s, "ws")
		}
		require.Eventually(t, func() bool { return s.Status("ws").State == "HALF_OPEN" }, 10*time.Second, 5*time.Millisecond)
		release := make(chan struct{})
		started := make(chan struct{}, 3)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				err := s.Execute(context.Background(), "ws", func() error {
					started <- struct{}{}
					<-release
					return nil
				})
				if err != nil {
					t.Errorf("probe: %v", err)
				}
			})
		}
		for range 3 {
			<-started
		}
		got := refused(t, s, "ws")
		require.Equal(t, breaker.HalfOpenRetryAfter, got.RetryAfter)
		close(release)
		wg.Wait()
		require.EqualValues(t, "CLOSED", s.Status("ws").State)
	})
}

func stripLastFailure(s breaker.Status) breaker.Status {
	s.LastFailure = nil
	return s
}

func TestStatus(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := breaker.New(breaker.Config{IsFailure: isFailure, Now: clk.Now})
	fail(t, s, "flaky")
	failedAt := clk.Now()
	clk.Advance(time.Second)
	fail(t, s, "flaky")
	lastAt := clk.Now()
	for range 5 {
		fail(t, s, "down")
	}
	succeed(t, s, "fine")

	want := map[string]breaker.Status{
		"flaky": {State: "CLOSED", FailureCount: 2, LastFailure: &lastAt},
		"down":  {State: "OPEN", FailureCount: 5, LastFailure: &lastAt, OpenUntil: lastAt.Add(breaker.DefaultOpenTimeout)},
		"fine":  {State: "CLOSED"},
	}
	if diff := cmp.Diff(want, s.Statuses()); diff != "" {
		t.Fatalf("Statuses (-want +got):\n%s", diff)
	}
	require.NotEqual(t, failedAt, lastAt)
	succeed(t, s, "flaky")
	require.Equal(t, 0, s.Status("flaky").FailureCount, "a success ends the streak")
}

func TestShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	setup := func(t *testing.T) (a, b *breaker.Set, clk *clock, db *redistest.DB, prefix string) {
		t.Helper()
		db = redistest.New(t)
		prefix = redistest.Prefix(t)
		clk = newClock()
		cfg := breaker.Config{IsFailure: isFailure, Redis: db.Client, Prefix: prefix, Now: clk.Now,
			OpenTimeout: 50 * time.Millisecond, SharedCheckInterval: 10 * time.Millisecond}
		return breaker.New(cfg), breaker.New(cfg), clk, db, prefix
	}

	t.Run("AnotherPodRefusesWhileTheFirstIsOpen", func(t *testing.T) {
		t.Parallel()
		a, b, clk, db, prefix := setup(t)
		succeed(t, b, "ws") // b has read the key (none) and caches that
		for range 5 {
			fail(t, a, "ws")
		}
		key := prefix + "{ws}:breaker:open_until"
		v, err := db.Client.Get(ctx, key).Int64()
		require.NoError(t, err)
		require.Equal(t, clk.Now().Add(50*time.Millisecond).UnixMilli(), v)
		pttl, err := db.Client.PTTL(ctx, key).Result()
		require.NoError(t, err)
		require.LessOrEqual(t, pttl, 50*time.Millisecond)

		clk.Advance(10 * time.Millisecond) // b's cached read is stale
		got := refused(t, b, "ws")
		require.True(t, got.Shared)
		require.Equal(t, time.UnixMilli(v), got.Until)
		require.EqualValues(t, "OPEN", b.Status("ws").State)
		require.EqualValues(t, "CLOSED", b.Status("other").State)
		succeed(t, b, "other")
	})

	t.Run("ClosingDeletesTheSharedKey", func(t *testing.T) {
		t.Parallel()
		a, b, clk, db, prefix := setup(t)
		for range 5 {
			fail(t, a, "ws")
		}
		refused(t, b, "ws")
		// a probes once its own open timeout (wall clock) is over.
		require.Eventually(t, func() bool { return a.Status("ws").State == "HALF_OPEN" }, 10*time.Second, 5*time.Millisecond)
		for range 3 {
			succeed(t, a, "ws")
		}
		require.EqualValues(t, "CLOSED", a.Status("ws").State)
		n, err := db.Client.Exists(ctx, prefix+"{ws}:breaker:open_until").Result()
		require.NoError(t, err)
		require.Equal(t, int64(0), n)

		clk.Advance(10 * time.Millisecond)
		succeed(t, b, "ws")
	})

	t.Run("ReadsTheSharedKeyAtMostEveryInterval", func(t *testing.T) {
		t.Parallel()
		_, b, clk, db, prefix := setup(t)
		succeed(t, b, "ws")
		until := clk.Now().Add(time.Minute)
		require.NoError(t, db.Client.Set(ctx, prefix+"{ws}:breaker:open_until", until.UnixMilli(), time.Minute).Err())
		succeed(t, b, "ws") // cached: not read again yet
		clk.Advance(9 * time.Millisecond)
		succeed(t, b, "ws") // still cached
		clk.Advance(time.Millisecond)
		got := refused(t, b, "ws")
		require.Equal(t, time.Minute-10*time.Millisecond, got.RetryAfter)
	})
}
