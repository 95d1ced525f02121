package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
)

// DefaultBulkConcurrency is the handler slots of the bulk-lane server.
const DefaultBulkConcurrency = 8

// BulkConfig configures the bulk lane: the asynq queues of bulk tasks
// (task.BulkQueue per workspace), each task up to task.MaxBulkOps ops sent
// in one v2 batch request.
type BulkConfig struct {
	// Concurrency is the handler slots of the one server that dequeues the
	// bulk lanes of every workspace: the most bulk tasks this process holds
	// and sends at once. It bounds the memory a backfill takes (Concurrency
	// × at most ~0.6 MiB of payload) and how many requests of a backfill
	// wait for the workspace's default-lane tokens beside its live ops.
	// Zero means DefaultBulkConcurrency (8).
	Concurrency int
	// HistoryDelivered records op history for bulk ops that were simply
	// delivered (or already done) too. False, the default, records history
	// only for bulk ops that did not go straight through: retried, deferred,
	// dropped by a tombstone, dead-lettered. A backfill of millions of ops
	// would otherwise write ~300 bytes of Redis per op and, measured with
	// BenchmarkBulk, deliver 43K instead of 78K ops/s (docs/BENCHMARKS.md).
	HistoryDelivered bool
}

func (c BulkConfig) withDefaults() BulkConfig {
	c.Concurrency = cmp.Or(c.Concurrency, DefaultBulkConcurrency)
	return c
}

// bulkServer returns the asynq server of the bulk lanes, built on base.
func (w *Worker) bulkServer(base asynq.Config) *asynq.Server {
	queues := map[string]int{}
	for _, wc := range w.cfg.Workspaces {
		queues[task.BulkQueue(wc.Name)] = wc.Weight
	}
	c := base
	c.Concurrency = w.cfg.Bulk.withDefaults().Concurrency
	c.Queues = queues
	return asynq.NewServer(w.redis(), c)
}

// processBulk delivers the ops of one bulk task (one workspace, one API)
// through the same layers as a batch of single ops: one Claim round trip (done-markers, tombstones,
// claims), the breaker, one limiter token for the one HTTP request, done-
// markers after a 2xx, dead letters per op. Then, per op:
//   - delivered, skipped (already done), dropped (tombstone) or
//     dead-lettered: settled, never sent again by this task;
//   - anything else (5xx, 429, breaker open, no token, claimed elsewhere):
//     when the round made progress (some op delivered or dead-lettered),
//     the failed ops are re-queued as single-op tasks under their own op
//     ids and the bulk task completes, so they neither hold back nor
//     repeat the others; when it made none (the request as a whole failed),
//     the bulk task itself is retried with that error (a DelayError counts
//     no failure), and the done-markers skip whatever was accepted before.
func (w *Worker) processBulk(ctx context.Context, t *asynq.Task) error {
	b, err := task.BulkFromTask(t)
	if err != nil {
		return w.undecodable(ctx, t, err)
	}
	ws, err := w.route(ctx, b.Workspace, b.API, len(b.Ops))
	if err != nil {
		return err
	}
	items := make([]*item, len(b.Ops))
	for i, p := range b.Ops {
		items[i] = taskItem(ctx, p)
	}
	n := float64(len(items))
	ws.inflight.Add(n)
	// Not cancelled with the task: a request that got its 2xx must write
	// its done-markers. The limiter wait and the request are bounded.
	ws.send(context.WithoutCancel(ctx), laneBulk, append([]*item(nil), items...))
	ws.inflight.Sub(n)

	var (
		failed   []*item
		errs     []error
		progress bool
	)
	for _, it := range items {
		var err error
		select {
		case err = <-it.done:
		default:
			err = errors.New("op not settled by the send") // never expected; retried, not lost
		}
		if err == nil {
			ws.opsCounter(it.p.Action, it.outcome).Inc()
			progress = progress || it.outcome == metrics.OutcomeDelivered || it.outcome == metrics.OutcomeDeadLetter
			continue
		}
		failed, errs = append(failed, it), append(errs, err)
	}
	if len(failed) == 0 {
		return nil
	}
	if !progress {
		err := pickBulkError(errs)
		if failed[0].exhausted(err) {
			// The bulk task's retries ran out: its ops go to cioq's
			// dead-letter store, each with its own last error.
			if derr := ws.exhaust(ctx, failed, errs); derr != nil {
				return derr
			}
			for _, it := range failed {
				ws.opsCounter(it.p.Action, metrics.OutcomeDeadLetter).Inc()
			}
			return nil
		}
		outcome := metrics.OutcomeRetry
		var de *DelayError
		if errors.As(err, &de) {
			outcome = metrics.OutcomeDeferred
		}
		for _, it := range failed {
			ws.opsCounter(it.p.Action, outcome).Inc()
		}
		return err
	}
	return w.requeueSingles(ctx, ws, failed, errs)
}

// pickBulkError returns the error a bulk task is retried with when none of
// its ops made progress: a counted failure when there is one (it backs off),
// else the DelayError that waits longest.
func pickBulkError(errs []error) error {
	var best *DelayError
	for _, err := range errs {
		var de *DelayError
		if !errors.As(err, &de) {
			return err
		}
		if best == nil || de.After > best.After {
			best = de
		}
	}
	return best
}

// requeueSingles queues each failed op of a bulk task as a single-op task
// under its own op id (its lane), after the delay its own error asks for,
// with its stamp and registered for its person's order, all in one round
// trip. A task already queued with that id is fine: it carries the same op.
// When Redis refuses, the bulk task is retried as a whole instead.
func (w *Worker) requeueSingles(ctx context.Context, ws *workspace, failed []*item, errs []error) error {
	budget := task.RetryBudget(failed[0].maxRetry)
	if failed[0].maxRetry == math.MaxInt {
		budget = 25
	}
	tasks := make([]taskq.Task, len(failed))
	for i, it := range failed {
		tasks[i] = taskq.Single(it.p, budget, nil).After(w.cfg.Retry.Delay(0, errs[i], nil))
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := w.queue.Write(rctx, nil, &taskq.Unit{Tasks: tasks}); err != nil {
		w.log.WarnContext(ctx, "bulk: re-queueing failed ops one by one failed; retrying the bulk task",
			"workspace", ws.name, "ops", len(failed), "error", err.Error())
		for _, it := range failed {
			ws.opsCounter(it.p.Action, metrics.OutcomeRetry).Inc()
		}
		return fmt.Errorf("bulk: re-queue %d ops: %w", len(failed), err)
	}
	for i, it := range failed {
		outcome := metrics.OutcomeRetry
		var de *DelayError
		if errors.As(errs[i], &de) {
			outcome = metrics.OutcomeDeferred
		}
		ws.opsCounter(it.p.Action, outcome).Inc()
	}
	w.log.DebugContext(ctx, "bulk: failed ops re-queued as single-op tasks", "workspace", ws.name, "ops", len(failed))
	return nil
}
