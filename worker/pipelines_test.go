package worker_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// cdpKey is the Pipelines API key of the default workspace in these tests.
const cdpKey = "cdp-key-secret"

// plEnv is a worker with a Track and a Pipelines sender for the default
// workspace, in front of both fakes, on a leased Redis database.
type plEnv struct {
	db    *redistest.DB
	track *fake.Server
	cdp   *cdpfake.Server
	prod  *producer.Producer
	insp  *asynq.Inspector
	w     *worker.Worker
}

// plSetup starts the fakes and the producer; mod adjusts the worker config
// before the worker starts.
func plSetup(t *testing.T, cdpOpts cdpfake.Options, mod func(*worker.Config)) *plEnv {
	t.Helper()
	st := stacktest.New(t, stacktest.Options{})
	db, tr, p, insp := st.DB, st.Fake, st.Producer, st.Inspector
	if cdpOpts.Keys == nil {
		cdpOpts.Keys = map[string]string{cdpKey: producer.DefaultWorkspace}
	}
	cs := cdpfake.NewServer(cdpOpts)
	t.Cleanup(cs.Close)

	pl, err := cdp.NewClient(cdp.Config{APIKey: cdpKey, BaseURL: cs.URL, Timeout: time.Second})
	require.NoError(t, err)
	cfg := st.WorkerConfig(t)
	cfg.Workspaces[0].Pipelines = pl
	cfg.UnauthorizedPause = time.Second
	if mod != nil {
		mod(&cfg)
	}
	w := stacktest.StartWorker(t, cfg)
	return &plEnv{db: db, track: tr, cdp: cs, prod: p, insp: insp, w: w}
}

// plWait waits until cond holds, failing the test after timeout.
func plWait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drained reports whether the default workspace's lanes hold no task.
func (e *plEnv) drained() bool {
	for _, q := range []string{task.QueueDefault, task.QueueCritical, task.QueueBulk} {
		info, err := e.insp.GetQueueInfo(q)
		if err == nil && info.Pending+info.Active+info.Scheduled+info.Retry+info.Archived > 0 {
			return false
		}
	}
	return true
}

// accepted returns every call the fake Pipelines API accepted, by
// messageId, failing on a messageId accepted twice (see acceptedResent).
func (e *plEnv) accepted(t *testing.T) map[string]cdp.Call {
	t.Helper()
	out, resent := e.acceptedResent(t)
	require.Zero(t, resent, "no messageId accepted twice")
	return out
}

// acceptedResent returns every call the fake Pipelines API accepted, by
// messageId, and how many were accepted again under the same messageId
// (which Customer.io drops: resends, not duplicates).
func (e *plEnv) acceptedResent(t *testing.T) (map[string]cdp.Call, int) {
	t.Helper()
	out := map[string]cdp.Call{}
	resent := 0
	for _, r := range e.cdp.Requests() {
		require.True(t, r.Strict, "the worker sends strict mode on every request")
		require.Equal(t, cdp.BatchPath, r.Path)
		for _, c := range r.Calls {
			if _, dup := out[c.MessageID]; dup {
				resent++
			}
			out[c.MessageID] = c
		}
	}
	return out, resent
}

