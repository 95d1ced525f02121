package worker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

const (
	siteID = stacktest.SiteID
	apiKey = stacktest.APIKey
)

// env is one end-to-end setup: a leased Redis database, a fake Track API and
// a producer.
type env struct {
	db   *redistest.DB
	fake *fake.Server
	prod *producer.Producer
	insp *asynq.Inspector
}

func setup(t *testing.T, opts fake.Options) *env {
	t.Helper()
	s := stacktest.New(t, stacktest.Options{Fake: opts})
	return &env{db: s.DB, fake: s.Fake, prod: s.Producer, insp: s.Inspector}
}

func workerConfig(t testing.TB, db *redistest.DB, url string) worker.Config {
	return stacktest.DefaultWorkerConfig(t, db, url)
}

func (e *env) startWorker(t testing.TB, mod func(*worker.Config)) *worker.Worker {
	t.Helper()
	cfg := workerConfig(t, e.db, e.fake.URL)
	if mod != nil {
		mod(&cfg)
	}
	return stacktest.StartWorker(t, cfg)
}

// queued returns the ops still in the queues: pending, active, scheduled,
// retry (archived counted apart).
func (e *env) queued(t testing.TB) (open, archived int) {
	t.Helper()
	for _, q := range []string{task.QueueCritical, task.QueueDefault} {
		info, err := e.insp.GetQueueInfo(q)
		if err != nil {
			continue // queue not created yet
		}
		open += info.Pending + info.Active + info.Scheduled + info.Retry
		archived += info.Archived
	}
	return open, archived
}

// waitDrained waits until the queues hold nothing but archived tasks.
func (e *env) waitDrained(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		open, _ := e.queued(t)
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			l := e.fake.Ledger()
			t.Fatalf("queues not drained after %s: %d open; fake ledger: accepted ops %d unique %d dup %d",
				timeout, open, l.OpsAccepted, l.UniqueOps, l.DuplicateOps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// enqueueEvents enqueues n track events with unique content.
func enqueueEvents(t testing.TB, p *producer.Producer, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		_, err := p.Track(ctx, fmt.Sprintf("%s-u%d", prefix, i%50), "purchase", map[string]any{"n": i, "run": prefix})
		require.NoError(t, err)
	}
}

func requireExactlyOnce(t testing.TB, l fake.Ledger, n int) {
	t.Helper()
	require.EqualValues(t, n, l.UniqueOps, "unique ops accepted (lost = %d)", int64(n)-l.UniqueOps)
	require.Zero(t, l.DuplicateOps, "duplicate ops")
}

func TestDeliversEveryOpOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	const n = 2000
	enqueueEvents(t, e.prod, "once", n)
	ctx := context.Background()
	// A mix of the other actions, on their own people.
	for i := range 20 {
		id := fmt.Sprintf("mix-%d", i)
		_, err := e.prod.Identify(ctx, id, map[string]any{"plan": "pro", "i": i})
		require.NoError(t, err)
		_, err = e.prod.Unsuppress(ctx, id)
		require.NoError(t, err)
	}
	e.startWorker(t, nil)
	e.waitDrained(t, 60*time.Second)
	l := e.fake.Ledger()
	requireExactlyOnce(t, l, n+40)
	require.Zero(t, l.RepeatedIDs, "nothing is sent twice in a healthy run")
	require.Greater(t, l.MaxOpsPerRequest, 1, "ops are batched")
	require.Less(t, l.Requests, int64(n/5), "requests carry many ops each")
}

func TestWorkersShareOneBudget(t *testing.T) {
	t.Parallel()
	// The fake's real limit sits just above the budget: any over-sending shows as 429s.
	e := setup(t, fake.Options{RateLimit: 25, Burst: 5})
	const n = 600
	enqueueEvents(t, e.prod, "budget", n)
	for range 3 {
		e.startWorker(t, func(c *worker.Config) {
			// Small batches so the budget, not the batch size, is the limit.
			c.Workspaces[0].Batch.MaxOps = 5
			c.Workspaces[0].Limit = ratelimit.Limit{Rate: 20, Burst: 2}
		})
	}
	e.waitDrained(t, 90*time.Second)
	l := e.fake.Ledger()
	requireExactlyOnce(t, l, n)
	require.LessOrEqual(t, l.MaxRequestsPerSecond, 20+2, "accepted requests in any 1 s window ≤ budget + burst")
	require.LessOrEqual(t, float64(l.RateLimited), 0.001*float64(l.Requests), "429s ≤ 0.1%% of requests")
}

func TestOutageLongerThanBreakerTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	require.NoError(t, e.fake.SetFaults(fake.Faults{Down: true, DownStatus: 503}))
	const n = 1000
	enqueueEvents(t, e.prod, "outage", n)
	w := e.startWorker(t, nil)
	require.Eventually(t, func() bool {
		h, ok := w.Health(context.Background())
		return !ok && breaker.State(h.Customerio.CircuitState) == breaker.StateOpen
	}, 20*time.Second, 20*time.Millisecond, "the circuit opens")
	// The outage outlasts the breaker's timeout: its half-open probes fail
	// twice more while ops keep waiting.
	opened := e.fake.Ledger().ServerErrors
	require.Eventually(t, func() bool { return e.fake.Ledger().ServerErrors >= opened+2 }, 20*time.Second,
		20*time.Millisecond, "two probes after the breaker's timeout")
	enqueueEvents(t, e.prod, "outage-more", 200)
	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.waitDrained(t, 60*time.Second)
	l := e.fake.Ledger()
	requireExactlyOnce(t, l, n+200)
	_, archived := e.queued(t)
	require.Zero(t, archived, "no retry budget ran out")
	dl, err := w.DeadLetters().Count(context.Background(), producer.DefaultWorkspace)
	require.NoError(t, err)
	require.Zero(t, dl)
	// The breaker held requests back: far fewer 503s than one per op.
	require.Less(t, l.ServerErrors, int64(100))
}

func TestPermanentRejectIsDeadLetteredAndReplayed(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{Faults: fake.Faults{RejectAttribute: "poison"}})
	ctx := context.Background()
	enqueueEvents(t, e.prod, "dlq", 50)
	bad, err := e.prod.Track(ctx, "dlq-bad", "purchase", map[string]any{"poison": true})
	require.NoError(t, err)
	w := e.startWorker(t, nil)
	e.waitDrained(t, 30*time.Second)
	l := e.fake.Ledger()
	requireExactlyOnce(t, l, 50)

	dls, err := w.DeadLetters().List(ctx, producer.DefaultWorkspace, worker.DeadLetterFilter{})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	require.Equal(t, bad.OpID, dls[0].OpID)
	require.Contains(t, dls[0].Reason, "batch_index")
	require.NotZero(t, dls[0].Status)

	// The cause is fixed; the replay sends the same op (same event id) again.
	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	dup, err := w.DeadLetters().Replay(ctx, &dls[0], worker.ReplayOptions{})
	require.NoError(t, err)
	require.False(t, dup)
	e.waitDrained(t, 30*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), 51)
	n, err := w.DeadLetters().Count(ctx, producer.DefaultWorkspace)
	require.NoError(t, err)
	require.Zero(t, n)
	found := false
	for _, r := range e.fake.Requests() {
		for _, op := range r.Ops {
			if op.ID == bad.EventID && r.Status < 300 {
				found = true
			}
		}
	}
	require.True(t, found, "the replayed op carries its original event id")
}

func TestSuppressIsNeverFollowedByOlderIdentify(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	for i := range 10 {
		id := fmt.Sprintf("gone-%d", i)
		_, err := e.prod.Identify(ctx, id, map[string]any{"plan": "pro"})
		require.NoError(t, err)
		_, err = e.prod.Track(ctx, id, "viewed", map[string]any{"i": i})
		require.NoError(t, err)
		_, err = e.prod.Suppress(ctx, id)
		require.NoError(t, err)
	}
	_, err := e.prod.Identify(ctx, "kept", map[string]any{"plan": "free"})
	require.NoError(t, err)
	e.startWorker(t, nil)
	e.waitDrained(t, 30*time.Second)

	suppressedAt := map[string]int{}
	for i, r := range e.fake.Requests() {
		for _, op := range r.Ops {
			if op.Identifiers == nil {
				continue
			}
			if op.Action == track.ActionSuppress {
				suppressedAt[op.Identifiers.ID] = i
			}
		}
	}
	require.Len(t, suppressedAt, 10)
	for _, r := range e.fake.Requests() {
		for _, op := range r.Ops {
			if op.Identifiers != nil && op.Action != track.ActionSuppress {
				_, gone := suppressedAt[op.Identifiers.ID]
				require.False(t, gone, "%s for suppressed person %s was sent", op.Action, op.Identifiers.ID)
			}
		}
	}
	l := e.fake.Ledger()
	require.EqualValues(t, 11, l.UniqueOps, "10 suppress + the unrelated identify")
}

