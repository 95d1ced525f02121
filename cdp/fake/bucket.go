package fake

import (
	"fmt"
	"math"
	"net/http"
	"time"
)

// bucket is one workspace's token bucket. Guarded by Server.mu.
type bucket struct {
	tokens  float64
	last    time.Time
	started bool
}

// take spends one token at now from a bucket refilled at rate tokens/s and
// holding at most burst. It reports whether a token was there and, if not,
// how long until one is. A new bucket starts full.
func (b *bucket) take(now time.Time, rate, burst float64) (ok bool, wait time.Duration) {
	if !b.started {
		b.tokens, b.last, b.started = burst, now, true
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens += dt.Seconds() * rate
	}
	if !now.Before(b.last) {
		b.last = now
	}
	b.tokens = math.Min(b.tokens, burst)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// take spends a token of the caller's workspace bucket.
func (s *Server) take(c *call) (bool, time.Duration) {
	rate := s.opts.RateLimit
	if c.faults.RateLimit != nil {
		rate = *c.faults.RateLimit
	}
	if rate <= 0 {
		return true, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[c.rec.Workspace]
	if b == nil {
		b = &bucket{}
		s.buckets[c.rec.Workspace] = b
	}
	return b.take(s.opts.Now(), rate, s.opts.burst(rate))
}

// rateLimited answers a bare 429, with Retry-After (whole seconds, at least
// 1) when Options.RetryAfter.
func (s *Server) rateLimited(c *call, fault string, wait time.Duration) {
	c.rec.Fault = fault
	s.record(c, outcome{status: http.StatusTooManyRequests})
	if s.opts.RetryAfter {
		c.w.Header().Set("Retry-After", fmt.Sprint(max(1, int(math.Ceil(wait.Seconds())))))
	}
	c.w.WriteHeader(http.StatusTooManyRequests)
}