// everyCall is one call of each type and each semantic event, for persons
// whose deletes and suppressions drop nothing enqueued before them.
func everyCall(run string) []*cdp.Call {
	u1, u2, anon := "pl-"+run+"-u1", "pl-"+run+"-u2", "pl-"+run+"-anon"
	dev := map[string]any{"device": map[string]any{"token": "tok-" + run, "type": "ios"}}
	at := func(ms int) string { return cdp.FormatTimestamp(time.UnixMilli(1704164645000 + int64(ms))) }
	calls := []*cdp.Call{
		{Type: cdp.TypeIdentify, UserID: u1, Traits: map[string]any{"plan": "pro"}, Timestamp: at(1)},
		{Type: cdp.TypeIdentify, AnonymousID: anon, Traits: map[string]any{"source": "ad"}},
		{Type: cdp.TypeTrack, UserID: u1, Event: "Purchase", Properties: map[string]any{"amount": 42}, Timestamp: at(2)},
		{Type: cdp.TypeTrack, AnonymousID: anon, Event: "Viewed Pricing"},
		{Type: cdp.TypePage, UserID: u1, Name: "Pricing", Properties: map[string]any{"url": "https://example.com/p"}},
		{Type: cdp.TypeScreen, UserID: u1, Name: "Cart"},
		{Type: cdp.TypeGroup, UserID: u1, GroupID: "acme-" + run, Traits: map[string]any{"object_type_id": "1"}},
		{Type: cdp.TypeAlias, UserID: u1, PreviousID: anon},
		{Type: cdp.TypeTrack, UserID: u1, Event: cdp.EventDeviceCreatedOrUpdated, Context: dev},
		{Type: cdp.TypeTrack, UserID: u1, Event: cdp.EventDeviceDeleted, Context: dev},
		{Type: cdp.TypeTrack, UserID: u1, Event: cdp.EventRelationshipDeleted, Properties: map[string]any{"objectId": "acme-" + run, "objectTypeId": 1}},
		{Type: cdp.TypeTrack, UserID: u2, Event: cdp.EventUserSuppressed},
		{Type: cdp.TypeTrack, UserID: u2, Event: cdp.EventUserUnsuppressed},
		{Type: cdp.TypeTrack, UserID: u2, Event: cdp.EventUserDeleted},
		{Type: cdp.TypeTrack, AnonymousID: "object-" + run, Event: cdp.EventObjectDeleted, Properties: map[string]any{"objectId": "acme-" + run}},
	}
	for i, c := range calls {
		c.MessageID = fmt.Sprintf("%s-%02d", run, i)
	}
	return calls
}

// Every Pipelines call type goes producer → queue → worker → fake once, in
// strict mode, with its messageId, timestamp and content as enqueued; a
// call enqueued without a timestamp carries the one stamped at enqueue.
func TestPipelines_EveryCallTypeDeliveredExactlyOnce(t *testing.T) {
	t.Parallel()
	e := plSetup(t, cdpfake.Options{}, nil)
	ctx := context.Background()
	calls := everyCall("all")
	ops := make([]producer.Op, len(calls))
	for i, c := range calls {
		ops[i] = producer.Op{Call: c}
	}
	res, err := e.prod.EnqueueAll(ctx, ops)
	require.NoError(t, err)
	for i, r := range res {
		require.Equal(t, calls[i].MessageID, r.OpID, "the messageId is the op id")
	}
	plWait(t, 30*time.Second, "every call accepted", func() bool {
		return e.cdp.Ledger().UniqueCalls >= int64(len(calls))
	})
	plWait(t, 10*time.Second, "queues drained", e.drained)
	l := e.cdp.Ledger()
	require.EqualValues(t, len(calls), l.UniqueCalls)
	require.Zero(t, l.DuplicateCalls)
	require.Zero(t, l.ResentCalls)
	require.Zero(t, l.Permissive, "strict mode on every request")
	require.Zero(t, e.track.Ledger().Requests, "no call went to the Track API")

	got := e.accepted(t)
	for _, c := range calls {
		a, ok := got[c.MessageID]
		require.True(t, ok, "%s %s did not arrive", c.Type, c.Event)
		if c.Timestamp != "" {
			require.Equal(t, c.Timestamp, a.Timestamp, "the caller's timestamp is kept")
		} else {
			_, err := cdp.ParseTimestamp(a.Timestamp)
			require.NoError(t, err, "a timestamp was stamped at enqueue")
		}
		wantCall := c.Clone()
		wantCall.Timestamp = a.Timestamp
		enc, err := cdp.EncodeCall(wantCall)
		require.NoError(t, err)
		gotEnc, err := cdp.EncodeCall(&a)
		require.NoError(t, err)
		require.JSONEq(t, string(enc), string(gotEnc), "%s arrived as enqueued", c.MessageID)
	}
	u, ok := e.cdp.User(producer.DefaultWorkspace, "id:pl-all-u1")
	require.True(t, ok)
	require.Equal(t, "pro", u.Traits["plan"])
	u2, _ := e.cdp.User(producer.DefaultWorkspace, "id:pl-all-u2")
	require.True(t, u2.Deleted)
}

