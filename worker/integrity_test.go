package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// Tests of the paths that lost, archived or reordered ops (issue
// "Nothing lost, nothing twice, last write wins"): each checks what
// Customer.io (the fake) ends with, not only what cioq says.

func (e *env) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, timeout, 20*time.Millisecond, what)
}

func (e *env) person(t *testing.T, key string) fake.Person {
	t.Helper()
	return e.fake.People(siteID)[key]
}

// TestDelayAfterTheLastRetryIsNotArchived: an op that used its whole retry
// budget on a 503 and then meets 429s waits them out (a delay never counts)
// and is delivered; asynq archives nothing.
func TestDelayAfterTheLastRetryIsNotArchived(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	p, err := producer.New(producer.Config{Redis: e.db.ConnOpt(), MaxRetry: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	require.NoError(t, e.fake.SetFaults(fake.Faults{FailContaining: `"name":"signup"`, FailTimes: 1}))
	_, err = p.Track(ctx, "u1", "signup", nil)
	require.NoError(t, err)
	e.startWorker(t, nil)

	e.waitFor(t, "the op's one counted failure", 20*time.Second, func() bool { return e.fake.Ledger().ServerErrors >= 1 })
	require.NoError(t, e.fake.SetFaults(fake.Faults{Storm429: true}))
	e.waitFor(t, "429s after the budget is spent", 30*time.Second, func() bool { return e.fake.Ledger().RateLimited >= 2 })
	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.waitDrained(t, 30*time.Second)

	requireExactlyOnce(t, e.fake.Ledger(), 1)
	_, archived := e.queued(t)
	require.Zero(t, archived, "nothing in asynq's archive")
}

// TestRetriesThatRunOutAreDeadLettered: ops whose real failures use up
// their budget, single and bulk, end in cioq's dead-letter store with the
// last error and their attempts, never in asynq's archive, and their
// history says dead_lettered.
func TestRetriesThatRunOutAreDeadLettered(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{Faults: fake.Faults{Down: true}})
	ctx := context.Background()
	p, err := producer.New(producer.Config{Redis: e.db.ConnOpt(), MaxRetry: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	const singles, bulk = 5, 40
	for i := range singles {
		_, err := p.Track(ctx, fmt.Sprintf("single-%d", i), "signup", nil)
		require.NoError(t, err)
	}
	res, err := p.EnqueueBulk(ctx, bulkOps("exhaust", bulk, 0))
	require.NoError(t, err)
	require.Equal(t, bulk, res.Enqueued)
	w := e.startWorker(t, func(c *worker.Config) { c.BreakerFailures = 1000 }) // every attempt reaches the fake

	e.waitFor(t, "every op dead-lettered", 60*time.Second, func() bool {
		n, err := w.DeadLetters().Count(ctx, producer.DefaultWorkspace)
		return err == nil && n == singles+bulk
	})
	e.waitDrained(t, 30*time.Second)
	e.waitFor(t, "nothing left in the bulk lane either", 30*time.Second, func() bool { return e.openWithBulk(t) == 0 })
	_, archived := e.queued(t)
	require.Zero(t, archived, "nothing in asynq's archive")
	if info, err := e.insp.GetQueueInfo(task.QueueBulk); err == nil {
		require.Zero(t, info.Archived, "nothing in the bulk lane's archive")
	}
	dls, err := w.DeadLetters().List(ctx, producer.DefaultWorkspace, worker.DeadLetterFilter{Limit: 100})
	require.NoError(t, err)
	for _, dl := range dls {
		require.Equal(t, 503, dl.Status, dl.OpID)
		require.Contains(t, dl.Reason, "retries exhausted", dl.OpID)
		require.Equal(t, 3, dl.Attempts, "the first attempt and its 2 retries: %s", dl.OpID)
	}
	require.Zero(t, e.fake.Ledger().OpsAccepted)
}

// TestDeleteThenIdentifyEndsWithThePerson: delete u1, then identify u1
// (the app re-created the person). The delete meets a 503; the identify
// must not overtake it, or Customer.io ends with u1 deleted.
func TestDeleteThenIdentifyEndsWithThePerson(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	e.startWorker(t, nil)
	_, err := e.prod.Identify(ctx, "u1", map[string]any{"plan": "old", "seats": 3})
	require.NoError(t, err)
	e.waitDrained(t, 30*time.Second)

	require.NoError(t, e.fake.SetFaults(fake.Faults{FailContaining: `"action":"delete"`, FailTimes: 2}))
	_, err = e.prod.Delete(ctx, "u1")
	require.NoError(t, err)
	_, err = e.prod.Identify(ctx, "u1", map[string]any{"plan": "new"})
	require.NoError(t, err)
	e.waitDrained(t, 30*time.Second)

	got := e.person(t, "id:u1")
	require.True(t, got.Exists, "the identify after the delete re-created u1: %+v", got)
	require.Equal(t, map[string]any{"plan": "new"}, got.Attributes, "a new person: nothing of the deleted one")
	require.Equal(t, 1, got.Deletes)
	require.GreaterOrEqual(t, e.fake.Ledger().ServerErrors, int64(1), "the delete did meet its 503")
}

// TestUnsuppressThenIdentifyEndsWithThePerson: suppress, then unsuppress
// (which meets a 503) and identify: the identify must land after the
// unsuppress, or Customer.io ignores it.
func TestUnsuppressThenIdentifyEndsWithThePerson(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	w := e.startWorker(t, nil)
	_, err := e.prod.Suppress(ctx, "u2")
	require.NoError(t, err)
	e.waitDrained(t, 30*time.Second)
	require.True(t, e.person(t, "id:u2").Suppressed)

	require.NoError(t, e.fake.SetFaults(fake.Faults{FailContaining: `"action":"unsuppress"`, FailTimes: 2}))
	_, err = e.prod.Unsuppress(ctx, "u2")
	require.NoError(t, err)
	_, err = e.prod.Identify(ctx, "u2", map[string]any{"plan": "back"})
	require.NoError(t, err)
	e.waitDrained(t, 30*time.Second)
	got := e.person(t, "id:u2")
	require.False(t, got.Suppressed)
	require.True(t, got.Exists, "%+v", got)
	require.Equal(t, map[string]any{"plan": "back"}, got.Attributes)
	require.Zero(t, got.Ignored, "nothing reached Customer.io while u2 was suppressed")
	n, err := w.DeadLetters().Count(ctx, producer.DefaultWorkspace)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestProducerClocksDoNotOrderOps: a producer whose clock runs 2 s fast
// deletes u3; a producer with a true clock identifies u3 200 ms later. The
// identify is newer and must be delivered, not dropped as older than the
// delete's tombstone.
func TestProducerClocksDoNotOrderOps(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	fast, err := producer.New(producer.Config{Redis: e.db.ConnOpt(), Now: func() time.Time { return time.Now().Add(2 * time.Second) }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = fast.Close(ctx) })
	_, err = fast.Delete(ctx, "u3")
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond) // the app's gap between the two calls
	_, err = e.prod.Identify(ctx, "u3", map[string]any{"plan": "pro"})
	require.NoError(t, err)
	e.startWorker(t, nil)
	e.waitDrained(t, 30*time.Second)
	got := e.person(t, "id:u3")
	require.True(t, got.Exists, "%+v", got)
	require.Equal(t, map[string]any{"plan": "pro"}, got.Attributes)
}

// TestSameSecondUpdatesEndWithTheLast: two identifies of one person with
// the same timestamp second; the first fails once after the second was
// queued. Customer.io cannot order them by timestamp, so the second must
// not be sent before the first is settled.
func TestSameSecondUpdatesEndWithTheLast(t *testing.T) {
	t.Parallel()
	for run := range 3 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			t.Parallel()
			e := setup(t, fake.Options{})
			ctx := context.Background()
			ts := time.Now().Truncate(time.Second)
			require.NoError(t, e.fake.SetFaults(fake.Faults{FailContaining: `"plan":"first"`, FailTimes: 1}))
			e.startWorker(t, nil)
			_, err := e.prod.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionIdentify,
				Identifiers: &track.Identifiers{ID: "u4"}, Attributes: map[string]any{"plan": "first"}}, Timestamp: ts})
			require.NoError(t, err)
			e.waitFor(t, "the first update's failure", 20*time.Second, func() bool { return e.fake.Ledger().ServerErrors >= 1 })
			_, err = e.prod.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionIdentify,
				Identifiers: &track.Identifiers{ID: "u4"}, Attributes: map[string]any{"plan": "second"}}, Timestamp: ts})
			require.NoError(t, err)
			e.waitDrained(t, 30*time.Second)
			require.Equal(t, map[string]any{"plan": "second"}, e.person(t, "id:u4").Attributes)
			requireExactlyOnce(t, e.fake.Ledger(), 2)
		})
	}
}

