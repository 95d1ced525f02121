package worker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// workspace is the runtime of one configured workspace and one API: its
// batchers and the layers every batch request of it goes through. A
// workspace with a Pipelines sender has two: the Track runtime (Worker.ws)
// and the Pipelines runtime (Worker.pl). Both use the workspace's name for
// its claims, done-markers, order, tombstones, dead letters and history,
// which the ops of its two APIs share; each has its own batchers, circuit
// breaker (breakerKey) and 401 pause, and its own rate budget or a share of
// one (limitKey).
type workspace struct {
	name   string
	api    task.API
	sender Sender
	budget ratelimit.Limit
	// limitKey names the budget in the limiter: name, or name + "/pipelines"
	// for Pipelines requests with a budget of their own.
	limitKey string
	// breakerKey names the circuit breaker: name for Track requests, name +
	// "/pipelines" for Pipelines requests (another host: an outage of one
	// API does not hold the other back).
	breakerKey string
	w          *Worker

	// live and critical batch the single-op tasks of their lanes.
	live, critical *batcher
	// sendFn is the layered send path (layers.go).
	sendFn sendFunc

	// pausedUntil is the unix nano time a 401/403 pause ends (0: not paused).
	pausedUntil atomic.Int64

	// liveWaiting counts live requests of this process waiting for a token
	// of limitKey; bulk requests yield to them. Shared by the two runtimes
	// of a workspace when they share a budget.
	liveWaiting *atomic.Int32

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
	c = ws.w.m.Ops.WithLabelValues(ws.name, ws.api.String(), string(a), outcome)
	ws.opsMu.Lock()
	ws.ops[k] = c
	ws.opsMu.Unlock()
	return c
}

func (ws *workspace) batcherOf(l lane) *batcher {
	if l == laneCritical {
		return ws.critical
	}
	return ws.live
}

// send is the flush of a batcher (and the body of a bulk task): it settles
// every item with exactly one result. Per batch: one Redis round trip for
// done-markers, tombstones, order and claims; then one breaker call and one
// limiter token per HTTP request.
func (ws *workspace) send(ctx context.Context, l lane, items []*item) {
	w := ws.w
	defer ws.flushHistory(ctx, l, items) // one round trip per batch (history.go)
	if until := ws.pausedUntil.Load(); until > 0 {
		if left := time.Until(time.Unix(0, until)); left > 0 {
			ws.deferAll(items, &DelayError{Reason: ReasonUnauthorized, After: left})
			return
		}
	}
	// A person's ops go out in the order they were queued (their stamps).
	slices.SortStableFunc(items, func(a, b *item) int { return a.p.EnqueuedAt.Compare(b.p.EnqueuedAt) })

	checks, err := w.idem.Claim(ctx, ws.name, itemsOf(items))
	if err != nil {
		for _, it := range items {
			it.finish(metrics.OutcomeRetry, fmt.Errorf("claim: %w", err))
		}
		return
	}
	toSend := items[:0:0]
	var dropped []*item
	for i, it := range items {
		c := checks[i]
		switch c.Verdict {
		case idempotency.Done:
			w.m.DedupeSkips.WithLabelValues(ws.name).Inc()
			ws.histDuplicate(it)
			it.finish(metrics.OutcomeSkipped, nil)
		case idempotency.Tombstoned, idempotency.Suppressed:
			w.m.TombstoneDrops.WithLabelValues(ws.name).Inc()
			ws.histTombstoned(it, c.Verdict, c.Tombstone)
			dropped = append(dropped, it)
		case idempotency.Claimed:
			w.m.Deferred.WithLabelValues(ws.name, ReasonClaimed).Inc()
			ws.histDeferredOne(it, ReasonClaimed, w.cfg.claimTTL)
			it.finish(metrics.OutcomeDeferred, &DelayError{Reason: ReasonClaimed, After: w.cfg.claimTTL})
		case idempotency.Waiting:
			after := orderDelay(c.Blocker, w.cfg.Now())
			w.m.Deferred.WithLabelValues(ws.name, ReasonOrder).Inc()
			ws.histWaiting(it, c.Blocker, after)
			if err := ws.orphan(ctx, it, c.Blocker); err != nil {
				w.log.WarnContext(ctx, "order registration check failed", "workspace", ws.name, "error", err.Error())
			}
			it.finish(metrics.OutcomeDeferred, &DelayError{Reason: ReasonOrder, After: after})
		default:
			toSend = append(toSend, it)
		}
	}
	for _, it := range dropped {
		if tb := checks[slices.Index(items, it)].Tombstone; tb != nil {
			w.log.DebugContext(ctx, "op dropped by tombstone", "workspace", ws.name,
				"op_id", it.p.OpID, "tombstone_op_id", tb.OpID)
		}
		it.finish(metrics.OutcomeDropped, nil)
	}
	if len(toSend) > 0 {
		ws.deliver(ctx, l, toSend)
	}
}

