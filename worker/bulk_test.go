package worker_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// bulkOps returns n track events with unique content and keys; every
// poisonEvery-th op (when > 0) carries the attribute "poison".
func bulkOps(prefix string, n, poisonEvery int) []producer.Op {
	ops := make([]producer.Op, n)
	for i := range ops {
		attrs := map[string]any{"n": i, "run": prefix}
		if poisonEvery > 0 && i%poisonEvery == poisonEvery-1 {
			attrs["poison"] = true
		}
		ops[i] = producer.Op{Key: fmt.Sprintf("%s-%d", prefix, i), Op: track.Op{Action: track.ActionEvent,
			Identifiers: &track.Identifiers{ID: fmt.Sprintf("%s-u%d", prefix, i%500)}, Name: "backfill", Attributes: attrs}}
	}
	return ops
}

// openWithBulk returns the tasks still open in the default workspace's
// lanes, the bulk lane included.
func (e *env) openWithBulk(t testing.TB) int {
	open, _ := e.queued(t)
	if info, err := e.insp.GetQueueInfo(task.QueueBulk); err == nil {
		open += info.Pending + info.Active + info.Scheduled + info.Retry
	}
	return open
}

func (e *env) waitBulkDrained(t testing.TB, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return e.openWithBulk(t) == 0 }, timeout, 50*time.Millisecond,
		"queues not drained; ledger %+v", e.fake.Ledger().WorkspaceLedger)
}

// slowRequests gives requests of 2,000 ops (slow under -race) time to be
// answered: a request the client gives up on after the fake accepted it is
// sent again (a repeated event id, not a duplicate, but not what these
// tests measure).
func (e *env) slowRequests(t testing.TB) func(*worker.Config) {
	return func(c *worker.Config) {
		client, err := track.NewClient(track.Config{SiteID: siteID, APIKey: apiKey, BaseURL: e.fake.URL, Timeout: 20 * time.Second})
		require.NoError(t, err)
		c.Workspaces[0].Sender = client
		c.RequestTimeout = 20 * time.Second
	}
}

func (e *env) enqueueBulk(t testing.TB, ops []producer.Op) producer.BulkResult {
	t.Helper()
	res, err := e.prod.EnqueueBulk(context.Background(), ops)
	require.NoError(t, err)
	require.Empty(t, res.Invalid)
	require.Equal(t, len(ops), res.Enqueued)
	return res
}

func TestBulkDeliversEveryOpOnce(t *testing.T) {
	t.Parallel()

	t.Run("InFewRequests", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{})
		const n = 10000
		e.enqueueBulk(t, bulkOps("bulk", n, 0))
		e.startWorker(t, e.slowRequests(t))
		e.waitBulkDrained(t, 60*time.Second)
		l := e.fake.Ledger()
		requireExactlyOnce(t, l, n)
		require.EqualValues(t, n/producer.DefaultBulkMaxOps, l.Requests, "one request per bulk task: %+v", l.WorkspaceLedger)
		require.EqualValues(t, producer.DefaultBulkMaxOps, l.MaxOpsPerRequest)
	})

	t.Run("PartialBatchErrorsDeadLetterExactlyTheRejectedOps", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{Faults: fake.Faults{RejectAttribute: "poison"}})
		const n, every = 6000, 100
		e.enqueueBulk(t, bulkOps("partial", n, every))
		w := e.startWorker(t, e.slowRequests(t))
		e.waitBulkDrained(t, 60*time.Second)
		requireExactlyOnce(t, e.fake.Ledger(), n-n/every)
		ctx := context.Background()
		dead, err := w.DeadLetters().List(ctx, producer.DefaultWorkspace, worker.DeadLetterFilter{Limit: 1000})
		require.NoError(t, err)
		require.Len(t, dead, n/every)
		for _, d := range dead {
			i, err := strconv.Atoi(d.OpID[len("partial-"):])
			require.NoError(t, err)
			require.Equal(t, every-1, i%every, "only poison ops are dead-lettered: %s", d.OpID)
			require.NotEmpty(t, d.Reason)
			require.Equal(t, string(track.ActionEvent), d.Action)
		}
	})

	t.Run("ThirtyPercentServerErrors", func(t *testing.T) {
		t.Parallel()
		// A fixed seed: 20,000 ops are about 10 requests, and at 30% a
		// random run sees no error one time in 35.
		e := setup(t, fake.Options{Faults: fake.Faults{ErrorRate: 0.3}, Seed: 3})
		const n = 20000
		e.enqueueBulk(t, bulkOps("flaky", n, 0))
		e.startWorker(t, e.slowRequests(t))
		e.waitBulkDrained(t, 120*time.Second)
		l := e.fake.Ledger()
		requireExactlyOnce(t, l, n)
		require.Positive(t, l.ServerErrors, "the fault was exercised")
	})

	t.Run("ReRunningTheImportAfterDeliverySendsNothing", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{})
		const n = 3000
		ops := bulkOps("rerun", n, 0)
		e.enqueueBulk(t, ops)
		e.startWorker(t, e.slowRequests(t))
		e.waitBulkDrained(t, 60*time.Second)
		requests := e.fake.Ledger().Requests
		// The tasks completed and left asynq: the same input is queued
		// again, and the done-markers skip every op.
		e.enqueueBulk(t, ops)
		e.waitBulkDrained(t, 60*time.Second)
		l := e.fake.Ledger()
		requireExactlyOnce(t, l, n)
		require.Equal(t, requests, l.Requests, "nothing sent again")
	})

	t.Run("OpsClaimedElsewhereAreRequeuedAlone", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{})
		ops := bulkOps("claimed", 50, 0)
		// The same ops are also queued one by one (an earlier single-op
		// import): whichever copy claims an op first sends it.
		for _, op := range ops[:25] {
			_, err := e.prod.Enqueue(context.Background(), op)
			require.NoError(t, err)
		}
		e.enqueueBulk(t, ops)
		e.startWorker(t, e.slowRequests(t))
		e.waitBulkDrained(t, 60*time.Second)
		requireExactlyOnce(t, e.fake.Ledger(), 50)
	})
}