// TestEndpointFaultIsRetriedNotDeadLettered: a proxy answering 404 (or 413)
// to every request is an endpoint fault: the ops are retried, never
// bisected into dead letters.
func TestEndpointFaultIsRetriedNotDeadLettered(t *testing.T) {
	t.Parallel()
	for _, status := range []int{404, 413} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			e := setup(t, fake.Options{Faults: fake.Faults{Down: true, DownStatus: status}})
			ctx := context.Background()
			enqueueEvents(t, e.prod, "endpoint", 20)
			w := e.startWorker(t, nil)
			e.waitFor(t, "several refused requests", 20*time.Second, func() bool { return e.fake.Ledger().ClientErrors >= 3 })
			require.NoError(t, e.fake.SetFaults(fake.Faults{}))
			e.waitDrained(t, 60*time.Second)
			n, err := w.DeadLetters().Count(ctx, producer.DefaultWorkspace)
			require.NoError(t, err)
			require.Zero(t, n, "nothing dead-lettered for an endpoint fault")
			requireExactlyOnce(t, e.fake.Ledger(), 20)
			require.Less(t, e.fake.Ledger().ClientErrors, int64(40), "no bisection into 2n-1 requests")
		})
	}
}

// TestReplayAfterTheTombstoneTTLIsRefused: a dead-lettered update older than
// the tombstone TTL could re-create a person deleted since (the tombstone
// that would drop it has expired), so its replay is refused with a typed
// error and nothing is queued; --force (ReplayOptions.Force) sends it. A
// delete of the same age is not an update and replays as it is.
func TestReplayAfterTheTombstoneTTLIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	dlq := worker.NewDeadLetters(e.db.Client, worker.DeadLetterConfig{TombstoneTTL: time.Hour})
	old := time.Now().Add(-2 * time.Hour)
	update := worker.DeadLetter{Workspace: producer.DefaultWorkspace, OpID: "old-identify", Action: string(track.ActionIdentify),
		Person: "id:gone", Reason: "retries exhausted", EnqueuedAt: old, Timestamp: old.Unix(), DeadAt: old,
		Op: []byte(fmt.Sprintf(`{"type":"person","action":"identify","identifiers":{"id":"gone"},"timestamp":%d,"attributes":{"plan":"pro"}}`, old.Unix()))}
	// The delete came first: the identify was queued a second later.
	del := update
	del.OpID, del.Action, del.EnqueuedAt, del.Timestamp = "old-delete", string(track.ActionDelete), old.Add(-time.Second), old.Unix()-1
	del.Op = []byte(fmt.Sprintf(`{"type":"person","action":"delete","identifiers":{"id":"gone"},"timestamp":%d}`, old.Unix()-1))
	require.NoError(t, dlq.Add(ctx, []worker.DeadLetter{update, del}))

	_, err := dlq.Replay(ctx, &update, worker.ReplayOptions{})
	var tooOld *worker.TooOldError
	require.ErrorAs(t, err, &tooOld)
	require.ErrorIs(t, err, worker.ErrReplayTooOld)
	require.Contains(t, err.Error(), "--force")
	n, err := dlq.Count(ctx, producer.DefaultWorkspace)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "a refused replay leaves the dead letter where it was")
	for _, q := range []string{task.QueueDefault, task.QueueCritical} {
		info, err := e.insp.GetQueueInfo(q)
		if err == nil {
			require.Zero(t, info.Size, "nothing queued in %s", q)
		}
	}

	dup, err := dlq.Replay(ctx, &del, worker.ReplayOptions{})
	require.NoError(t, err, "a delete is not an update: it replays without --force")
	require.False(t, dup)
	dup, err = dlq.Replay(ctx, &update, worker.ReplayOptions{Force: true})
	require.NoError(t, err)
	require.False(t, dup)
	n, err = dlq.Count(ctx, producer.DefaultWorkspace)
	require.NoError(t, err)
	require.Zero(t, n)

	e.startWorker(t, nil)
	e.waitFor(t, "both replayed ops delivered", 30*time.Second, func() bool { return e.fake.Ledger().UniqueOps == 2 })
	require.Equal(t, map[string]any{"plan": "pro"}, e.person(t, "id:gone").Attributes,
		"forced, the old identify is sent after the delete and re-creates the person: what --force is for")
}

// TestOpsStopWaitingForAnOpNoLongerQueued: a person's later ops wait for
// their older barrier (here a delete); when that op's task is gone from the
// queue (deleted by hand, or never written), the waiting identify must not
// wait for it for the registration's whole TTL: once the registration is
// older than OrphanAfter a worker checks the task, removes the orphaned
// registration and the identify goes out.
func TestOpsStopWaitingForAnOpNoLongerQueued(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	del, err := e.prod.Delete(ctx, "orphaned")
	require.NoError(t, err)
	_, err = e.prod.Identify(ctx, "orphaned", map[string]any{"plan": "pro"})
	require.NoError(t, err)
	require.NoError(t, e.insp.DeleteTask(task.Queue(producer.DefaultWorkspace, track.ActionDelete), del.TaskID))
	e.startWorker(t, func(c *worker.Config) { c.OrphanAfter = 200 * time.Millisecond })
	e.waitFor(t, "the identify delivered once its blocker's registration is found orphaned", 30*time.Second,
		func() bool { return e.fake.Ledger().UniqueOps == 1 })
	require.Equal(t, map[string]any{"plan": "pro"}, e.person(t, "id:orphaned").Attributes)
}