// orderDelay is how long an op waits for an older op of its person: a
// second while the blocker is young, longer the longer it has waited (up to
// 30 s), so a person stuck behind a failing op costs little.
func orderDelay(b *idempotency.Blocker, now time.Time) time.Duration {
	d := time.Second
	if b != nil && b.Stamp > 0 {
		d = max(d, min(now.Sub(time.UnixMicro(b.Stamp))/10, 30*time.Second))
	}
	return d
}

// deliver sends claimed items in one request and settles them. A
// whole-request rejection for its content is bisected, so one poison op is
// found in log2(n) requests and never holds the others back; the claims of
// each half are renewed before it is sent, so no other copy of its ops can
// go out meanwhile.
func (ws *workspace) deliver(ctx context.Context, l lane, items []*item) {
	r := &request{lane: l, items: items, ops: make([][]byte, len(items))}
	for i, it := range items {
		r.ops[i] = it.p.Op
	}
	r.att = ws.beginAttempt(items) // history and batch span (history.go)
	err := ws.sendFn(ctx, r)
	ws.endAttempt(r.att, err)
	ws.settle(ctx, l, items, classify(err), r.tok)
}

// settle applies a request's outcome to its items; tok is the request's
// limiter token (zero when it got none), which a 429 goes back with.
func (ws *workspace) settle(ctx context.Context, l lane, items []*item, o outcome, tok ratelimit.Token) {
	w := ws.w
	switch o.verdict {
	case verdictAccepted:
		ws.accepted(ctx, l, items)
	case verdictPartial:
		failed := o.batch.Failed()
		var ok, bad []*item
		var reasons []*PermanentError
		for i, it := range items {
			if f, isBad := failed[i]; isBad {
				bad = append(bad, it)
				reasons = append(reasons, &PermanentError{Status: o.batch.StatusCode, Reason: f.String()})
			} else {
				ok = append(ok, it)
			}
		}
		ws.accepted(ctx, l, ok)
		ws.deadLetter(ctx, bad, reasons)
	case verdictOpen:
		ws.release(ctx, items)
		w.m.Deferred.WithLabelValues(ws.name, ReasonBreakerOpen).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonBreakerOpen, After: o.after, Err: o.err})
	case verdictNoToken:
		ws.release(ctx, items)
		w.m.LimiterDelays.WithLabelValues(ws.name, l.String()).Inc()
		w.m.Deferred.WithLabelValues(ws.name, ReasonRateLimited).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonRateLimited, After: o.after, Err: o.err})
	case verdictThrottled:
		cool, err := w.limiter.Throttled(ctx, tok, o.after)
		if err != nil {
			cool = max(o.after, time.Second)
		}
		w.m.CoolDowns.WithLabelValues(ws.name).Inc()
		ws.release(ctx, items)
		w.m.Deferred.WithLabelValues(ws.name, ReasonRateLimited).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonRateLimited, After: cool, Err: o.err})
	case verdictUnauthorized:
		ws.pause(ctx, o.err)
		ws.release(ctx, items)
		w.m.Deferred.WithLabelValues(ws.name, ReasonUnauthorized).Add(float64(len(items)))
		ws.deferAll(items, &DelayError{Reason: ReasonUnauthorized, After: w.cfg.UnauthorizedPause, Err: o.err})
	case verdictInvalid:
		if len(items) > 1 {
			half := len(items) / 2
			for _, part := range [][]*item{items[:half], items[half:]} {
				if err := w.idem.Extend(ctx, ws.name, itemsOf(part)); err != nil {
					// Without renewed claims another copy could go out:
					// retry these ops later instead.
					ws.release(ctx, part)
					for _, it := range part {
						it.finish(metrics.OutcomeRetry, fmt.Errorf("renew claims: %w", err))
					}
					continue
				}
				ws.deliver(ctx, l, part)
			}
			return
		}
		pe := &PermanentError{Reason: o.err.Error()}
		if status, body, ok := answerOf(o.err); ok {
			pe.Status, pe.Body = status, string(body)
		}
		ws.deadLetter(ctx, items, []*PermanentError{pe})
	default: // verdictRetry: a counted failure, retried with backoff
		ws.release(ctx, items)
		for _, it := range items {
			it.finish(metrics.OutcomeRetry, o.err)
		}
	}
}

// accepted marks items done and settles them. A failed marker write is
// retried briefly (the ops were accepted, so a lost marker could only cause
// a resend), giving up when ctx ends.
func (ws *workspace) accepted(ctx context.Context, l lane, items []*item) {
	if len(items) == 0 {
		return
	}
	w := ws.w
	refs := itemsOf(items)
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = w.idem.MarkDone(ctx, ws.name, refs); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			attempt = 20
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	if err != nil {
		w.log.ErrorContext(ctx, "done-markers not written after delivery", "workspace", ws.name,
			"ops", len(items), "error", err.Error())
	}
	now := w.cfg.Now()
	for _, it := range items {
		w.m.Latency.WithLabelValues(ws.name, l.String()).Observe(now.Sub(it.p.EnqueuedAt).Seconds())
		it.finish(metrics.OutcomeDelivered, nil)
	}
}

