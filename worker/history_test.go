package worker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// healAfter is a Sender that heals the fake (no faults) once n requests
// went through it, so "fails exactly n times" needs no timing.
type healAfter struct {
	worker.Sender
	srv   *fake.Server
	n     int64
	calls atomic.Int64
}

func (h *healAfter) BatchEncoded(ctx context.Context, ops [][]byte) error {
	err := h.Sender.BatchEncoded(ctx, ops)
	if h.calls.Add(1) == h.n {
		_ = h.srv.SetFaults(fake.Faults{})
	}
	return err
}

func trackOp(id, name string) track.Op {
	return track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: id}, Name: name}
}

// waitState polls the op's history until it reaches want.
func waitState(t *testing.T, w *worker.Worker, opID string, want history.State) *history.Op {
	t.Helper()
	var op *history.Op
	require.Eventually(t, func() bool {
		var err error
		op, err = w.History().Get(context.Background(), producer.DefaultWorkspace, opID)
		return err == nil && op.State == want
	}, 30*time.Second, 20*time.Millisecond, "op %s never reached %s (last: %+v)", opID, want, op)
	return op
}

func TestOpHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DeliveredAfterTwo503sShowsThreeAttempts", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{Faults: fake.Faults{Down: true}})
		w := e.startWorker(t, func(c *worker.Config) {
			c.Workspaces[0].Sender = &healAfter{Sender: c.Workspaces[0].Sender, srv: e.fake, n: 2}
			c.Retry = worker.RetryPolicy{Base: 20 * time.Millisecond, Cap: 50 * time.Millisecond}
		})
		res, err := e.prod.Track(ctx, "jane", "purchase", map[string]any{"total": 42})
		require.NoError(t, err)
		op := waitState(t, w, res.OpID, history.StateDelivered)

		s := op.Summary()
		require.Len(t, s.Attempts, 3, "%+v", op.Events)
		var statuses []int
		for _, a := range s.Attempts {
			statuses = append(statuses, a.Status)
		}
		require.Equal(t, []int{503, 503, 200}, statuses)
		require.Contains(t, s.Attempts[0].Error, "503")
		require.Empty(t, s.Attempts[2].Error)
		require.NotNil(t, s.DeliveredAt)
		require.Equal(t, s.Attempts[2].At, *s.DeliveredAt)
		require.Equal(t, history.KindEnqueued, op.Events[0].Kind)
		require.Equal(t, "default", op.Events[0].Queue)
		require.Equal(t, "event", op.Action)
		require.Equal(t, "id:jane", op.Person)
		for _, a := range op.Attempts() {
			require.NotEmpty(t, a.Batch)
			require.Positive(t, a.Latency)
		}
		require.NotEqual(t, op.Attempts()[0].Batch, op.Attempts()[2].Batch)
	})

	t.Run("DroppedByATombstoneNamesTheSuppress", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{})
		tr, err := e.prod.Track(ctx, "bob", "clicked", nil)
		require.NoError(t, err)
		sup, err := e.prod.Suppress(ctx, "bob")
		require.NoError(t, err)
		w := e.startWorker(t, nil)
		op := waitState(t, w, tr.OpID, history.StateDropped)
		last := op.Events[len(op.Events)-1]
		require.Equal(t, history.KindDropped, last.Kind)
		require.Equal(t, history.DropTombstone, last.Reason)
		require.Equal(t, sup.OpID, last.Ref)
		require.Empty(t, op.Attempts())
		waitState(t, w, sup.OpID, history.StateDelivered)
	})

	t.Run("DuplicateIsRecordedAndStaysDelivered", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{})
		w := e.startWorker(t, nil)
		res, err := e.prod.Enqueue(ctx, producer.Op{Op: trackOp("carol", "viewed"), Key: "order-7"})
		require.NoError(t, err)
		waitState(t, w, res.OpID, history.StateDelivered)
		// The same op again (its completed task is gone, so it queues): its
		// done-marker skips it.
		_, err = e.prod.Enqueue(ctx, producer.Op{Op: trackOp("carol", "viewed"), Key: "order-7"})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			op, err := w.History().Get(ctx, producer.DefaultWorkspace, res.OpID)
			return err == nil && op.Events[len(op.Events)-1].Reason == history.DropDuplicate
		}, 30*time.Second, 20*time.Millisecond)
		op, err := w.History().Get(ctx, producer.DefaultWorkspace, res.OpID)
		require.NoError(t, err)
		require.Equal(t, history.StateDelivered, op.State)
		require.EqualValues(t, 1, e.fake.Ledger().UniqueOps)
	})

	t.Run("DeadLetteredShowsItsReasonAndIsFoundByPerson", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{Faults: fake.Faults{RejectAttribute: "poison"}})
		w := e.startWorker(t, nil)
		good, err := e.prod.Track(ctx, "dave", "ok", nil)
		require.NoError(t, err)
		bad, err := e.prod.Track(ctx, "dave", "bad", map[string]any{"poison": 1})
		require.NoError(t, err)
		waitState(t, w, bad.OpID, history.StateDeadLettered)
		waitState(t, w, good.OpID, history.StateDelivered)

		ops, err := w.History().Find(ctx, producer.DefaultWorkspace, "id:dave", history.Query{})
		require.NoError(t, err)
		require.Len(t, ops, 2)
		require.Equal(t, bad.OpID, ops[0].OpID, "newest first")
		last := ops[0].Events[len(ops[0].Events)-1]
		require.Equal(t, history.KindDeadLettered, last.Kind)
		require.Contains(t, last.Reason, "poison")
		dl, err := w.DeadLetters().Get(ctx, producer.DefaultWorkspace, bad.OpID)
		require.NoError(t, err)
		require.Equal(t, dl.Reason, last.Reason)
	})

	t.Run("RetriesExhaustedAreDeadLetteredAndFoundByPerson", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{Faults: fake.Faults{Down: true}})
		p, err := producer.New(producer.Config{Redis: e.db.ConnOpt(), MaxRetry: -1})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(ctx) })
		w := e.startWorker(t, nil)
		res, err := p.Track(ctx, "erin", "signup", nil)
		require.NoError(t, err)
		waitState(t, w, res.OpID, history.StateDeadLettered)
		ops, err := w.History().Find(ctx, producer.DefaultWorkspace, "id:erin", history.Query{Since: time.Hour})
		require.NoError(t, err)
		require.Len(t, ops, 1)
		s := ops[0].Summary()
		require.Equal(t, history.StateDeadLettered, s.State)
		require.Len(t, s.Attempts, 1)
		require.Equal(t, 503, s.Attempts[0].Status)
		last := ops[0].Events[len(ops[0].Events)-1]
		require.Contains(t, last.Reason, "retries exhausted")
		require.Contains(t, last.Reason, "503")
		dl, err := w.DeadLetters().Get(ctx, producer.DefaultWorkspace, res.OpID)
		require.NoError(t, err, "in cioq's dead-letter store, not asynq's archive")
		require.Equal(t, 503, dl.Status)
	})

	t.Run("ServedOverHTTP", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{})
		w := e.startWorker(t, nil)
		res, err := e.prod.Track(ctx, "fay", "opened", nil)
		require.NoError(t, err)
		waitState(t, w, res.OpID, history.StateDelivered)
		srv := httptest.NewServer(w.HTTPHandler(nil))
		t.Cleanup(srv.Close)

		resp, err := http.Get(srv.URL + "/ops/" + res.OpID)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var got struct {
			OpID        string          `json:"op_id"`
			State       string          `json:"state"`
			Events      []history.Event `json:"-"`
			Attempts    []map[string]any
			DeliveredAt *time.Time `json:"delivered_at"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		require.Equal(t, res.OpID, got.OpID)
		require.Equal(t, "delivered", got.State)
		require.Len(t, got.Attempts, 1)
		require.NotNil(t, got.DeliveredAt)

		for path, want := range map[string]int{
			"/ops/unknown":                         http.StatusNotFound,
			"/ops/" + res.OpID + "?workspace=nope": http.StatusBadRequest,
		} {
			r, err := http.Get(srv.URL + path)
			require.NoError(t, err)
			_ = r.Body.Close()
			require.Equal(t, want, r.StatusCode, path)
		}
		r, err := http.Post(srv.URL+"/ops/"+res.OpID, "application/json", nil)
		require.NoError(t, err)
		_ = r.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, r.StatusCode, "read-only")
	})

	t.Run("DisabledWritesNoHistory", func(t *testing.T) {
		t.Parallel()
		e := setup(t, fake.Options{})
		w := e.startWorker(t, func(c *worker.Config) { c.History.Disabled = true })
		res, err := e.prod.Track(ctx, "gus", "x", nil)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return e.fake.Ledger().UniqueOps == 1 }, 30*time.Second, 10*time.Millisecond)
		e.waitDrained(t, 10*time.Second)
		op, err := w.History().Get(ctx, producer.DefaultWorkspace, res.OpID)
		if err == nil {
			// Only what the producer wrote: the worker added nothing.
			require.Len(t, op.Events, 1)
			require.Equal(t, history.KindEnqueued, op.Events[0].Kind)
		} else {
			require.ErrorIs(t, err, history.ErrNotFound)
		}
	})
}

func TestTraces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	e := setup(t, fake.Options{})
	p, err := producer.New(producer.Config{Redis: e.db.ConnOpt(), TracerProvider: tp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })

	// Three ops from one request of the app, queued before the worker runs,
	// so one batch carries them all.
	cctx, caller := tp.Tracer("app").Start(ctx, "checkout")
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		res, err := p.Track(cctx, "hal", name, nil)
		require.NoError(t, err)
		ids = append(ids, res.OpID)
	}
	caller.End()
	e.startWorker(t, func(c *worker.Config) {
		c.TracerProvider = tp
		c.Workspaces[0].Batch.MaxWait = 200 * time.Millisecond
	})

	byName := func(name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range exp.GetSpans().Snapshots() {
			if s.Name() == name {
				out = append(out, s)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(byName(worker.SpanHandle)) == 3 }, 30*time.Second, 10*time.Millisecond)
	opID := func(s sdktrace.ReadOnlySpan) string {
		for _, a := range s.Attributes() {
			if a.Key == "cioq.op_id" {
				return a.Value.AsString()
			}
		}
		return ""
	}
	enqueues := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range byName(producer.SpanEnqueue) {
		enqueues[opID(s)] = s
		require.Equal(t, caller.SpanContext().SpanID(), s.Parent().SpanID(), "enqueue is a child of the caller")
	}
	handles := map[trace.SpanID]string{}
	for _, h := range byName(worker.SpanHandle) {
		enq, ok := enqueues[opID(h)]
		require.True(t, ok, "handle span of an unknown op %q", opID(h))
		require.Equal(t, enq.SpanContext().TraceID(), h.SpanContext().TraceID(), "one trace from the caller to the handler")
		require.Equal(t, enq.SpanContext().SpanID(), h.Parent().SpanID(), "handle is a child of enqueue")
		require.True(t, h.Parent().IsRemote())
		handles[h.SpanContext().SpanID()] = opID(h)
	}
	batches := byName(worker.SpanBatch)
	require.Len(t, batches, 1)
	var linked []string
	for _, l := range batches[0].Links() {
		linked = append(linked, handles[l.SpanContext.SpanID()])
	}
	require.ElementsMatch(t, ids, linked, "the batch links to every op it carried")
	require.False(t, batches[0].Parent().IsValid(), "a batch has many parents: it is a root linked to them")
}
