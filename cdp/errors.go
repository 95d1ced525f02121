package cdp

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cioq/cioq/track"
)

// Error classes. They are track's sentinels, re-exported: a Pipelines
// error and a Track API error of the same class match the same sentinel, so
// a sender (the worker's retry policy, breaker and dead letters) classifies
// both with one errors.Is, and track.IsRetryable / track.IsPermanent work on
// either.
var (
	// ErrUnauthorized: 401/403, the Pipelines API key is wrong for the
	// whole workspace.
	ErrUnauthorized = track.ErrUnauthorized
	// ErrRateLimited: 429. Retryable; *APIError.RetryAfter holds the
	// server's Retry-After when it sent one.
	ErrRateLimited = track.ErrRateLimited
	// ErrInvalidRequest: a permanent 4xx (400 in strict mode, 404, 413,
	// ...). Retrying the same request gives the same answer.
	ErrInvalidRequest = track.ErrInvalidRequest
	// ErrServer: a retryable server-side failure (408, 5xx).
	ErrServer = track.ErrServer
	// ErrTransport: no HTTP answer (network error, timeout, reset).
	// Retryable; the outcome is unknown.
	ErrTransport = track.ErrTransport
	// ErrInvalidCall: a call fails validation; see *ValidationError.
	// Nothing was sent. It is track.ErrInvalidOp.
	ErrInvalidCall = track.ErrInvalidOp
)

// maxBodyInError bounds how much of a response body an APIError keeps.
const maxBodyInError = 2048

// APIError is a non-2xx answer from the Pipelines API.
type APIError struct {
	// Method and Path of the request (no host, no credentials).
	Method, Path string
	// StatusCode is the HTTP status.
	StatusCode int
	// Body is the start of the response body (at most 2 KiB).
	Body []byte
	// RetryAfter is the server's Retry-After; zero when absent.
	RetryAfter time.Duration
}

// Error renders "cdp: METHOD PATH: STATUS: message".
func (e *APIError) Error() string {
	msg := ErrorMessage(e.Body)
	if msg == "" {
		msg = strings.TrimSpace(string(e.Body))
	}
	if msg == "" {
		msg = cmp.Or(http.StatusText(e.StatusCode), "no message")
	}
	return fmt.Sprintf("cdp: %s %s: %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// Is maps the status to its class (track.StatusClass): ErrUnauthorized,
// ErrRateLimited, ErrServer or ErrInvalidRequest.
func (e *APIError) Is(target error) bool { return target == track.StatusClass(e.StatusCode) }

// TransportError wraps a failure to get an answer: dial, TLS, timeout,
// reset, or a body that could not be read.
type TransportError struct {
	Method, Path string
	// Timeout reports whether the request hit a deadline.
	Timeout bool
	Err     error
}

// Error renders "cdp: METHOD PATH: cause".
func (e *TransportError) Error() string {
	return fmt.Sprintf("cdp: %s %s: %v", e.Method, e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// Is matches ErrTransport.
func (e *TransportError) Is(target error) bool { return target == ErrTransport }

// IsRetryable reports whether sending the same request again may succeed:
// transport errors, 408, 429 and 5xx (Pipelines or Track API errors alike).
func IsRetryable(err error) bool { return track.IsRetryable(err) }

// IsPermanent reports whether err is a definite rejection: a 4xx other than
// 408/429, or a validation error (Pipelines or Track API errors alike).
func IsPermanent(err error) bool { return track.IsPermanent(err) }

// RetryAfter returns the server's Retry-After carried by err, a Pipelines
// *APIError or a Track API *track.APIError, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return track.RetryAfter(err)
}

// ErrorBody is the error body cioq answers and expects from the Pipelines
// API in strict mode: {"meta":{"errors":["..."]}}, the 400 response of
// Customer.io's Pipelines spec (pipelines.json, components.responses.400).
type ErrorBody struct {
	Meta struct {
		Errors []string `json:"errors,omitempty"`
		Error  string   `json:"error,omitempty"`
	} `json:"meta"`
}

// NewErrorBody returns {"meta":{"errors":[msgs...]}}.
func NewErrorBody(msgs ...string) []byte {
	var eb ErrorBody
	eb.Meta.Errors = msgs
	b, _ := json.Marshal(eb)
	return b
}

// ErrorMessage extracts the message of an error body: meta.errors joined
// with "; ", meta.error, or the Segment-style {"message": "..."}; "" when
// body has none of these shapes.
func ErrorMessage(body []byte) string {
	var eb struct {
		ErrorBody
		Message string `json:"message"`
	}
	if len(body) == 0 || json.Unmarshal(body, &eb) != nil {
		return ""
	}
	switch {
	case len(eb.Meta.Errors) > 0:
		return strings.Join(eb.Meta.Errors, "; ")
	case eb.Meta.Error != "":
		return eb.Meta.Error
	}
	return eb.Message
}
