package worker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
)

// Retries that run out. asynq v0.26 archives a task that returns any error
// once its counted failures (Retried) reach its retry count (MaxRetry),
// before it asks IsFailure: a delay at that point would archive the op out
// of cioq's sight. So tasks carry one retry to spare (task.MaxRetry), and
// the worker itself dead-letters an op at the failure that spends its
// budget, into cioq's store, before the task leaves asynq (it then
// completes). A delay never meets asynq's check: it never counts.

// taskItem returns the item of p for the task handled under ctx.
func taskItem(ctx context.Context, p *task.Payload) *item {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		maxRetry = math.MaxInt
	}
	return &item{p: p, size: len(p.Op), attempt: retried, maxRetry: maxRetry, done: make(chan error, 1)}
}

// exhausted reports whether the op must leave the queue now, dead-lettered,
// rather than go back with err: err is a counted failure that spends the
// op's last retry, or asynq would archive the task on any error (a worker
// killed at the op's last attempt counts a failure of its own).
func (it *item) exhausted(err error) bool {
	if it.attempt >= it.maxRetry {
		return true
	}
	return IsFailure(err) && it.attempt+1 >= it.maxRetry
}

// exhaust dead-letters items whose retries ran out, errs[i] being the last
// error of items[i]: into cioq's store, with the attempts, the last status
// and error, and history `dead_lettered`; their claims and order
// registrations are forgotten. It returns nil when they are stored (the
// task completes), else a DelayError: the task comes back, uncounted, and
// tries again.
func (ws *workspace) exhaust(ctx context.Context, items []*item, errs []error) error {
	w := ws.w
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), historyFlushTimeout)
	defer cancel()
	reasons := make([]*PermanentError, len(items))
	for i, it := range items {
		pe := &PermanentError{Reason: fmt.Sprintf("retries exhausted after %d attempts: %v", it.attempt+1, errs[i])}
		if status, body, ok := answerOf(errs[i]); ok {
			pe.Status, pe.Body = status, string(body)
		}
		reasons[i] = pe
	}
	entries := ws.deadLetters(items, reasons)
	if err := w.letters.Add(ctx, entries); err != nil {
		w.log.ErrorContext(ctx, "retries exhausted but the dead-letter store failed; the op stays queued",
			"workspace", ws.name, "ops", len(items), "error", err.Error())
		return &DelayError{Reason: ReasonDeadLetterStore, After: 5 * time.Second, Err: err}
	}
	if err := w.idem.Forget(ctx, ws.name, itemsOf(items)); err != nil {
		w.log.WarnContext(ctx, "order registrations of dead letters not removed", "workspace", ws.name, "error", err.Error())
	}
	ws.deadLettered(ctx, entries)
	recs := make([]history.Record, 0, len(items))
	for i, it := range items {
		it.outcome = metrics.OutcomeDeadLetter
		w.m.DeadLetters.WithLabelValues(ws.name, "exhausted").Inc()
		w.log.WarnContext(ctx, "op dead-lettered: retries exhausted", "workspace", ws.name, "api", ws.api.String(), "op_id", it.p.OpID,
			"action", string(it.p.Action), "attempts", entries[i].Attempts, "status", entries[i].Status)
		if w.obs.hist != nil {
			r := seedRecord(it)
			r.Events = []history.Event{{Kind: history.KindDeadLettered, At: entries[i].DeadAt,
				Status: entries[i].Status, Reason: entries[i].Reason}}
			recs = append(recs, r)
		}
	}
	if len(recs) > 0 {
		if err := w.obs.hist.Append(ctx, ws.name, recs); err != nil {
			w.log.WarnContext(ctx, "op history not written", "workspace", ws.name, "ops", len(recs), "error", err.Error())
		}
	}
	return nil
}
