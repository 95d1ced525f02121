package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/redistest"
)

// counter is a go-redis hook that counts round trips: one per command sent
// alone and one per pipeline.
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
	rdb    *redis.Client // a client of its own with the counting hook
	calls  *counter
	prefix string
}

func setup(t *testing.T, cfg idempotency.Config) (*idempotency.Store, *testBundle) {
	t.Helper()
	db := redistest.New(t)
	rdb := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	c := &counter{}
	rdb.AddHook(c)
	cfg.Prefix = redistest.Prefix(t)
	return idempotency.New(rdb, cfg), &testBundle{db: db, rdb: rdb, calls: c, prefix: cfg.Prefix}
}

func verdicts(checks []idempotency.Check) []idempotency.Verdict {
	out := make([]idempotency.Verdict, len(checks))
	for i, c := range checks {
		out[i] = c.Verdict
	}
	return out
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.UnixMilli(1_700_000_000_000)

	t.Run("GivesEveryVerdict", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		require.NoError(t, store.MarkDone(ctx, "ws", []string{"done-op"}))
		require.NoError(t, store.SetTombstone(ctx, "ws", "p1", t0, "del-1"))
		_, err := store.Claim(ctx, "ws", []idempotency.Item{{OpID: "held-op"}})
		require.NoError(t, err)

		got, err := store.Claim(ctx, "ws", []idempotency.Item{
			{OpID: "new-op", Person: "p2", EnqueuedAt: t0},
			{OpID: "done-op", Person: "p1", EnqueuedAt: t0.Add(-time.Hour), Droppable: true},
			{OpID: "old-op", Person: "p1", EnqueuedAt: t0.Add(-time.Second), Droppable: true},
			{OpID: "newer-op", Person: "p1", EnqueuedAt: t0.Add(time.Second), Droppable: true},
			{OpID: "same-ms-op", Person: "p1", EnqueuedAt: t0, Droppable: true},
			{OpID: "not-droppable", Person: "p1", EnqueuedAt: t0.Add(-time.Second)},
			{OpID: "held-op"},
			{OpID: "twice"},
			{OpID: "twice"},
		})
		require.NoError(t, err)
		want := []idempotency.Check{
			{Verdict: idempotency.Send},
			{Verdict: idempotency.Done},
			{Verdict: idempotency.Tombstoned, Tombstone: &idempotency.Tombstone{OpID: "del-1", At: t0}},
			{Verdict: idempotency.Send},
			{Verdict: idempotency.Send},
			{Verdict: idempotency.Send},
			{Verdict: idempotency.Claimed},
			{Verdict: idempotency.Send},
			{Verdict: idempotency.Claimed},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Claim (-want +got):\n%s", diff)
		}
	})

	t.Run("OneRoundTripPerCallWhateverTheSize", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{})
		// The first call may load the script (EVALSHA, then EVAL).
		_, err := store.Claim(ctx, "ws", []idempotency.Item{{OpID: "warm"}})
		require.NoError(t, err)
		require.NoError(t, store.MarkDone(ctx, "ws", []string{"warm"}))
		require.NoError(t, store.Release(ctx, "ws", []string{"warm"}))

		for _, n := range []int{1, 10, 500} {
			items := make([]idempotency.Item, n)
			ids := make([]string, n)
			for i := range items {
				ids[i] = fmt.Sprintf("op-%d-%d", n, i)
				items[i] = idempotency.Item{OpID: ids[i], Person: fmt.Sprintf("p%d", i%7), EnqueuedAt: t0, Droppable: true}
			}
			before := b.calls.n.Load()
			_, err := store.Claim(ctx, "ws", items)
			require.NoError(t, err)
			require.Equal(t, int64(1), b.calls.n.Load()-before, "Claim of %d items", n)

			before = b.calls.n.Load()
			require.NoError(t, store.MarkDone(ctx, "ws", ids))
			require.Equal(t, int64(1), b.calls.n.Load()-before, "MarkDone of %d ops", n)

			before = b.calls.n.Load()
			require.NoError(t, store.Release(ctx, "ws", ids))
			require.Equal(t, int64(1), b.calls.n.Load()-before, "Release of %d ops", n)
		}

		before := b.calls.n.Load()
		got, err := store.Claim(ctx, "ws", nil)
		require.NoError(t, err)
		require.Empty(t, got)
		require.NoError(t, store.MarkDone(ctx, "ws", nil))
		require.Equal(t, int64(0), b.calls.n.Load()-before, "empty calls")
	})

	t.Run("ClaimsExpire", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{ClaimTTL: 50 * time.Millisecond})
		items := []idempotency.Item{{OpID: "a"}}
		got, err := store.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Send}, verdicts(got))
		got, err = store.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Claimed}, verdicts(got))

		require.Eventually(t, func() bool {
			got, err := store.Claim(ctx, "ws", items)
			return err == nil && got[0].Verdict == idempotency.Send
		}, 10*time.Second, 20*time.Millisecond)
	})

	t.Run("ReleaseLetsTheOpBeClaimedAgain", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		items := []idempotency.Item{{OpID: "a"}, {OpID: "b"}}
		_, err := store.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.NoError(t, store.Release(ctx, "ws", []string{"a"}))
		got, err := store.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Send, idempotency.Claimed}, verdicts(got))
	})

	t.Run("AnotherStoresClaimIsClaimedAndNotReleasedByUs", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{})
		other := idempotency.New(b.db.Client, idempotency.Config{Prefix: b.prefix})
		items := []idempotency.Item{{OpID: "a"}}

		got, err := other.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Send}, verdicts(got))

		got, err = store.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Claimed}, verdicts(got))

		// Neither Release nor MarkDone by us drops the other store's claim.
		require.NoError(t, store.Release(ctx, "ws", []string{"a"}))
		got, err = store.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Claimed}, verdicts(got))
		n, err := b.db.Client.Exists(ctx, b.prefix+"{ws}:claim:a").Result()
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
	})

	t.Run("MarkDoneIsIdempotentAndDropsOurClaim", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{DoneTTL: time.Hour})
		_, err := store.Claim(ctx, "ws", []idempotency.Item{{OpID: "a"}})
		require.NoError(t, err)
		require.NoError(t, store.MarkDone(ctx, "ws", []string{"a"}))
		require.NoError(t, store.MarkDone(ctx, "ws", []string{"a", "a"}))

		done, err := store.IsDone(ctx, "ws", "a")
		require.NoError(t, err)
		require.True(t, done)
		done, err = store.IsDone(ctx, "ws", "b")
		require.NoError(t, err)
		require.False(t, done)

		claim, err := b.db.Client.Exists(ctx, b.prefix+"{ws}:claim:a").Result()
		require.NoError(t, err)
		require.Equal(t, int64(0), claim, "claim deleted")
		val, err := b.db.Client.Get(ctx, b.prefix+"{ws}:done:a").Result()
		require.NoError(t, err)
		require.Equal(t, "1", val)
		ttl, err := b.db.Client.TTL(ctx, b.prefix+"{ws}:done:a").Result()
		require.NoError(t, err)
		require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 60)

		got, err := store.Claim(ctx, "ws", []idempotency.Item{{OpID: "a"}})
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Done}, verdicts(got))
	})

	t.Run("TombstoneKeepsTheNewest", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{TombstoneTTL: time.Hour})
		got, err := store.Tombstone(ctx, "ws", "p")
		require.NoError(t, err)
		require.Nil(t, got)

		tests := []struct {
			name string
			at   time.Time
			op   string
			want idempotency.Tombstone
		}{
			{name: "first is stored", at: t0, op: "d1", want: idempotency.Tombstone{OpID: "d1", At: t0}},
			{name: "older is ignored", at: t0.Add(-time.Minute), op: "d0", want: idempotency.Tombstone{OpID: "d1", At: t0}},
			{name: "newer replaces", at: t0.Add(time.Minute), op: "d2", want: idempotency.Tombstone{OpID: "d2", At: t0.Add(time.Minute)}},
		}
		for _, tt := range tests {
			require.NoError(t, store.SetTombstone(ctx, "ws", "p", tt.at, tt.op), tt.name)
			got, err := store.Tombstone(ctx, "ws", "p")
			require.NoError(t, err)
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Fatalf("%s (-want +got):\n%s", tt.name, diff)
			}
		}
		raw, err := b.db.Client.Get(ctx, b.prefix+"{ws}:tomb:p").Result()
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("%d:d2", t0.Add(time.Minute).UnixMicro()), raw)
		ttl, err := b.db.Client.PTTL(ctx, b.prefix+"{ws}:tomb:p").Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 59*time.Minute)
	})

	t.Run("WorkspacesAreSeparate", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		require.NoError(t, store.MarkDone(ctx, "ws1", []string{"a"}))
		got, err := store.Claim(ctx, "ws2", []idempotency.Item{{OpID: "a"}})
		require.NoError(t, err)
		require.Equal(t, []idempotency.Verdict{idempotency.Send}, verdicts(got))
	})

	t.Run("ThousandItemsInOneCall", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{})
		items := make([]idempotency.Item, 1000)
		var done []string
		for i := range items {
			items[i] = idempotency.Item{OpID: fmt.Sprintf("%026d", i), Person: fmt.Sprintf("person-%d", i%50), EnqueuedAt: t0, Droppable: i%2 == 0}
			if i%3 == 0 {
				done = append(done, items[i].OpID)
			}
		}
		require.NoError(t, store.MarkDone(ctx, "ws", done))
		require.NoError(t, store.SetTombstone(ctx, "ws", "person-0", t0.Add(time.Second), "del"))

		before := b.calls.n.Load()
		got, err := store.Claim(ctx, "ws", items)
		require.NoError(t, err)
		require.LessOrEqual(t, b.calls.n.Load()-before, int64(1))
		require.Len(t, got, 1000)
		count := map[idempotency.Verdict]int{}
		for i, c := range got {
			count[c.Verdict]++
			want := idempotency.Send
			switch {
			case i%3 == 0:
				want = idempotency.Done
			case i%50 == 0: // person-0, even index: droppable
				want = idempotency.Tombstoned
			}
			require.Equal(t, want, c.Verdict, "item %d", i)
		}
		require.Equal(t, 334, count[idempotency.Done])
		require.Equal(t, 13, count[idempotency.Tombstoned]) // i%50==0 and i%3!=0, i<1000
	})

	t.Run("RejectsInvalidInput", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{})
		before := b.calls.n.Load()
		_, err := store.Claim(ctx, "", []idempotency.Item{{OpID: "a"}})
		require.ErrorIs(t, err, idempotency.ErrInvalid)
		_, err = store.Claim(ctx, "ws", []idempotency.Item{{OpID: ""}})
		require.ErrorIs(t, err, idempotency.ErrInvalid)
		err = idempotency.New(b.rdb, idempotency.Config{Prefix: "x{"}).MarkDone(ctx, "ws", []string{"a"})
		require.ErrorIs(t, err, idempotency.ErrInvalid)
		require.Equal(t, int64(0), b.calls.n.Load()-before)
	})

	t.Run("ReportsRedisErrors", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close()) // nothing listens there now
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		t.Cleanup(func() { _ = rdb.Close() })
		_, err = idempotency.New(rdb, idempotency.Config{}).Claim(ctx, "ws", []idempotency.Item{{OpID: "a"}})
		require.Error(t, err)
		require.False(t, errors.Is(err, idempotency.ErrInvalid))
	})
}

func TestVerdictString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "send", idempotency.Send.String())
	require.Equal(t, "claimed", idempotency.Claimed.String())
	require.Equal(t, "verdict(0)", idempotency.Verdict(0).String())
}