func TestUnauthorizedPausesWithoutLoss(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{Faults: fake.Faults{Unauthorized: true}})
	enqueueEvents(t, e.prod, "auth", 100)
	w := e.startWorker(t, func(c *worker.Config) { c.UnauthorizedPause = 500 * time.Millisecond })
	require.Eventually(t, func() bool {
		h, ok := w.Health(context.Background())
		return !ok && h.Customerio.Unauthorized
	}, 10*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second)
	_, archived := e.queued(t)
	require.Zero(t, archived)
	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.waitDrained(t, 30*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), 100)
	_, ok := w.Health(context.Background())
	require.True(t, ok)
}

// TestKilledWorkerLosesNothing SIGKILLs a worker process with batches in
// flight; asynq redelivers its leased tasks (after its 30 s lease and 30 s
// recovery cutoff) to another worker, and the done-markers keep the effect
// single.
func TestKilledWorkerLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 70 s: asynq recovers a dead worker's leases after 60 s")
	}
	t.Parallel()
	e := setup(t, fake.Options{Faults: fake.Faults{Latency: 300 * time.Millisecond}})
	const n = 1500
	enqueueEvents(t, e.prod, "kill", n)

	e.killChildWorkerAfter(t, 200, n, 30*time.Second)

	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.startWorker(t, nil)
	e.waitDrained(t, 150*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), n)
}

// killChildWorkerAfter runs a worker in a process of its own
// (TestWorkerChildProcess), SIGKILLs it once the fake accepted at least
// accepted ops (others are then in flight), and checks the kill came before
// all n ops were delivered.
func (e *env) killChildWorkerAfter(t *testing.T, accepted, n int, within time.Duration) {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^TestWorkerChildProcess$", "-test.v")
	child.Env = append(os.Environ(),
		"CIOQ_WORKER_CHILD=1",
		"CIOQ_CHILD_REDIS="+e.db.Addr, "CIOQ_CHILD_DB="+strconv.Itoa(e.db.Index), "CIOQ_CHILD_URL="+e.fake.URL)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	require.NoError(t, child.Start())
	require.Eventually(t, func() bool { return e.fake.Ledger().OpsAccepted >= int64(accepted) }, within, 5*time.Millisecond)
	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	_ = child.Wait()
	require.Less(t, e.fake.Ledger().OpsAccepted, int64(n), "the kill came mid-run")
}

// TestWorkerChildProcess is the worker the kill test runs in a process of
// its own; it does nothing unless CIOQ_WORKER_CHILD is set.
func TestWorkerChildProcess(t *testing.T) {
	if os.Getenv("CIOQ_WORKER_CHILD") == "" {
		t.Skip("helper process for TestKilledWorkerLosesNothing")
	}
	idx, _ := strconv.Atoi(os.Getenv("CIOQ_CHILD_DB"))
	db := &redistest.DB{Addr: os.Getenv("CIOQ_CHILD_REDIS"), Index: idx}
	cfg := workerConfig(t, db, os.Getenv("CIOQ_CHILD_URL"))
	w, err := worker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, w.Start())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(2 * time.Minute):
	}
	w.Shutdown()
}

func TestGracefulShutdownLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{Faults: fake.Faults{Latency: 100 * time.Millisecond}})
	const n = 1000
	enqueueEvents(t, e.prod, "graceful", n)
	w := e.startWorker(t, nil)
	require.Eventually(t, func() bool { return e.fake.Ledger().OpsAccepted > 0 }, 30*time.Second, 5*time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.Shutdown() }()
	wg.Wait()
	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.startWorker(t, nil)
	e.waitDrained(t, 60*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), n)
}
