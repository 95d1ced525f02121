package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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

// reg registers items with fresh stamps and returns them stamped.
func reg(t *testing.T, store *idempotency.Store, ws string, items ...idempotency.Item) []idempotency.Item {
	t.Helper()
	stamps, err := store.Register(context.Background(), ws, items)
	require.NoError(t, err)
	out := make([]idempotency.Item, len(items))
	for i, it := range items {
		it.Stamp = stamps[i]
		out[i] = it
	}
	return out
}

func claim(t *testing.T, store *idempotency.Store, ws string, items ...idempotency.Item) []idempotency.Check {
	t.Helper()
	got, err := store.Claim(context.Background(), ws, items)
	require.NoError(t, err)
	return got
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("GivesEveryVerdict", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		done := reg(t, store, "ws", idempotency.Item{OpID: "done-op", Person: "p1", Kind: idempotency.KindEvent})[0]
		require.NoError(t, store.MarkDone(ctx, "ws", []idempotency.Item{done}))
		old := reg(t, store, "ws", idempotency.Item{OpID: "old-op", Person: "p1", Kind: idempotency.KindEvent})[0]
		del := reg(t, store, "ws", idempotency.Item{OpID: "del-1", Person: "p1", Kind: idempotency.KindDelete})[0]
		require.NoError(t, store.MarkDone(ctx, "ws", []idempotency.Item{del}))
		newer := reg(t, store, "ws", idempotency.Item{OpID: "newer-op", Person: "p1", Kind: idempotency.KindIdentify})[0]
		claim(t, store, "ws", idempotency.Item{OpID: "held-op"})

		got := claim(t, store, "ws",
			idempotency.Item{OpID: "new-op", Person: "p2", Stamp: 1, Kind: idempotency.KindEvent},
			done, old, newer,
			idempotency.Item{OpID: "not-droppable", Person: "p1", Stamp: old.Stamp, Kind: idempotency.KindBarrier},
			idempotency.Item{OpID: "held-op"},
			idempotency.Item{OpID: "twice"},
			idempotency.Item{OpID: "twice"},
		)
		want := []idempotency.Check{
			{Verdict: idempotency.Send},
			{Verdict: idempotency.Done},
			{Verdict: idempotency.Tombstoned, Tombstone: &idempotency.Tombstone{OpID: "del-1", Kind: idempotency.KindDelete, Stamp: del.Stamp}},
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
		// The first calls may load the scripts (EVALSHA, then EVAL).
		warm := []idempotency.Item{{OpID: "warm"}}
		_, err := store.Claim(ctx, "ws", warm)
		require.NoError(t, err)
		require.NoError(t, store.MarkDone(ctx, "ws", warm))
		_, err = store.Register(ctx, "ws", warm)
		require.NoError(t, err)

		for _, n := range []int{1, 10, 500} {
			items := make([]idempotency.Item, n)
			for i := range items {
				items[i] = idempotency.Item{OpID: fmt.Sprintf("op-%d-%d", n, i), Person: fmt.Sprintf("p%d", i%7),
					Kind: idempotency.KindIdentify, Timestamp: int64(i)}
			}
			before := b.calls.n.Load()
			items = reg(t, store, "ws", items...)
			require.Equal(t, int64(1), b.calls.n.Load()-before, "Register of %d items", n)

			before = b.calls.n.Load()
			_, err := store.Claim(ctx, "ws", items)
			require.NoError(t, err)
			require.Equal(t, int64(1), b.calls.n.Load()-before, "Claim of %d items", n)

			for _, settle := range []func(context.Context, string, []idempotency.Item) error{store.Release, store.MarkDone, store.Forget} {
				before = b.calls.n.Load()
				require.NoError(t, settle(ctx, "ws", items))
				require.Equal(t, int64(1), b.calls.n.Load()-before, "settle of %d ops", n)
			}
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
		require.Equal(t, []idempotency.Verdict{idempotency.Send}, verdicts(claim(t, store, "ws", items...)))
		require.Equal(t, []idempotency.Verdict{idempotency.Claimed}, verdicts(claim(t, store, "ws", items...)))
		require.Eventually(t, func() bool {
			got, err := store.Claim(ctx, "ws", items)
			return err == nil && got[0].Verdict == idempotency.Send
		}, 10*time.Second, 20*time.Millisecond)
	})

	t.Run("ReleaseLetsTheOpBeClaimedAgain", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		items := []idempotency.Item{{OpID: "a"}, {OpID: "b"}}
		claim(t, store, "ws", items...)
		require.NoError(t, store.Release(ctx, "ws", items[:1]))
		require.Equal(t, []idempotency.Verdict{idempotency.Send, idempotency.Claimed}, verdicts(claim(t, store, "ws", items...)))
	})

	t.Run("AnotherStoresClaimIsClaimedAndNotReleasedByUs", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{})
		other := idempotency.New(b.db.Client, idempotency.Config{Prefix: b.prefix})
		items := []idempotency.Item{{OpID: "a"}}
		require.Equal(t, []idempotency.Verdict{idempotency.Send}, verdicts(claim(t, other, "ws", items...)))
		require.Equal(t, []idempotency.Verdict{idempotency.Claimed}, verdicts(claim(t, store, "ws", items...)))
		// Neither Release nor Forget by us drops the other store's claim.
		require.NoError(t, store.Release(ctx, "ws", items))
		require.NoError(t, store.Forget(ctx, "ws", items))
		require.Equal(t, []idempotency.Verdict{idempotency.Claimed}, verdicts(claim(t, store, "ws", items...)))
		v, err := b.db.Client.Get(ctx, store.OpKey("ws", "a")).Result()
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(v, "c:"), "claim kept: %q", v)
	})

	t.Run("MarkDoneIsIdempotentOneKeyPerOp", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{DoneTTL: time.Hour})
		a := []idempotency.Item{{OpID: "a"}}
		claim(t, store, "ws", a...)
		require.NoError(t, store.MarkDone(ctx, "ws", a))
		require.NoError(t, store.MarkDone(ctx, "ws", append(a, a...)))

		done, err := store.IsDone(ctx, "ws", "a")
		require.NoError(t, err)
		require.True(t, done)
		done, err = store.IsDone(ctx, "ws", "b")
		require.NoError(t, err)
		require.False(t, done)

		keys, err := b.db.Client.Keys(ctx, b.prefix+"*").Result()
		require.NoError(t, err)
		require.Equal(t, []string{store.OpKey("ws", "a")}, keys, "the claim became the done-marker")
		ttl, err := b.db.Client.TTL(ctx, store.OpKey("ws", "a")).Result()
		require.NoError(t, err)
		require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 60)
		require.Equal(t, []idempotency.Verdict{idempotency.Done}, verdicts(claim(t, store, "ws", a...)))
	})

	t.Run("WorkspacesAreSeparate", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		require.NoError(t, store.MarkDone(ctx, "ws1", []idempotency.Item{{OpID: "a"}}))
		require.Equal(t, []idempotency.Verdict{idempotency.Send}, verdicts(claim(t, store, "ws2", idempotency.Item{OpID: "a"})))
	})

	t.Run("ThousandItemsInOneCall", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{})
		items := make([]idempotency.Item, 1000)
		var done []idempotency.Item
		for i := range items {
			k := idempotency.KindEvent
			if i%2 == 1 {
				k = idempotency.KindBarrier
			}
			items[i] = idempotency.Item{OpID: fmt.Sprintf("%026d", i), Person: fmt.Sprintf("person-%d", i%50), Kind: k, Stamp: int64(i + 1)}
			if i%3 == 0 {
				done = append(done, items[i])
			}
		}
		require.NoError(t, store.MarkDone(ctx, "ws", done))
		reg(t, store, "ws", idempotency.Item{OpID: "del", Person: "person-0", Kind: idempotency.KindDelete, Stamp: 5000})

		before := b.calls.n.Load()
		got := claim(t, store, "ws", items...)
		require.LessOrEqual(t, b.calls.n.Load()-before, int64(1))
		require.Len(t, got, 1000)
		count := map[idempotency.Verdict]int{}
		for i, c := range got {
			count[c.Verdict]++
			want := idempotency.Send
			switch {
			case i%3 == 0:
				want = idempotency.Done
			case i%50 == 0: // person-0, even index: droppable, older than the delete
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
		_, err = store.Claim(ctx, "ws", []idempotency.Item{{OpID: "a", Person: "p", Kind: 'z'}})
		require.ErrorIs(t, err, idempotency.ErrInvalid)
		err = idempotency.New(b.rdb, idempotency.Config{Prefix: "x{"}).MarkDone(ctx, "ws", []idempotency.Item{{OpID: "a"}})
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

// TestOrderPerPerson: the ops of one person take effect in stamp order
// where the order matters, and nothing waits where it does not.
func TestOrderPerPerson(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ws = "ws"
	item := func(id string, k idempotency.Kind, ts int64) idempotency.Item {
		return idempotency.Item{OpID: id, Person: "u1", Kind: k, Timestamp: ts}
	}

	t.Run("IdentifyAfterDeleteWaitsForIt", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		its := reg(t, store, ws, item("del", idempotency.KindDelete, 10), item("idf", idempotency.KindIdentify, 10))
		del, idf := its[0], its[1]
		got := claim(t, store, ws, idf)
		require.Equal(t, idempotency.Waiting, got[0].Verdict)
		require.Equal(t, &idempotency.Blocker{OpID: "del", Kind: idempotency.KindDelete, Stamp: del.Stamp}, got[0].Blocker)
		// The delete fails once and is released: still queued, still first.
		require.Equal(t, idempotency.Send, claim(t, store, ws, del)[0].Verdict)
		require.NoError(t, store.Release(ctx, ws, []idempotency.Item{del}))
		require.Equal(t, idempotency.Waiting, claim(t, store, ws, idf)[0].Verdict)
		// Delivered: the identify goes.
		require.Equal(t, idempotency.Send, claim(t, store, ws, del)[0].Verdict)
		require.NoError(t, store.MarkDone(ctx, ws, []idempotency.Item{del}))
		require.Equal(t, idempotency.Send, claim(t, store, ws, idf)[0].Verdict)
	})

	t.Run("DeleteDropsOlderQueuedOpsWithoutWaiting", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		its := reg(t, store, ws, item("idf", idempotency.KindIdentify, 10), item("ev", idempotency.KindEvent, 10),
			item("dev", idempotency.KindUpdate, 10), item("del", idempotency.KindDelete, 11))
		require.Equal(t, idempotency.Send, claim(t, store, ws, its[3])[0].Verdict, "queued older ops do not hold a delete back")
		got := verdicts(claim(t, store, ws, its[:3]...))
		require.Equal(t, []idempotency.Verdict{idempotency.Tombstoned, idempotency.Tombstoned, idempotency.Tombstoned}, got)
	})

	t.Run("DeleteWaitsForOlderOpsInFlight", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		ev := reg(t, store, ws, item("ev", idempotency.KindEvent, 10))[0]
		require.Equal(t, idempotency.Send, claim(t, store, ws, ev)[0].Verdict) // its request is on its way
		del := reg(t, store, ws, item("del", idempotency.KindDelete, 11))[0]
		got := claim(t, store, ws, del)
		require.Equal(t, idempotency.Waiting, got[0].Verdict)
		require.True(t, got[0].Blocker.InFlight)
		require.NoError(t, store.MarkDone(ctx, ws, []idempotency.Item{ev}))
		require.Equal(t, idempotency.Send, claim(t, store, ws, del)[0].Verdict)
	})

	t.Run("InFlightCountExpiresWithTheClaim", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{ClaimTTL: 100 * time.Millisecond})
		ev := reg(t, store, ws, item("ev", idempotency.KindEvent, 10))[0]
		claim(t, store, ws, ev) // and the worker dies
		del := reg(t, store, ws, item("del", idempotency.KindSuppress, 11))[0]
		require.Equal(t, idempotency.Waiting, claim(t, store, ws, del)[0].Verdict)
		require.Eventually(t, func() bool { return claim(t, store, ws, del)[0].Verdict == idempotency.Send },
			5*time.Second, 20*time.Millisecond)
	})

	t.Run("IdentifiesOfOneSecondKeepTheirOrder", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		its := reg(t, store, ws, item("i1", idempotency.KindIdentify, 100), item("i2", idempotency.KindIdentify, 100),
			item("i3", idempotency.KindIdentify, 101), item("e", idempotency.KindEvent, 100))
		got := claim(t, store, ws, its[1], its[2], its[3])
		require.Equal(t, []idempotency.Verdict{idempotency.Waiting, idempotency.Send, idempotency.Send}, verdicts(got),
			"only the identify of the same second waits; another second or an event does not")
		require.Equal(t, "i1", got[0].Blocker.OpID)
		// In one call, in order: both go, the older first.
		require.Equal(t, []idempotency.Verdict{idempotency.Send, idempotency.Send}, verdicts(claim(t, store, ws, its[0], its[1])))
	})

	t.Run("SuppressedPersonsOpsAreDroppedUntilUnsuppress", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		sup := reg(t, store, ws, item("sup", idempotency.KindSuppress, 10))[0]
		during := reg(t, store, ws, item("during", idempotency.KindIdentify, 11))[0]
		uns := reg(t, store, ws, item("uns", idempotency.KindUnsuppress, 12))[0]
		after := reg(t, store, ws, item("after", idempotency.KindIdentify, 13))[0]

		got := claim(t, store, ws, during)
		require.Equal(t, idempotency.Suppressed, got[0].Verdict)
		require.Equal(t, "sup", got[0].Tombstone.OpID)
		require.Equal(t, idempotency.Waiting, claim(t, store, ws, uns)[0].Verdict, "the unsuppress follows the suppress")
		require.Equal(t, idempotency.Send, claim(t, store, ws, sup)[0].Verdict)
		require.NoError(t, store.MarkDone(ctx, ws, []idempotency.Item{sup}))
		require.Equal(t, idempotency.Waiting, claim(t, store, ws, after)[0].Verdict, "the identify follows the unsuppress")
		require.Equal(t, idempotency.Send, claim(t, store, ws, uns)[0].Verdict)
		require.NoError(t, store.MarkDone(ctx, ws, []idempotency.Item{uns}))
		require.Equal(t, idempotency.Send, claim(t, store, ws, after)[0].Verdict)
	})

	t.Run("ALaterUnsuppressDoesNotHideAnEarlierOne", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		its := reg(t, store, ws, item("sup", idempotency.KindSuppress, 10), item("uns1", idempotency.KindUnsuppress, 11),
			item("idf", idempotency.KindIdentify, 12), item("uns2", idempotency.KindUnsuppress, 13))
		require.NoError(t, store.MarkDone(ctx, ws, its[:2]))
		require.Equal(t, idempotency.Send, claim(t, store, ws, its[2])[0].Verdict,
			"queued after the first unsuppress: sent, whatever unsuppress came later")
	})

	t.Run("DoomedOpsHoldNothingBack", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		its := reg(t, store, ws, item("dev", idempotency.KindUpdate, 10), item("idf", idempotency.KindIdentify, 10),
			item("del", idempotency.KindDelete, 11), item("ev", idempotency.KindEvent, 12), item("idf2", idempotency.KindIdentify, 10))
		require.Equal(t, idempotency.Send, claim(t, store, ws, its[2])[0].Verdict)
		require.NoError(t, store.MarkDone(ctx, ws, its[2:3]))
		// dev and idf are still queued (their retry has not come) but the
		// delete dooms them: the newer ops do not wait for them.
		require.Equal(t, []idempotency.Verdict{idempotency.Send, idempotency.Send}, verdicts(claim(t, store, ws, its[3], its[4])))
	})

	t.Run("ForgottenDeleteTakesBackItsTombstone", func(t *testing.T) {
		t.Parallel()
		store, _ := setup(t, idempotency.Config{})
		its := reg(t, store, ws, item("idf", idempotency.KindIdentify, 10), item("del", idempotency.KindDelete, 11))
		claim(t, store, ws, its[1])
		require.NoError(t, store.Forget(ctx, ws, its[1:])) // dead-lettered
		tb, err := store.Tombstone(ctx, ws, "u1")
		require.NoError(t, err)
		require.Nil(t, tb)
		require.Equal(t, idempotency.Send, claim(t, store, ws, its[0])[0].Verdict)
	})

	t.Run("SettledOpsLeaveNoKeysBehind", func(t *testing.T) {
		t.Parallel()
		store, b := setup(t, idempotency.Config{})
		its := reg(t, store, ws, item("i", idempotency.KindIdentify, 10), item("x", idempotency.KindUpdate, 10),
			item("e", idempotency.KindEvent, 10))
		claim(t, store, ws, its...)
		require.NoError(t, store.Forget(ctx, ws, its))
		keys, err := b.db.Client.Keys(ctx, b.prefix+"*").Result()
		require.NoError(t, err)
		require.Equal(t, []string{store.StampKey(ws)}, keys)
	})
}

func TestRegisterStampsIncrease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, b := setup(t, idempotency.Config{})
	ahead := time.Now().Add(time.Hour).UnixMicro()
	require.NoError(t, b.db.Client.Set(ctx, store.StampKey("ws"), ahead, 0).Err())
	its := reg(t, store, "ws", idempotency.Item{OpID: "a"}, idempotency.Item{OpID: "b", Stamp: 7}, idempotency.Item{OpID: "c"})
	require.Equal(t, []int64{ahead + 1, 7, ahead + 2}, []int64{its[0].Stamp, its[1].Stamp, its[2].Stamp})
	its = reg(t, store, "ws", idempotency.Item{OpID: "d"})
	require.Equal(t, ahead+3, its[0].Stamp)
	// Stamps for another workspace follow the clock.
	its = reg(t, store, "other", idempotency.Item{OpID: "e"})
	require.InDelta(t, time.Now().UnixMicro(), its[0].Stamp, float64(time.Minute.Microseconds()))
}

func TestVerdictString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "send", idempotency.Send.String())
	require.Equal(t, "claimed", idempotency.Claimed.String())
	require.Equal(t, "waiting", idempotency.Waiting.String())
	require.Equal(t, "verdict(0)", idempotency.Verdict(0).String())
}