// A Track delete then a Pipelines identify of one person: the identify is
// sent after the delete was accepted. The other way round, the older
// identify is dropped by the delete's tombstone: nothing brings the deleted
// person back. The same holds across APIs in both directions.
func TestPipelines_TrackAndPipelinesOpsOfOnePersonKeepTheirOrder(t *testing.T) {
	t.Parallel()
	e := plSetup(t, cdpfake.Options{}, nil)
	ctx := context.Background()

	// Track delete, then Pipelines identify: both sent, in that order.
	del, err := e.prod.Delete(ctx, "ord-u1")
	require.NoError(t, err)
	_, err = e.prod.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "ord-u1", MessageID: "ord-1",
		Traits: map[string]any{"back": true}}})
	require.NoError(t, err)
	// Pipelines identify, then Track delete: the identify is dropped.
	_, err = e.prod.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "ord-u2", MessageID: "ord-2"}})
	require.NoError(t, err)
	_, err = e.prod.Delete(ctx, "ord-u2")
	require.NoError(t, err)
	// Pipelines "User Deleted", then a Track identify: both, in that order.
	_, err = e.prod.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "ord-u3", Event: cdp.EventUserDeleted, MessageID: "ord-3"}})
	require.NoError(t, err)
	_, err = e.prod.Identify(ctx, "ord-u3", map[string]any{"back": true})
	require.NoError(t, err)

	plWait(t, 30*time.Second, "queues drained", e.drained)
	trackAt := func(action track.Action, id string) time.Time {
		for _, r := range e.track.Requests() {
			for _, op := range r.Ops {
				if op.Action == action && op.Identifiers != nil && op.Identifiers.ID == id {
					return r.Time
				}
			}
		}
		t.Fatalf("no %s of %s reached the Track API", action, id)
		return time.Time{}
	}
	cdpAt := func(messageID string) (time.Time, bool) {
		for _, r := range e.cdp.Requests() {
			for _, c := range r.Calls {
				if c.MessageID == messageID {
					return r.Time, true
				}
			}
		}
		return time.Time{}, false
	}
	identifyAt, ok := cdpAt("ord-1")
	require.True(t, ok, "the identify after the delete is sent")
	require.True(t, identifyAt.After(trackAt(track.ActionDelete, "ord-u1")), "the identify went after the delete")
	_, ok = cdpAt("ord-2")
	require.False(t, ok, "an identify older than a delete of its person is dropped")
	trackAt(track.ActionDelete, "ord-u2")
	deletedAt, ok := cdpAt("ord-3")
	require.True(t, ok)
	require.True(t, trackAt(track.ActionIdentify, "ord-u3").After(deletedAt), "the Track identify went after the Pipelines delete")
	require.NotEmpty(t, del.OpID)
}

// A Pipelines outage: calls wait (the Pipelines circuit opens), nothing is
// lost or sent twice, and the Track API keeps being served meanwhile.
func TestPipelines_AnOutageLosesNothing(t *testing.T) {
	t.Parallel()
	e := plSetup(t, cdpfake.Options{}, nil)
	ctx := context.Background()
	require.NoError(t, e.cdp.SetFaults(cdpfake.Faults{Down: true}))
	const n = 60
	for i := range n {
		_, err := e.prod.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: fmt.Sprintf("out-%d", i%7),
			Event: "E", MessageID: fmt.Sprintf("out-%d", i), Properties: map[string]any{"i": i}}})
		require.NoError(t, err)
	}
	plWait(t, 20*time.Second, "the Pipelines circuit opens", func() bool {
		h, _ := e.w.Health(ctx)
		ws := h.Workspaces[producer.DefaultWorkspace]
		return ws.Pipelines != nil && ws.Pipelines.CircuitState == "OPEN"
	})
	h, healthy := e.w.Health(ctx)
	require.False(t, healthy)
	require.Equal(t, "CLOSED", h.Workspaces[producer.DefaultWorkspace].CircuitState, "the Track circuit is another one")
	// Track ops still go through while the Pipelines API is down.
	for i := range 5 {
		_, err := e.prod.Track(ctx, fmt.Sprintf("out-t-%d", i), "during", nil)
		require.NoError(t, err)
	}
	plWait(t, 20*time.Second, "Track ops delivered during the Pipelines outage", func() bool {
		return e.track.Ledger().UniqueOps >= 5
	})
	require.Zero(t, e.cdp.Ledger().CallsAccepted)

	require.NoError(t, e.cdp.SetFaults(cdpfake.Faults{}))
	plWait(t, 60*time.Second, "every call delivered after the outage", func() bool {
		return e.cdp.Ledger().UniqueCalls >= n
	})
	plWait(t, 20*time.Second, "queues drained", e.drained)
	l := e.cdp.Ledger()
	require.EqualValues(t, n, l.UniqueCalls)
	require.Zero(t, l.DuplicateCalls)
	require.Zero(t, l.ResentCalls, "no call was accepted twice")
	require.Greater(t, l.ServerErrors, int64(0), "the outage was seen")
	require.Len(t, e.accepted(t), n)
}

