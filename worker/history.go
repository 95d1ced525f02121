package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/health"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/tracing"
	"github.com/cioq/cioq/track"
)

// Span names of the worker.
const (
	// SpanHandle covers one task's handler: from dequeue until its op's
	// batch settled it (the wait for the batch included). Its parent is the
	// producer's enqueue span when the task carries trace context.
	SpanHandle = "cioq.handle"
	// SpanBatch covers one v2 batch request; it links to the SpanHandle of
	// every op it carried.
	SpanBatch = "cioq.batch"
)

// historyFlushTimeout bounds one batch's history write.
const historyFlushTimeout = 2 * time.Second

// observer is the worker's op history and tracing. Both are optional: a nil
// hist writes no history and a nil tracer creates no spans, and then the
// hooks below cost a nil check.
type observer struct {
	store  *history.Store // reads (always set once New ran)
	hist   *history.Store // writes; nil when history is off
	tracer trace.Tracer   // nil when tracing is off
	prefix string         // batch id prefix, random per process
	seq    atomic.Uint64
}

// opObs is what an item carries for history and tracing.
type opObs struct {
	// span is the item's handler span (zero when tracing is off).
	span trace.SpanContext
	// events are this batch's history events of the item, written by
	// flushHistory in one round trip for the whole batch.
	events []history.Event
}