// TestBulkLeavesLiveOpsFlowing runs a backfill that takes many seconds at a
// small budget and enqueues live single ops meanwhile: each of them is
// delivered while the backfill is still running, not after it.
func TestBulkLeavesLiveOpsFlowing(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{RequestLogOps: 200_000})
	const n = 40000 // 20 bulk tasks at 5 req/s (4 for the default lane): ≥ 4 s
	e.enqueueBulk(t, bulkOps("backfill", n, 0))
	e.startWorker(t, func(c *worker.Config) {
		e.slowRequests(t)(c)
		c.Workspaces[0].Limit = ratelimit.Limit{Rate: 5, Burst: 1}
	})
	require.Eventually(t, func() bool { return e.fake.Ledger().OpsAccepted >= 2*producer.DefaultBulkMaxOps },
		60*time.Second, 10*time.Millisecond, "backfill started")

	ctx := context.Background()
	const live = 20
	sent := map[string]time.Time{}
	for i := range live {
		r, err := e.prod.Track(ctx, fmt.Sprintf("live-u%d", i), "clicked", map[string]any{"i": i})
		require.NoError(t, err)
		sent[r.EventID] = time.Now()
		time.Sleep(50 * time.Millisecond)
	}
	var lat []time.Duration
	require.Eventually(t, func() bool {
		lat = lat[:0]
		for _, r := range e.fake.Requests() {
			for _, op := range r.Ops {
				if at, ok := sent[op.ID]; ok {
					lat = append(lat, r.Time.Sub(at))
				}
			}
		}
		return len(lat) == live
	}, 60*time.Second, 20*time.Millisecond)
	backfilled := e.fake.Ledger().OpsAccepted - live
	t.Logf("live ops delivered while %d of %d backfill ops were; latencies %v", backfilled, n, lat)
	require.Less(t, backfilled, int64(n), "every live op was delivered before the backfill ended")

	e.waitBulkDrained(t, 120*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), n+live)
}

// TestKilledWorkerMidBulkLosesNothing SIGKILLs a worker process with bulk
// requests in flight; asynq redelivers its leased bulk tasks (after about
// 60 s) to another worker, whose done-markers skip every op already
// accepted.
func TestKilledWorkerMidBulkLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 70 s: asynq recovers a dead worker's leases after 60 s")
	}
	t.Parallel()
	e := setup(t, fake.Options{Faults: fake.Faults{Latency: 300 * time.Millisecond}})
	const n = 30000
	e.enqueueBulk(t, bulkOps("bulkkill", n, 0))

	e.killChildWorkerAfter(t, 4000, n, 60*time.Second)

	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.startWorker(t, e.slowRequests(t))
	e.waitBulkDrained(t, 150*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), n)
}
