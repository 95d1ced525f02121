package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// lane names used in metrics and limiter calls.
const (
	laneCritical = "critical"
	laneDefault  = "default"
)

// workspace is the runtime of one configured workspace: its batchers and the
// layers every batch request of it goes through.
type workspace struct {
	name   string
	sender Sender
	limit  ratelimit.Limit
	w      *Worker

	critical, bulk *batcher

	// pausedUntil is the unix nano time a 401/403 pause ends (0: not paused).
	pausedUntil atomic.Int64

	// liveWaiting counts default-lane (live) requests of this process
	// waiting for a rate token; bulk requests yield to them.
	liveWaiting atomic.Int32

	// Per-op metric children, resolved once instead of per task.
	inflight prometheus.Gauge
	opsMu    sync.RWMutex
	ops      map[opsKey]prometheus.Counter
}

type opsKey struct {
	action  track.Action
	outcome string
}

// opsCounter returns the cioq_ops_total child for action and outcome.
func (ws *workspace) opsCounter(a track.Action, outcome string) prometheus.Counter {
	k := opsKey{a, outcome}
	ws.opsMu.RLock()
	c, ok := ws.ops[k]
	ws.opsMu.RUnlock()
	if ok {
		return c
	}
	c = ws.w.m.Ops.WithLabelValues(ws.name, string(a), outcome)
	ws.opsMu.Lock()
	ws.ops[k] = c
	ws.opsMu.Unlock()
	return c
}

func (ws *workspace) laneOf(critical bool) *batcher {
	if critical {
		return ws.critical
	}
	return ws.bulk
}

// send is the batcher's flush: it settles every item with exactly one result.
// Per batch: one Redis round trip for done-markers, tombstones and claims;
// then one breaker call and one limiter token per HTTP request.
func (ws *workspace) send(ctx context.Context, critical bool, items []*item) {
	w := ws.w
	defer ws.flushHistory(ctx, items) // one round trip per batch (history.go)
	lane := laneDefault
	if critical {
		lane = laneCritical
	}
	if until := ws.pausedUntil.Load(); until > 0 {
		if left := time.Until(time.Unix(0, until)); left > 0 {
			ws.deferAll(items, &DelayError{Reason: ReasonUnauthorized, After: left})
			return
		}
	}
	// A person's ops keep their enqueue order within a batch.
	sort.SliceStable(items, func(i, j int) bool { return items[i].p.EnqueuedAt.Before(items[j].p.EnqueuedAt) })

	refs := make([]idempotency.Item, len(items))
	for i, it := range items {
		refs[i] = idempotency.Item{
			OpID: it.p.OpID, Person: it.p.Person, EnqueuedAt: it.p.EnqueuedAt,
			Droppable: droppable(it.p.Action),
		}
	}
	checks, err := w.idem.Claim(ctx, ws.name, refs)
	if err != nil {
		for _, it := range items {
			it.finish(metrics.OutcomeRetry, fmt.Errorf("claim: %w", err))
		}
		return
	}
	toSend := items[:0:0]
	for i, it := range items {
		switch checks[i].Verdict {
		case idempotency.Done:
			w.m.DedupeSkips.WithLabelValues(ws.name).Inc()
			ws.histDuplicate(it)
			it.finish(metrics.OutcomeSkipped, nil)
		case idempotency.Tombstoned:
			w.m.TombstoneDrops.WithLabelValues(ws.name).Inc()
			ws.histTombstoned(it, checks[i].Tombstone)
			if tb := checks[i].Tombstone; tb != nil {
				w.log.DebugContext(ctx, "op dropped by tombstone", "workspace", ws.name,
					"op_id", it.p.OpID, "tombstone_op_id", tb.OpID)
			}
			it.finish(metrics.OutcomeDropped, nil)
		case idempotency.Claimed:
			w.m.Deferred.WithLabelValues(ws.name, ReasonClaimed).Inc()
			ws.histDeferredOne(it, ReasonClaimed, w.cfg.claimTTL)
			it.finish(metrics.OutcomeDeferred, &DelayError{Reason: ReasonClaimed, After: w.cfg.claimTTL})
		default:
			toSend = append(toSend, it)
		}
	}
	if len(toSend) > 0 {
		ws.deliver(ctx, lane, critical, toSend)
	}
}

