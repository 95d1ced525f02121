package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
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
	// ReasonOrder: an older op of the same person must take effect first
	// (docs/architecture.md, "Order per person").
	ReasonOrder = "order"
	// ReasonDeadLetterStore: the op's retries ran out but cioq's dead-letter
	// store could not take it; it waits and tries again.
	ReasonDeadLetterStore = "dead_letter_store"
	// ReasonNoPipelines: a Pipelines API call for a workspace this worker
	// has no Pipelines sender for (no Pipelines API key configured).
	ReasonNoPipelines = "no_pipelines"
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

// PermanentError is an op Customer.io rejected for good, or one whose
// retries ran out. It is stored in the dead-letter store and its task
// completes.
type PermanentError struct {
	Status int
	Reason string
	Body   string
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("rejected permanently (status %d): %s", e.Status, e.Reason)
}

// ErrEndpoint matches the error of a request the endpoint refused as a
// whole with a 4xx that no op can cause (404, 405, 413 for a body within the
// API's limit, ...): a proxy or a wrong base URL, not a bad op. It is a
// counted failure that also counts for the breaker; nothing is
// dead-lettered for it until the op's retries run out.
var ErrEndpoint = errors.New("worker: endpoint refused the request")

// endpointError marks an *track.APIError as an endpoint fault.
type endpointError struct{ err error }

func (e *endpointError) Error() string        { return e.err.Error() }
func (e *endpointError) Unwrap() error        { return e.err }
func (e *endpointError) Is(target error) bool { return target == ErrEndpoint }

// verdict is what one request's answer means for the ops it carried.
type verdict uint8

const (
	// verdictAccepted: every op accepted.
	verdictAccepted verdict = iota
	// verdictPartial: some ops rejected (outcome.batch), the others accepted.
	verdictPartial
	// verdictOpen: the circuit is open; the ops wait, no failure counted.
	verdictOpen
	// verdictNoToken: no rate token in time; the ops wait.
	verdictNoToken
	// verdictThrottled: 429; the shared cool-down, the ops wait.
	verdictThrottled
	// verdictUnauthorized: 401/403; the workspace pauses, the ops wait.
	verdictUnauthorized
	// verdictInvalid: the request was refused as a whole for its content
	// (400/422 without per-op errors, or an op that fails validation): one
	// op is bad; bisect to find it.
	verdictInvalid
	// verdictRetry: 5xx, 408, timeout, network, endpoint fault: a counted
	// failure, retried with backoff.
	verdictRetry
)

// outcome is classify's answer.
type outcome struct {
	verdict verdict
	// after is how long waiting ops wait (verdictOpen, verdictNoToken; a
	// 429's Retry-After for verdictThrottled).
	after time.Duration
	// batch lists the rejected ops (verdictPartial).
	batch *track.BatchError
	err   error
}

// answerOf returns the status and body of a non-2xx answer of either API
// (*track.APIError, *cdp.APIError); ok is false for any other error.
func answerOf(err error) (status int, body []byte, ok bool) {
	var ae *track.APIError
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Body, true
	}
	var ce *cdp.APIError
	if errors.As(err, &ce) {
		return ce.StatusCode, ce.Body, true
	}
	return 0, nil, false
}

// classify maps a request's error to what it means for its ops, for the
// Track and Pipelines APIs alike (cdp's error classes are track's). It does
// no I/O.
func classify(err error) outcome {
	var (
		be *track.BatchError
		oe *breaker.OpenError
		de *ratelimit.DelayError
	)
	status, _, isAnswer := answerOf(err)
	o := outcome{err: err}
	switch {
	case err == nil:
		o.verdict = verdictAccepted
	case errors.As(err, &be):
		o.verdict, o.batch = verdictPartial, be
	case errors.As(err, &oe):
		o.verdict, o.after = verdictOpen, max(oe.RetryAfter, 100*time.Millisecond)
	case errors.As(err, &de):
		o.verdict, o.after = verdictNoToken, max(de.RetryAfter, 50*time.Millisecond)
	case errors.Is(err, track.ErrRateLimited):
		o.verdict = verdictThrottled
		o.after, _ = track.RetryAfter(err)
	case errors.Is(err, track.ErrUnauthorized):
		o.verdict = verdictUnauthorized
	case errors.Is(err, ErrEndpoint):
		o.verdict = verdictRetry
	case isAnswer && endpointStatus(status):
		o.verdict, o.err = verdictRetry, &endpointError{err}
	case errors.Is(err, track.ErrInvalidRequest) || errors.Is(err, track.ErrInvalidOp):
		o.verdict = verdictInvalid
	default:
		o.verdict = verdictRetry
	}
	return o
}

// endpointStatus reports whether a 4xx answer to a whole request says the
// endpoint, not an op, is wrong: only 400 and 422 are answers about the
// content (the batch the worker sends is always within the API's size).
func endpointStatus(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusBadRequest &&
		status != http.StatusUnprocessableEntity && status != http.StatusUnauthorized &&
		status != http.StatusForbidden && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout
}

// countsForBreaker: only 5xx, 408, timeouts, network errors and endpoint
// faults count as breaker failures; a bad op, 401/403 and 429 do not.
func countsForBreaker(err error) bool {
	if errors.Is(err, track.ErrServer) || errors.Is(err, track.ErrTransport) || errors.Is(err, ErrEndpoint) {
		return true
	}
	status, _, ok := answerOf(err)
	return ok && endpointStatus(status)
}
