package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Reasons an op is sent back to the queue without counting a failure.
const (
	ReasonRateLimited  = "rate_limited" // no token from the shared limiter in time, or a 429 cool-down
	ReasonBreakerOpen  = "breaker_open" // the workspace's circuit is open
	ReasonClaimed      = "claimed"      // another live copy of the op is being sent
	ReasonUnauthorized = "unauthorized" // Customer.io answered 401/403: the workspace is paused
	ReasonBackpressure = "backpressure" // this worker holds its cap of ops for the workspace
	ReasonShutdown     = "shutdown"     // the worker is stopping
	ReasonUnknown      = "unknown_workspace"
)

// DelayError sends an op back to the queue for After without counting a
// failure: no retry budget is spent (asynq IsFailure is false), nothing is
// lost. Reason is one of the Reason* constants.
type DelayError struct {
	Reason string
	After  time.Duration
	Err    error
}

func (e *DelayError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("deferred (%s) for %s: %v", e.Reason, e.After.Round(time.Millisecond), e.Err)
	}
	return fmt.Sprintf("deferred (%s) for %s", e.Reason, e.After.Round(time.Millisecond))
}

// Unwrap returns the cause.
func (e *DelayError) Unwrap() error { return e.Err }

// IsFailure is the asynq IsFailure predicate: a DelayError is not a failure.
func IsFailure(err error) bool {
	var d *DelayError
	return !errors.As(err, &d)
}

// Retry policy defaults.
const (
	DefaultRetryBase = time.Second
	DefaultRetryCap  = 10 * time.Minute
)

// RetryPolicy computes asynq retry delays: a DelayError waits its After (with
// up to 10% jitter so a fleet does not come back in lockstep); any other
// error waits an exponential backoff with full jitter, uniform in
// [0, min(Cap, Base·2^n)].
type RetryPolicy struct {
	// Base is the first backoff step. Zero means DefaultRetryBase (1 s).
	Base time.Duration
	// Cap bounds a backoff step. Zero means DefaultRetryCap (10 min).
	Cap time.Duration
}

// Delay is an asynq.RetryDelayFunc.
func (p RetryPolicy) Delay(n int, err error, _ *asynq.Task) time.Duration {
	var d *DelayError
	if errors.As(err, &d) {
		after := max(d.After, 10*time.Millisecond)
		return after + time.Duration(rand.Int64N(int64(after)/10+1))
	}
	base, ceiling := p.Base, p.Cap
	if base <= 0 {
		base = DefaultRetryBase
	}
	if ceiling <= 0 {
		ceiling = DefaultRetryCap
	}
	step := ceiling
	if n < 40 {
		if s := base << uint(n); s > 0 && s < ceiling {
			step = s
		}
	}
	return time.Duration(rand.Int64N(int64(step) + 1))
}

// PermanentError is an op Customer.io rejected for good. The handler stores
// it in the dead-letter store and completes the task.
type PermanentError struct {
	Status int
	Reason string
	Body   string
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("rejected permanently (status %d): %s", e.Status, e.Reason)
}