// A 429 storm from the Pipelines API: the shared cool-down holds the calls
// back; nothing is lost, nothing duplicated, no retry budget spent.
func TestPipelines_A429StormLosesNothing(t *testing.T) {
	t.Parallel()
	e := plSetup(t, cdpfake.Options{}, nil)
	ctx := context.Background()
	require.NoError(t, e.cdp.SetFaults(cdpfake.Faults{Storm429: true}))
	const n = 80
	ops := make([]producer.Op, n)
	for i := range ops {
		ops[i] = producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: fmt.Sprintf("storm-%d", i%11),
			MessageID: fmt.Sprintf("storm-%d", i), Traits: map[string]any{"i": i}}}
	}
	_, err := e.prod.EnqueueAll(ctx, ops)
	require.NoError(t, err)
	plWait(t, 20*time.Second, "429s answered", func() bool { return e.cdp.Ledger().RateLimited >= 3 })
	require.NoError(t, e.cdp.SetFaults(cdpfake.Faults{}))
	plWait(t, 90*time.Second, "every call delivered after the storm", func() bool {
		return e.cdp.Ledger().UniqueCalls >= n
	})
	plWait(t, 20*time.Second, "queues drained", e.drained)
	l := e.cdp.Ledger()
	require.EqualValues(t, n, l.UniqueCalls)
	require.Zero(t, l.DuplicateCalls)
	require.Zero(t, l.ResentCalls)
	dl, err := e.w.DeadLetters().List(ctx, producer.DefaultWorkspace, worker.DeadLetterFilter{})
	require.NoError(t, err)
	require.Empty(t, dl, "a 429 never dead-letters")
}

// A call the Pipelines API refuses (400: the fake's poison attribute) is
// found by splitting the batch and dead-lettered alone, marked as a
// Pipelines op; the others are delivered once, whether the API accepts the
// valid calls of a refused batch or not. Replayed, it is a Pipelines op
// again.
func TestPipelines_ARefusedCallIsDeadLetteredAlone(t *testing.T) {
	t.Parallel()
	for _, acceptValid := range []bool{false, true} {
		t.Run(fmt.Sprintf("AcceptValidOnReject=%v", acceptValid), func(t *testing.T) {
			t.Parallel()
			e := plSetup(t, cdpfake.Options{Faults: cdpfake.Faults{RejectAttribute: "poison", AcceptValidOnReject: acceptValid}},
				func(c *worker.Config) { c.Workspaces[0].Batch.MaxWait = 200 * time.Millisecond })
			ctx := context.Background()
			const n = 16
			ops := make([]producer.Op, n)
			for i := range ops {
				props := map[string]any{"i": i}
				if i == 9 {
					props["poison"] = true
				}
				ops[i] = producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: fmt.Sprintf("dl-%d", i),
					Event: "E", MessageID: fmt.Sprintf("dl-%d", i), Properties: props}}
			}
			_, err := e.prod.EnqueueAll(ctx, ops)
			require.NoError(t, err)
			plWait(t, 30*time.Second, "queues drained", e.drained)
			l := e.cdp.Ledger()
			require.EqualValues(t, n-1, l.UniqueCalls)
			require.Zero(t, l.DuplicateCalls, "resending the halves of a refused batch duplicates nothing")
			require.Greater(t, l.CallsRejected, int64(0))
			got, resent := e.acceptedResent(t)
			require.NotContains(t, got, "dl-9")
			if acceptValid {
				require.Greater(t, resent, 0, "the valid calls of the refused batch were taken, then resent")
				require.EqualValues(t, resent, l.ResentCalls)
			} else {
				require.Zero(t, resent)
			}

			dls, err := e.w.DeadLetters().List(ctx, producer.DefaultWorkspace, worker.DeadLetterFilter{API: "pipelines"})
			require.NoError(t, err)
			require.Len(t, dls, 1)
			d := dls[0]
			require.Equal(t, "dl-9", d.OpID)
			require.Equal(t, "pipelines", d.API)
			require.Equal(t, 400, d.Status)
			require.Contains(t, d.Body, "reject_attribute")
			require.Equal(t, string(track.ActionEvent), d.Action)
			c, err := cdp.ValidateRawCall(d.Op, "")
			require.NoError(t, err, "the dead letter holds the call")
			require.Equal(t, "dl-9", c.MessageID)
			none, err := e.w.DeadLetters().List(ctx, producer.DefaultWorkspace, worker.DeadLetterFilter{API: "track"})
			require.NoError(t, err)
			require.Empty(t, none)

			// Replayed once the API takes it: delivered as a Pipelines call.
			require.NoError(t, e.cdp.SetFaults(cdpfake.Faults{}))
			dup, err := e.w.DeadLetters().Replay(ctx, &d, worker.ReplayOptions{})
			require.NoError(t, err)
			require.False(t, dup)
			plWait(t, 20*time.Second, "the replayed call delivered", func() bool { return e.cdp.Ledger().UniqueCalls >= n })
			got, _ = e.acceptedResent(t)
			require.Contains(t, got, "dl-9")
			require.Zero(t, e.track.Ledger().Requests)
		})
	}
}