// droppable reports whether an op is obsolete once a newer delete/suppress
// exists for its person. Unsuppress, delete and suppress themselves are not.
func droppable(a track.Action) bool {
	switch a {
	case track.ActionSuppress, track.ActionUnsuppress, track.ActionDelete, track.ActionDeleteDevice, track.ActionMerge:
		return false
	}
	return true
}

// deliver sends claimed items in one request and settles them. A whole-batch
// permanent rejection without per-op errors is bisected, so one poison op is
// found in log2(n) requests and never holds the others back.
func (ws *workspace) deliver(ctx context.Context, lane string, critical bool, items []*item) {
	w := ws.w
	ops := make([][]byte, len(items))
	for i, it := range items {
		ops[i] = it.p.Op
	}
	actx, att := ws.beginAttempt(ctx, items) // history and batch span (history.go)
	tok, err := ws.request(actx, lane, critical, ops)
	ws.endAttempt(att, err)

	var (
		be  *track.BatchError
		oe  *breaker.OpenError
		de  *ratelimit.DelayError
		ae  *track.APIError
		ids = opIDs(items)
	)
	switch {
	case err == nil:
		ws.accepted(ctx, lane, items)
	case errors.As(err, &be):
		failed := be.Failed()
		var ok, bad []*item
		for i, it := range items {
			if _, isBad := failed[i]; isBad {
				bad = append(bad, it)
			} else {
				ok = append(ok, it)
			}
		}
		ws.accepted(ctx, lane, ok)
		reasons := make([]*PermanentError, len(bad))
		j := 0
		for i := range items {
			if f, isBad := failed[i]; isBad {
				reasons[j] = &PermanentError{Status: be.StatusCode, Reason: f.String()}
				j++
			}
		}
		ws.deadLetter(ctx, bad, reasons)
	case errors.As(err, &oe):
		ws.release(ctx, ids)
		w.m.Deferred.WithLabelValues(ws.name, ReasonBreakerOpen).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonBreakerOpen, After: max(oe.RetryAfter, 100*time.Millisecond), Err: err})
	case errors.As(err, &de):
		ws.release(ctx, ids)
		w.m.LimiterDelays.WithLabelValues(ws.name, lane).Inc()
		w.m.Deferred.WithLabelValues(ws.name, ReasonRateLimited).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonRateLimited, After: max(de.RetryAfter, 50*time.Millisecond), Err: err})
	case errors.Is(err, track.ErrRateLimited):
		ra, _ := track.RetryAfter(err)
		cool, cerr := w.limiter.Throttled(ctx, tok, ra)
		if cerr != nil {
			cool = max(ra, time.Second)
		}
		w.m.CoolDowns.WithLabelValues(ws.name).Inc()
		ws.release(ctx, ids)
		w.m.Deferred.WithLabelValues(ws.name, ReasonRateLimited).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonRateLimited, After: cool, Err: err})
	case errors.Is(err, track.ErrUnauthorized):
		ws.pause(ctx, err)
		ws.release(ctx, ids)
		w.m.Deferred.WithLabelValues(ws.name, ReasonUnauthorized).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonUnauthorized, After: w.cfg.UnauthorizedPause, Err: err})
	case errors.Is(err, track.ErrInvalidRequest) || errors.Is(err, track.ErrInvalidOp):
		if len(items) > 1 {
			half := len(items) / 2
			ws.deliver(ctx, lane, critical, items[:half])
			ws.deliver(ctx, lane, critical, items[half:])
			return
		}
		pe := &PermanentError{Reason: err.Error()}
		if errors.As(err, &ae) {
			pe.Status, pe.Body = ae.StatusCode, string(ae.Body)
		}
		ws.deadLetter(ctx, items, []*PermanentError{pe})
	default:
		// 5xx, 408, timeouts, network: a counted failure, retried with backoff.
		ws.release(ctx, ids)
		for _, it := range items {
			it.finish(metrics.OutcomeRetry, err)
		}
	}
}