// deadLetter stores items that leave the queue undelivered, with their
// reasons (one reason for all when reasons has one entry), forgets their
// claims and order registrations, and settles them. When the store cannot
// be written the items are retried, never lost.
func (ws *workspace) deadLetter(ctx context.Context, items []*item, reasons []*PermanentError) {
	if len(items) == 0 {
		return
	}
	w := ws.w
	entries := ws.deadLetters(items, reasons)
	err := w.letters.Add(ctx, entries)
	if err == nil {
		if ferr := w.idem.Forget(ctx, ws.name, itemsOf(items)); ferr != nil {
			w.log.WarnContext(ctx, "order registrations of dead letters not removed", "workspace", ws.name, "error", ferr.Error())
		}
		ws.deadLettered(ctx, entries)
	} else {
		ws.release(ctx, items)
	}
	ws.histDeadLettered(items, entries, err)
	for i, it := range items {
		if err != nil {
			it.finish(metrics.OutcomeRetry, fmt.Errorf("dead-letter store: %w", err))
			continue
		}
		w.m.DeadLetters.WithLabelValues(ws.name, reasonClass(entries[i].Status)).Inc()
		w.log.WarnContext(ctx, "op dead-lettered", "workspace", ws.name, "api", ws.api.String(), "op_id", it.p.OpID,
			"action", string(it.p.Action), "status", entries[i].Status, "reason", entries[i].Reason)
		it.finish(metrics.OutcomeDeadLetter, nil)
	}
}

// deadLetters builds the dead-letter entries of items.
func (ws *workspace) deadLetters(items []*item, reasons []*PermanentError) []DeadLetter {
	now := ws.w.cfg.Now()
	entries := make([]DeadLetter, len(items))
	for i, it := range items {
		r := reasons[0]
		if len(reasons) == len(items) {
			r = reasons[i]
		}
		entries[i] = DeadLetter{
			Workspace: ws.name, API: it.p.API.String(), OpID: it.p.OpID, Action: string(it.p.Action), Person: it.p.Person,
			Status: r.Status, Reason: r.Reason, Body: r.Body, Attempts: it.attempt + 1,
			EnqueuedAt: it.p.EnqueuedAt, Timestamp: it.p.Timestamp, DeadAt: now, Op: it.p.Op,
		}
	}
	return entries
}

// deadLettered updates the dead-letter gauge and warns before the store
// trims.
func (ws *workspace) deadLettered(ctx context.Context, _ []DeadLetter) {
	w := ws.w
	n, err := w.letters.Count(ctx, ws.name)
	if err != nil {
		return
	}
	w.m.DeadLetterDepth.WithLabelValues(ws.name).Set(float64(n))
	if n >= int64(w.cfg.DeadLetterMax)*9/10 {
		w.log.WarnContext(ctx, "dead-letter store nearly full: the oldest entries are trimmed beyond the bound",
			"workspace", ws.name, "entries", n, "max", w.cfg.DeadLetterMax)
	}
}

func reasonClass(status int) string {
	if status == 0 {
		return "invalid"
	}
	return strconv.Itoa(status)
}

// pause stops sends of the workspace to this API after a 401/403 (the key
// is the API's own): tasks wait (no failure counted) and health says why;
// one batch probes again after the pause.
func (ws *workspace) pause(ctx context.Context, err error) {
	w := ws.w
	until := w.cfg.Now().Add(w.cfg.UnauthorizedPause)
	if ws.pausedUntil.Swap(until.UnixNano()) == 0 {
		w.log.ErrorContext(ctx, "workspace paused: Customer.io rejected the credentials", "workspace", ws.name,
			"api", ws.api.String(), "pause", w.cfg.UnauthorizedPause.String(), "error", err.Error())
	}
	w.m.Unauthorized.WithLabelValues(ws.name, ws.api.String()).Set(1)
}

// unauthorized reports whether the workspace is paused for bad credentials.
func (ws *workspace) unauthorized() bool { return ws.pausedUntil.Load() != 0 }

func (ws *workspace) release(ctx context.Context, items []*item) {
	if err := ws.w.idem.Release(ctx, ws.name, itemsOf(items)); err != nil {
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

// itemsOf returns the items as package idempotency sees them.
func itemsOf(items []*item) []idempotency.Item {
	out := make([]idempotency.Item, len(items))
	for i, it := range items {
		out[i] = it.p.Item()
	}
	return out
}
