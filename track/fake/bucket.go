package fake

import (
	"math"
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
// how long until one is. A new bucket starts full; a smaller burst applies at
// once.
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

// retryAfterSeconds renders wait as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