// request is one HTTP request through the breaker and the limiter. The
// breaker is consulted first so an open circuit spends no token. It returns
// the request's limiter token (zero when none was taken), which a 429 is
// reported with.
func (ws *workspace) request(ctx context.Context, lane string, critical bool, ops [][]byte) (ratelimit.Token, error) {
	w := ws.w
	if st := w.breakers.Status(ws.name); st.State == "OPEN" {
		if left := time.Until(st.OpenUntil); left > 0 {
			return ratelimit.Token{}, &breaker.OpenError{Workspace: ws.name, Until: st.OpenUntil, RetryAfter: left}
		}
	}
	bulk := isBulk(ctx)
	if bulk {
		// Live batches of this workspace get the tokens first: a bulk request
		// waits while one of them is waiting, so a backfill takes only what
		// live traffic leaves (and goes back to the queue, without a
		// failure, if live traffic keeps the budget busy).
		if err := ws.yieldToLive(ctx, w.cfg.MaxLimiterWait); err != nil {
			return ratelimit.Token{}, err
		}
	} else if !critical {
		ws.liveWaiting.Add(1)
	}
	tok, err := w.limiter.Wait(ctx, ws.name, ws.limit, critical, w.cfg.MaxLimiterWait)
	if !bulk && !critical {
		ws.liveWaiting.Add(-1)
	}
	if err != nil {
		return tok, err
	}
	w.m.BatchSize.WithLabelValues(ws.name, lane).Observe(float64(len(ops)))
	var status string
	err = w.breakers.Execute(ctx, ws.name, func() error {
		rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
		defer cancel()
		start := time.Now()
		err := ws.sender.BatchEncoded(rctx, ops)
		w.m.RequestDuration.WithLabelValues(ws.name).Observe(time.Since(start).Seconds())
		status = statusLabel(err)
		return err
	})
	if status != "" {
		w.m.Requests.WithLabelValues(ws.name, status).Inc()
	}
	if err == nil {
		w.limiter.Succeeded(ctx, tok)
	}
	if status != "" && status != "error" && !errors.Is(err, track.ErrUnauthorized) && ws.pausedUntil.Swap(0) != 0 {
		w.log.InfoContext(ctx, "workspace resumed: credentials accepted", "workspace", ws.name)
		w.m.Unauthorized.WithLabelValues(ws.name).Set(0)
	}
	return tok, err
}

func statusLabel(err error) string {
	var ae *track.APIError
	var be *track.BatchError
	switch {
	case err == nil:
		return "200"
	case errors.As(err, &be):
		return strconv.Itoa(be.StatusCode)
	case errors.As(err, &ae):
		return strconv.Itoa(ae.StatusCode)
	default:
		return "error"
	}
}

// accepted marks items done (retrying a failed marker write briefly: the ops
// were accepted, so a lost marker could only cause a resend) and settles them.
func (ws *workspace) accepted(ctx context.Context, lane string, items []*item) {
	if len(items) == 0 {
		return
	}
	w := ws.w
	ids := opIDs(items)
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = w.idem.MarkDone(ctx, ws.name, ids); err == nil {
			break
		}
		time.Sleep(time.Duration(50*(attempt+1)) * time.Millisecond)
	}
	if err != nil {
		w.log.ErrorContext(ctx, "done-markers not written after delivery", "workspace", ws.name,
			"ops", len(ids), "error", err.Error())
	}
	now := w.cfg.Now()
	for _, it := range items {
		w.m.Latency.WithLabelValues(ws.name, lane).Observe(now.Sub(it.p.EnqueuedAt).Seconds())
		it.finish(metrics.OutcomeDelivered, nil)
	}
}

