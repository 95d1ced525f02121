package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"
)

// ErrLimited is matched (errors.Is) by *DelayError: the request may not go
// within the time the caller was willing to wait.
var ErrLimited = errors.New("ratelimit: limited")

// DelayError says a request must wait longer than allowed. Retry it after
// RetryAfter (for example as the queue task's retry delay).
type DelayError struct {
	// RetryAfter is how long until the next chance.
	RetryAfter time.Duration
	// CoolingDown is true when a 429 cool-down is the cause.
	CoolingDown bool
}

func (e *DelayError) Error() string {
	if e.CoolingDown {
		return fmt.Sprintf("ratelimit: cooling down after 429, retry in %s", e.RetryAfter)
	}
	return fmt.Sprintf("ratelimit: over budget, retry in %s", e.RetryAfter)
}

// Is reports whether target is ErrLimited.
func (e *DelayError) Is(target error) bool { return target == ErrLimited }

// Wait takes one token for workspace, waiting for it at most maxWait and
// never past ctx's deadline. It returns the Token once allowed (hand it back
// to Throttled or Succeeded with the answer), a *DelayError when the next
// chance lies beyond that bound (without sleeping towards it), or ctx's
// error when ctx ends while waiting. First attempts are paced per process
// at lim's rate, so a busy process does not hammer Redis; each sleep after a denial gets a little jitter so replicas do not
// retry in step. A maxWait of zero or less tries once.
func (l *Limiter) Wait(ctx context.Context, workspace string, lim Limit, critical bool, maxWait time.Duration) (Token, error) {
	if err := l.check("wait", workspace); err != nil {
		return Token{}, err
	}
	lim = lim.withDefaults()
	if err := lim.validate(); err != nil {
		return Token{}, err
	}
	deadline := time.Now().Add(max(maxWait, 0))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// The local pacer spaces this process's first attempts at the lane's
	// rate. A denied attempt does not go through it again: it sleeps the
	// RetryAfter Redis computed, which already paces it, and a second pacer
	// slot per denial would waste the process's share of the budget.
	pacer := l.pacer(workspace, lim, critical)
	now := time.Now()
	r := pacer.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		if !r.OK() || now.Add(d).After(deadline) {
			r.CancelAt(now)
			return Token{}, &DelayError{RetryAfter: d}
		}
		if err := sleep(ctx, d); err != nil {
			r.Cancel()
			return Token{}, err
		}
	}
	for {
		res, err := l.Allow(ctx, workspace, lim, critical)
		if err != nil {
			return Token{}, err
		}
		if res.Allowed {
			return res.Token, nil
		}
		now := time.Now()
		if now.Add(res.RetryAfter).After(deadline) {
			return Token{}, &DelayError{RetryAfter: res.RetryAfter, CoolingDown: res.CoolingDown}
		}
		d := res.RetryAfter + jitter(res.RetryAfter)
		if left := deadline.Sub(now); d > left {
			d = left
		}
		if err := sleep(ctx, d); err != nil {
			return Token{}, err
		}
	}
}

// pacer returns this process's pacer for workspace and lane, set to lim:
// the critical lane paces at the full rate, the default lane at its own
// share. A pacer per lane keeps critical requests from queuing behind
// default-lane waiters in this process before they ever reach Redis. It
// paces at the configured rate, not the effective one: below the budget
// Redis's answers pace the attempts (a denied one sleeps until the next
// token), and a pacer at a low effective rate would send most waiters back
// to the queue before they ever asked Redis, leaving tokens unused.
func (l *Limiter) pacer(ws string, lim Limit, critical bool) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, burst := lim.Rate, lim.Burst
	key := ws + "\x00default"
	if critical {
		key = ws + "\x00critical"
	} else {
		r, burst = lim.bulk()
	}
	p, ok := l.pacers[key]
	if !ok {
		p = rate.NewLimiter(rate.Limit(r), burst)
		l.pacers[key] = p
		return p
	}
	if p.Limit() != rate.Limit(r) {
		p.SetLimit(rate.Limit(r))
	}
	if p.Burst() != burst {
		p.SetBurst(burst)
	}
	return p
}

// jitter is a random extra of up to a tenth of d, at most 50 ms.
func jitter(d time.Duration) time.Duration {
	j := min(d/10, 50*time.Millisecond)
	if j <= 0 {
		return time.Duration(rand.Int64N(int64(time.Millisecond)))
	}
	return time.Duration(rand.Int64N(int64(j)))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
