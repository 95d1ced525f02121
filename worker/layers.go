package worker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// The send path of one batch request is a sendFunc wrapped in layers,
// outermost first (docs/architecture.md draws them):
//
//	guard    an open circuit (this pod's, or any replica's) answers at once:
//	         no token spent (one circuit per workspace and API)
//	limit    one token of the workspace's shared budget (critical lane:
//	         its reserved share first; bulk: after live requests); Track
//	         and Pipelines requests share it unless PipelinesLimit is set
//	execute  one call through the breaker; request metrics; a 2xx feeds the
//	         limiter and lifts a 401 pause
//	observe  the request's history attempt and trace span
//	transport  the HTTP request (Sender.BatchEncoded), bounded by
//	         Config.RequestTimeout
//
// Each layer is a method that takes the next sendFunc and returns one, so
// tests compose them with in-memory fakes of the small interfaces below.

// sendFunc sends one request.
type sendFunc func(ctx context.Context, r *request) error

// request is one batch request: the ops of items, in order.
type request struct {
	lane  lane
	items []*item
	ops   [][]byte
	// att records the request for history and tracing (history.go); nil
	// when both are off.
	att *attempt
	// tok is the limiter token the request was sent with (set by limit).
	tok ratelimit.Token
}

// claimStore is the part of *idempotency.Store the worker uses.
type claimStore interface {
	Claim(ctx context.Context, workspace string, items []idempotency.Item) ([]idempotency.Check, error)
	MarkDone(ctx context.Context, workspace string, items []idempotency.Item) error
	Release(ctx context.Context, workspace string, items []idempotency.Item) error
	Forget(ctx context.Context, workspace string, items []idempotency.Item) error
	Extend(ctx context.Context, workspace string, items []idempotency.Item) error
}

// rateLimiter is the part of *ratelimit.Limiter the worker uses.
type rateLimiter interface {
	Wait(ctx context.Context, workspace string, lim ratelimit.Limit, critical bool, maxWait time.Duration) (ratelimit.Token, error)
	Throttled(ctx context.Context, tok ratelimit.Token, retryAfter time.Duration) (time.Duration, error)
	Succeeded(ctx context.Context, tok ratelimit.Token) error
	State(ctx context.Context, workspace string, lim ratelimit.Limit) (ratelimit.State, error)
}

// circuits is the part of *breaker.Set the worker uses.
type circuits interface {
	Status(workspace string) breaker.Status
	Execute(ctx context.Context, workspace string, fn func() error) error
}

// deadLetterStore is the part of *DeadLetters the send path uses.
type deadLetterStore interface {
	Add(ctx context.Context, entries []DeadLetter) error
	Count(ctx context.Context, ws string) (int64, error)
}

var (
	_ deadLetterStore = (*DeadLetters)(nil)
	_ claimStore      = (*idempotency.Store)(nil)
	_ rateLimiter     = (*ratelimit.Limiter)(nil)
	_ circuits        = (*breaker.Set)(nil)
)

// guard answers with a *breaker.OpenError while the workspace's circuit is
// open, before any token is spent.
func (ws *workspace) guard(next sendFunc) sendFunc {
	return func(ctx context.Context, r *request) error {
		if st := ws.w.breakers.Status(ws.breakerKey); st.State == breaker.StateOpen {
			if left := time.Until(st.OpenUntil); left > 0 {
				return &breaker.OpenError{Workspace: ws.breakerKey, Until: st.OpenUntil, RetryAfter: left}
			}
		}
		return next(ctx, r)
	}
}

// limit takes one token of the workspace's shared budget for the request,
// waiting in-process at most Config.MaxLimiterWait (else a
// *ratelimit.DelayError). Bulk requests wait while a live request of the
// workspace waits, so a backfill takes only what live traffic leaves.
func (ws *workspace) limit(next sendFunc) sendFunc {
	return func(ctx context.Context, r *request) error {
		w := ws.w
		switch r.lane {
		case laneBulk:
			if err := ws.yieldToLive(ctx, w.cfg.MaxLimiterWait); err != nil {
				return err
			}
		case laneLive:
			ws.liveWaiting.Add(1)
		}
		tok, err := w.limiter.Wait(ctx, ws.limitKey, ws.budget, r.lane == laneCritical, w.cfg.MaxLimiterWait)
		if r.lane == laneLive {
			ws.liveWaiting.Add(-1)
		}
		if err != nil {
			return err
		}
		r.tok = tok
		return next(ctx, r)
	}
}

// execute sends through the breaker (which counts only the failures
// countsForBreaker names) and records the request's metrics. A 2xx tells
// the limiter and lifts a pause for bad credentials; any answer that is not
// a 401/403 lifts it too.
func (ws *workspace) execute(next sendFunc) sendFunc {
	return func(ctx context.Context, r *request) error {
		w := ws.w
		w.m.BatchSize.WithLabelValues(ws.name, r.lane.String()).Observe(float64(len(r.ops)))
		var status string
		err := w.breakers.Execute(ctx, ws.breakerKey, func() error {
			start := time.Now()
			err := next(ctx, r)
			w.m.RequestDuration.WithLabelValues(ws.name).Observe(time.Since(start).Seconds())
			status = statusLabel(err)
			return err
		})
		if status != "" {
			w.m.Requests.WithLabelValues(ws.name, ws.api.String(), status).Inc()
		}
		if err == nil {
			_ = w.limiter.Succeeded(ctx, r.tok)
		}
		if status != "" && status != "error" && !errors.Is(err, track.ErrUnauthorized) && ws.pausedUntil.Swap(0) != 0 {
			w.log.InfoContext(ctx, "workspace resumed: credentials accepted", "workspace", ws.name, "api", ws.api.String())
			w.m.Unauthorized.WithLabelValues(ws.name, ws.api.String()).Set(0)
		}
		return err
	}
}

// transport is the HTTP request itself.
func (ws *workspace) transport() sendFunc {
	return func(ctx context.Context, r *request) error {
		rctx, cancel := context.WithTimeout(ctx, ws.w.cfg.RequestTimeout)
		defer cancel()
		return ws.sender.BatchEncoded(rctx, r.ops)
	}
}

func statusLabel(err error) string {
	var be *track.BatchError
	if err == nil {
		return "200"
	}
	if errors.As(err, &be) {
		return strconv.Itoa(be.StatusCode)
	}
	if status, _, ok := answerOf(err); ok {
		return strconv.Itoa(status)
	}
	return "error"
}

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