// deadLetter stores permanently rejected items with their reasons (one
// reason for all when reasons has one entry) and settles them. When the store
// cannot be written the items are retried, never lost.
func (ws *workspace) deadLetter(ctx context.Context, items []*item, reasons []*PermanentError) {
	if len(items) == 0 {
		return
	}
	w := ws.w
	now := w.cfg.Now()
	entries := make([]DeadLetter, len(items))
	for i, it := range items {
		r := reasons[0]
		if len(reasons) == len(items) {
			r = reasons[i]
		}
		entries[i] = DeadLetter{
			Workspace: ws.name, OpID: it.p.OpID, Action: string(it.p.Action), Person: it.p.Person,
			Status: r.Status, Reason: r.Reason, Body: r.Body, Attempts: it.attempt + 1,
			EnqueuedAt: it.p.EnqueuedAt, DeadAt: now, Op: it.p.Op,
		}
	}
	err := w.dlq.Add(ctx, entries)
	ws.release(ctx, opIDs(items))
	ws.histDeadLettered(items, entries, err)
	if err == nil {
		if n, cerr := w.dlq.Count(ctx, ws.name); cerr == nil {
			w.m.DeadLetterDepth.WithLabelValues(ws.name).Set(float64(n))
			if n >= int64(w.cfg.DeadLetterMax)*9/10 {
				w.log.WarnContext(ctx, "dead-letter store nearly full: the oldest entries are trimmed beyond the bound",
					"workspace", ws.name, "entries", n, "max", w.cfg.DeadLetterMax)
			}
		}
	}
	for i, it := range items {
		if err != nil {
			it.finish(metrics.OutcomeRetry, fmt.Errorf("dead-letter store: %w", err))
			continue
		}
		w.m.DeadLetters.WithLabelValues(ws.name, reasonClass(entries[i].Status)).Inc()
		w.log.WarnContext(ctx, "op dead-lettered", "workspace", ws.name, "op_id", it.p.OpID,
			"action", string(it.p.Action), "status", entries[i].Status, "reason", entries[i].Reason)
		it.finish(metrics.OutcomeDeadLetter, nil)
	}
}

func reasonClass(status int) string {
	if status == 0 {
		return "invalid"
	}
	return strconv.Itoa(status)
}

// pause stops sends for the workspace after a 401/403: tasks wait (no failure
// counted) and health says why; one batch probes again after the pause.
func (ws *workspace) pause(ctx context.Context, err error) {
	w := ws.w
	until := w.cfg.Now().Add(w.cfg.UnauthorizedPause)
	if ws.pausedUntil.Swap(until.UnixNano()) == 0 {
		w.log.ErrorContext(ctx, "workspace paused: Customer.io rejected the credentials", "workspace", ws.name,
			"pause", w.cfg.UnauthorizedPause.String(), "error", err.Error())
	}
	w.m.Unauthorized.WithLabelValues(ws.name).Set(1)
}

// unauthorized reports whether the workspace is paused for bad credentials.
func (ws *workspace) unauthorized() bool { return ws.pausedUntil.Load() != 0 }

func (ws *workspace) release(ctx context.Context, ids []string) {
	if err := ws.w.idem.Release(ctx, ws.name, ids); err != nil {
		// Claims expire on their own after ClaimTTL.
		ws.w.log.WarnContext(ctx, "claims not released", "workspace", ws.name, "error", err.Error())
	}
}

func (ws *workspace) deferAll(items []*item, err *DelayError) {
	ws.histDeferred(items, err)
	for _, it := range items {
		it.finish(metrics.OutcomeDeferred, err)
	}
}

func opIDs(items []*item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.p.OpID
	}
	return ids
}

// bulkKey marks a send context as the bulk path's.
type bulkKey struct{}

func withBulk(ctx context.Context) context.Context { return context.WithValue(ctx, bulkKey{}, true) }

func isBulk(ctx context.Context) bool { b, _ := ctx.Value(bulkKey{}).(bool); return b }

// yieldToLive waits, at most maxWait, until no live request of the workspace
// is waiting for a token in this process; past that it returns a
// rate-limit DelayError (the bulk task goes back without a failure).
func (ws *workspace) yieldToLive(ctx context.Context, maxWait time.Duration) error {
	if ws.liveWaiting.Load() == 0 {
		return nil
	}
	deadline := time.Now().Add(maxWait)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for ws.liveWaiting.Load() > 0 {
		if time.Now().After(deadline) {
			return &ratelimit.DelayError{RetryAfter: 500 * time.Millisecond}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