// A wrong Pipelines key pauses the workspace's Pipelines requests only:
// calls wait (no failure counted), the Track API is still served, and
// health says which API is unauthorized.
func TestPipelines_AWrongKeyPausesOnlyPipelines(t *testing.T) {
	t.Parallel()
	e := plSetup(t, cdpfake.Options{Keys: map[string]string{"another-key": producer.DefaultWorkspace}},
		func(c *worker.Config) { c.UnauthorizedPause = time.Hour })
	ctx := context.Background()
	_, err := e.prod.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "k1", MessageID: "k1"}})
	require.NoError(t, err)
	plWait(t, 20*time.Second, "Pipelines unauthorized", func() bool {
		h, _ := e.w.Health(ctx)
		p := h.Workspaces[producer.DefaultWorkspace].Pipelines
		return p != nil && p.Unauthorized
	})
	h, healthy := e.w.Health(ctx)
	require.False(t, healthy)
	require.False(t, h.Workspaces[producer.DefaultWorkspace].Unauthorized, "the Track key is another")
	require.True(t, h.Customerio.Unauthorized, "the worst workspace status")
	_, err = e.prod.Identify(ctx, "k2", nil)
	require.NoError(t, err)
	plWait(t, 20*time.Second, "the Track op delivered", func() bool { return e.track.Ledger().UniqueOps >= 1 })
	dl, err := e.w.DeadLetters().Count(ctx, producer.DefaultWorkspace)
	require.NoError(t, err)
	require.Zero(t, dl, "a wrong key never dead-letters")
	crit, def := task.Lanes(producer.DefaultWorkspace)
	var waiting int
	for _, q := range []string{crit, def} {
		infos, _ := e.insp.ListScheduledTasks(q)
		retries, _ := e.insp.ListRetryTasks(q)
		for _, info := range append(infos, retries...) {
			require.Zero(t, info.Retried, "no failure counted while paused")
			waiting++
		}
	}
	require.Equal(t, 1, waiting, "the call waits for the key")
}

// A Pipelines bulk task is one /v1/batch request.
func TestPipelines_BulkIsOneRequest(t *testing.T) {
	t.Parallel()
	e := plSetup(t, cdpfake.Options{}, nil)
	ctx := context.Background()
	var ops []producer.Op
	for i := range 300 {
		// Content of its own (the fake counts the same content under a new
		// messageId as a duplicate, and 300 calls can share a millisecond).
		ops = append(ops, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: fmt.Sprintf("bk-%d", i%40), Event: "E",
			MessageID: fmt.Sprintf("bk-%d", i), Properties: map[string]any{"i": i}}})
	}
	res, err := e.prod.EnqueueBulk(ctx, ops)
	require.NoError(t, err)
	require.Equal(t, 1, res.Tasks)
	plWait(t, 30*time.Second, "the bulk delivered", func() bool { return e.cdp.Ledger().UniqueCalls >= 300 })
	plWait(t, 10*time.Second, "queues drained", e.drained)
	l := e.cdp.Ledger()
	require.EqualValues(t, 1, l.Accepted)
	require.Equal(t, 300, l.MaxCallsPerRequest)
	require.Zero(t, l.DuplicateCalls)
}