// initObserver sets up history and tracing from the config.
func (w *Worker) initObserver() error {
	hc := w.cfg.History
	hc.Prefix = w.cfg.KeyPrefix
	st := history.New(w.cfg.Client, hc)
	if err := st.Err(); err != nil {
		return fmt.Errorf("worker: history: %w", err)
	}
	w.obs.store = st
	if st.Enabled() {
		w.obs.hist = st
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	w.obs.prefix = hex.EncodeToString(b[:]) + "-"
	w.obs.tracer = tracing.Tracer(w.cfg.TracerProvider)
	if w.obs.tracer != nil {
		w.log = slog.New(tracing.LogHandler(w.log.Handler()))
	}
	return nil
}

// History returns the worker's op history store (for reads).
func (w *Worker) History() *history.Store { return w.obs.store }

// observeTask starts the handler span of it (a child of the trace context
// the task carries) and returns the function that ends it.
func (w *Worker) observeTask(ctx context.Context, t *asynq.Task, it *item) (context.Context, func(error)) {
	var span trace.Span
	if w.obs.tracer != nil {
		ctx = tracing.Extract(ctx, t.Headers())
		ctx, span = w.obs.tracer.Start(ctx, SpanHandle, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("cioq.op_id", it.p.OpID), attribute.String("cioq.workspace", it.p.Workspace),
				attribute.String("cioq.action", string(it.p.Action)), attribute.Int("cioq.retry", it.attempt)))
		it.obs.span = span.SpanContext()
	} else {
		return ctx, noEnd
	}
	return ctx, func(err error) {
		if span != nil {
			span.SetAttributes(attribute.String("cioq.outcome", it.outcome))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

func noEnd(error) {}

// seedRecord is the history record of it with its enqueued event as seed,
// so a worker writes a whole story even when the producer kept none.
func seedRecord(it *item) history.Record {
	p := it.p
	return history.Record{OpID: p.OpID, Person: p.Person, EnqueuedAt: p.EnqueuedAt, Seed: history.Event{
		Kind: history.KindEnqueued, At: p.EnqueuedAt, Queue: task.Queue(p.Workspace, p.Action),
		Action: string(p.Action), Ref: p.Person,
	}}
}

// histDuplicate records that it was skipped: its done-marker exists.
func (ws *workspace) histDuplicate(it *item) {
	if ws.w.obs.hist == nil {
		return
	}
	it.obs.events = append(it.obs.events, history.Event{Kind: history.KindDropped, At: ws.w.cfg.Now(), Reason: history.DropDuplicate})
}

// histTombstoned records that it was dropped by tb: a newer delete or
// suppress of its person (idempotency.Tombstoned), or a suppress older
// than it (idempotency.Suppressed).
func (ws *workspace) histTombstoned(it *item, v idempotency.Verdict, tb *idempotency.Tombstone) {
	if ws.w.obs.hist == nil {
		return
	}
	e := history.Event{Kind: history.KindDropped, At: ws.w.cfg.Now(), Reason: history.DropTombstone}
	if v == idempotency.Suppressed {
		e.Reason = history.DropSuppressed
	}
	if tb != nil {
		e.Ref = tb.OpID
	}
	it.obs.events = append(it.obs.events, e)
}

// histWaiting records that it goes back to the queue for after, waiting for
// b, an older op of its person.
func (ws *workspace) histWaiting(it *item, b *idempotency.Blocker, after time.Duration) {
	if ws.w.obs.hist == nil {
		return
	}
	now := ws.w.cfg.Now()
	e := history.Event{Kind: history.KindDeferred, At: now, Reason: ReasonOrder, Next: now.Add(after)}
	if b != nil {
		e.Ref = b.OpID
	}
	it.obs.events = append(it.obs.events, e)
}

// histDeferred records that items go back to the queue for de.After
// without a failure.
func (ws *workspace) histDeferred(items []*item, de *DelayError) {
	if ws.w.obs.hist == nil {
		return
	}
	for _, it := range items {
		ws.histDeferredOne(it, de.Reason, de.After)
	}
}

// histDeferredOne records that it goes back to the queue for after without
// a failure, for reason.
func (ws *workspace) histDeferredOne(it *item, reason string, after time.Duration) {
	if ws.w.obs.hist == nil {
		return
	}
	now := ws.w.cfg.Now()
	it.obs.events = append(it.obs.events, history.Event{Kind: history.KindDeferred, At: now, Reason: reason, Next: now.Add(after)})
}

// histDeadLettered records the dead letters stored for items (when the store
// took them: err nil).
func (ws *workspace) histDeadLettered(items []*item, entries []DeadLetter, err error) {
	if ws.w.obs.hist == nil || err != nil {
		return
	}
	for i, it := range items {
		it.obs.events = append(it.obs.events, history.Event{Kind: history.KindDeadLettered, At: entries[i].DeadAt,
			Status: entries[i].Status, Reason: entries[i].Reason})
	}
}

// flushHistory writes the history events the batch's items gathered, in one
// round trip, off the send path: the batch's handlers have their results
// already, and the batcher's send slot is free before the write. A failed
// write is logged, never retried: history is a record, not part of
// delivery.
func (ws *workspace) flushHistory(ctx context.Context, l lane, items []*item) {
	if ws.w.obs.hist == nil {
		return
	}
	recs := make([]history.Record, 0, len(items))
	skipDelivered := l == laneBulk && !ws.w.cfg.Bulk.HistoryDelivered
	for _, it := range items {
		if len(it.obs.events) == 0 {
			continue
		}
		if skipDelivered && (it.outcome == metrics.OutcomeDelivered || it.outcome == metrics.OutcomeSkipped) {
			it.obs.events = nil
			continue
		}
		r := seedRecord(it)
		r.Events, it.obs.events = it.obs.events, nil
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, historyFlushTimeout)
		defer cancel()
		if err := ws.w.obs.hist.Append(ctx, ws.name, recs); err != nil {
			ws.w.log.WarnContext(ctx, "op history not written", "workspace", ws.name, "ops", len(recs), "error", err.Error())
		}
	}()
}

// attempt is one batch request of items, as history and tracing record
// it (request.att).
type attempt struct {
	items   []*item
	batch   string
	sent    bool
	at      time.Time
	latency time.Duration
}

// beginAttempt returns the attempt of items, or nil when history and
// tracing are both off.
func (ws *workspace) beginAttempt(items []*item) *attempt {
	o := &ws.w.obs
	if o.hist == nil && o.tracer == nil {
		return nil
	}
	return &attempt{items: items, batch: o.prefix + strconv.FormatUint(o.seq.Add(1), 36)}
}

// endAttempt records, for each item the request carried, an attempt or a
// delivery with the status, latency and error. Nothing when no request went
// out (breaker open, no token: histDeferred records those).
func (ws *workspace) endAttempt(a *attempt, err error) {
	if a == nil || !a.sent || ws.w.obs.hist == nil {
		return
	}
	var (
		be     *track.BatchError
		status int
		failed map[int]track.ItemError
		reason string
	)
	answered, _, isAnswer := answerOf(err)
	switch {
	case err == nil:
		status = http.StatusOK
	case errors.As(err, &be):
		status, failed = be.StatusCode, be.Failed()
	case isAnswer:
		status, reason = answered, err.Error()
	default:
		reason = err.Error()
	}
	for i, it := range a.items {
		e := history.Event{Kind: history.KindDelivered, At: a.at, Batch: a.batch, Status: status, Latency: a.latency}
		if f, bad := failed[i]; bad {
			e.Kind, e.Reason = history.KindAttempt, f.String()
		} else if err != nil && be == nil {
			e.Kind, e.Reason = history.KindAttempt, reason
		}
		it.obs.events = append(it.obs.events, e)
	}
}

// observe times each request for the history and wraps it in the SpanBatch
// span, linked to the handler span of every op it carries.
func (ws *workspace) observe(next sendFunc) sendFunc {
	return func(ctx context.Context, r *request) error {
		a := r.att
		if a == nil {
			return next(ctx, r)
		}
		w := ws.w
		var span trace.Span
		if w.obs.tracer != nil {
			links := make([]trace.Link, 0, len(a.items))
			for _, it := range a.items {
				if it.obs.span.IsValid() {
					links = append(links, trace.Link{SpanContext: it.obs.span})
				}
			}
			ctx, span = w.obs.tracer.Start(ctx, SpanBatch, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
				trace.WithAttributes(attribute.String("cioq.workspace", ws.name), attribute.String("cioq.api", ws.api.String()),
					attribute.String("cioq.batch", a.batch), attribute.Int("cioq.ops", len(r.ops))))
		}
		start := time.Now()
		err := next(ctx, r)
		a.latency, a.at, a.sent = time.Since(start), w.cfg.Now(), true
		if span != nil {
			span.SetAttributes(attribute.String("http.response.status_code", statusLabel(err)))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
		return err
	}
}

// OpsHandler serves GET /ops/{id}: the history of one op as JSON (the
// history.Op, with attempts and delivered_at), read-only. ?workspace=
// names the workspace; without it every workspace the worker serves is
// searched. 404 when no history exists (unknown, history off, or expired).
func (w *Worker) OpsHandler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		names := []string{r.URL.Query().Get("workspace")}
		if names[0] == "" {
			names = names[:0]
			for n := range w.ws {
				names = append(names, n)
			}
			sort.Strings(names)
		} else if w.ws[names[0]] == nil {
			health.WriteJSON(rw, http.StatusBadRequest, map[string]string{"error": "unknown workspace " + strconv.Quote(names[0])})
			return
		}
		for _, ws := range names {
			op, err := w.obs.store.Get(r.Context(), ws, id)
			if errors.Is(err, history.ErrNotFound) {
				continue
			}
			if err != nil {
				health.WriteJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
				return
			}
			health.WriteJSON(rw, http.StatusOK, op)
			return
		}
		health.WriteJSON(rw, http.StatusNotFound, map[string]string{"error": "no history for op " + strconv.Quote(id)})
	})
}