// Track and Pipelines requests share one budget by default; with
// PipelinesLimit each API has its own. Measured over both fakes together.
func TestPipelines_OneBudgetForBothAPIsUnlessConfigured(t *testing.T) {
	t.Parallel()
	const rate, burst, each = 8, 2, 24
	run := func(t *testing.T, separate bool) int {
		e := plSetup(t, cdpfake.Options{}, func(c *worker.Config) {
			c.Workspaces[0].Limit = ratelimit.Limit{Rate: rate, Burst: burst, CriticalShare: -1}
			c.Workspaces[0].Batch = worker.BatchConfig{MaxOps: 1, MaxWait: time.Millisecond}
			if separate {
				c.Workspaces[0].PipelinesLimit = ratelimit.Limit{Rate: rate, Burst: burst, CriticalShare: -1}
			}
		})
		ctx := context.Background()
		var ops []producer.Op
		for i := range each {
			ops = append(ops, producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: fmt.Sprintf("b-%d", i)}, Name: "E"}})
			ops = append(ops, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: fmt.Sprintf("b-%d", i), Event: "E", MessageID: fmt.Sprintf("b-%d", i)}})
		}
		_, err := e.prod.EnqueueAll(ctx, ops)
		require.NoError(t, err)
		plWait(t, 60*time.Second, "every op delivered", func() bool {
			return e.track.Ledger().UniqueOps >= each && e.cdp.Ledger().UniqueCalls >= each
		})
		var at []time.Time
		for _, r := range e.track.Requests() {
			at = append(at, r.Time)
		}
		for _, r := range e.cdp.Requests() {
			at = append(at, r.Time)
		}
		return maxInWindow(at, time.Second)
	}
	t.Run("Shared", func(t *testing.T) {
		t.Parallel()
		got := run(t, false)
		require.LessOrEqual(t, got, rate+burst, "Track and Pipelines requests together stay within one budget")
	})
	t.Run("Separate", func(t *testing.T) {
		t.Parallel()
		got := run(t, true)
		require.Greater(t, got, rate+burst, "each API has a budget of its own")
		require.LessOrEqual(t, got, 2*(rate+burst))
	})
}

// maxInWindow is the most times in any window of length d.
func maxInWindow(at []time.Time, d time.Duration) int {
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	best, lo := 0, 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= d {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// A worker without a Pipelines sender for a workspace sends none of its
// calls: they wait, no failure counted, for a worker that has the key.
func TestPipelines_AWorkerWithoutAKeyLeavesCallsQueued(t *testing.T) {
	t.Parallel()
	e := plSetup(t, cdpfake.Options{}, func(c *worker.Config) { c.Workspaces[0].Pipelines = nil })
	ctx := context.Background()
	res, err := e.prod.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "nk", MessageID: "nk-1"}})
	require.NoError(t, err)
	plWait(t, 20*time.Second, "the call went back to wait", func() bool {
		info, err := e.insp.GetTaskInfo(res.Queue, res.TaskID)
		return err == nil && (info.State == asynq.TaskStateRetry || info.State == asynq.TaskStateScheduled)
	})
	info, err := e.insp.GetTaskInfo(res.Queue, res.TaskID)
	require.NoError(t, err)
	require.Zero(t, info.Retried, "no failure counted")
	require.Contains(t, info.LastErr, worker.ReasonNoPipelines)
	require.Zero(t, e.cdp.Ledger().Requests)
	h, _ := e.w.Health(ctx)
	require.Nil(t, h.Workspaces[producer.DefaultWorkspace].Pipelines)
	require.True(t, slices.Contains([]string{"CLOSED"}, h.Customerio.CircuitState))
}
