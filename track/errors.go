package track

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error classes. Match them with errors.Is; *APIError maps its status to one.
var (
	// ErrUnauthorized: 401/403, the site id / API key pair is wrong for the
	// whole workspace. Permanent for the workspace, not for the op.
	ErrUnauthorized = errors.New("track: unauthorized")
	// ErrRateLimited: 429. Retryable; *APIError.RetryAfter holds the server's
	// Retry-After when it sent one.
	ErrRateLimited = errors.New("track: rate limited")
	// ErrInvalidRequest: a permanent 4xx (400, 404, 413, 422, ...). Retrying the
	// same request gives the same answer.
	ErrInvalidRequest = errors.New("track: invalid request")
	// ErrServer: a retryable server-side failure (408, 5xx, 522, 524).
	ErrServer = errors.New("track: server error")
	// ErrTransport: the request did not get an HTTP answer (network error,
	// timeout, connection reset). Retryable.
	ErrTransport = errors.New("track: transport error")
	// ErrInvalidOp: an op fails validation against the API limits; see
	// *ValidationError. Nothing was sent.
	ErrInvalidOp = errors.New("track: invalid op")
)

// maxBodyInError bounds how much of a response body an APIError keeps.
const maxBodyInError = 2048

// APIError is a non-2xx answer from the Track API.
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

// Error renders "track: METHOD PATH: STATUS: message".
func (e *APIError) Error() string {
	msg := strings.TrimSpace(string(e.Body))
	if m := ErrorMessage(e.Body); m != "" {
		msg = m
	}
	if msg == "" {
		msg = cmp.Or(http.StatusText(e.StatusCode), "no message")
	}
	return fmt.Sprintf("track: %s %s: %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// Is maps the status to its class: ErrUnauthorized, ErrRateLimited,
// ErrServer or ErrInvalidRequest.
func (e *APIError) Is(target error) bool {
	return target == StatusClass(e.StatusCode)
}

// StatusClass returns the class sentinel for a non-2xx status code.
func StatusClass(status int) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrUnauthorized
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status == http.StatusRequestTimeout || status >= 500:
		return ErrServer
	default:
		return ErrInvalidRequest
	}
}

// TransportError wraps a failure to get an answer: dial, TLS, timeout, reset.
type TransportError struct {
	Method, Path string
	// Timeout reports whether the request hit a deadline.
	Timeout bool
	Err     error
}

// Error renders "track: METHOD PATH: cause".
func (e *TransportError) Error() string {
	return fmt.Sprintf("track: %s %s: %v", e.Method, e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// Is matches ErrTransport.
func (e *TransportError) Is(target error) bool { return target == ErrTransport }

// ItemError is one failed op of a v2 batch.
type ItemError struct {
	// Index is the op's batch_index (0-based position in the request).
	Index   int    `json:"batch_index"`
	Reason  string `json:"reason,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message,omitempty"`
}

// String renders "batch_index N: reason: field: message".
func (i ItemError) String() string {
	parts := make([]string, 0, 3)
	for _, s := range []string{i.Reason, i.Field, i.Message} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return fmt.Sprintf("batch_index %d: %s", i.Index, strings.Join(parts, ": "))
}

// BatchError reports a v2 batch answered with per-op errors. The ops at the
// listed indexes failed; every other op of the request was accepted.
type BatchError struct {
	// StatusCode is the HTTP status the errors came with (2xx, 207 or 400).
	StatusCode int
	Items      []ItemError
}

// Error lists the first three failed ops and how many more there are.
func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "track: batch: %d op(s) rejected (status %d)", len(e.Items), e.StatusCode)
	for i, it := range e.Items {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Items)-3)
			break
		}
		b.WriteString("; ")
		b.WriteString(it.String())
	}
	return b.String()
}

// Failed returns the failed ops by index.
func (e *BatchError) Failed() map[int]ItemError {
	m := make(map[int]ItemError, len(e.Items))
	for _, it := range e.Items {
		m[it.Index] = it
	}
	return m
}

// IsRetryable reports whether sending the same request again may succeed:
// transport errors, 408, 429 and 5xx.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrServer) || errors.Is(err, ErrRateLimited) || errors.Is(err, ErrTransport)
}

// IsPermanent reports whether err is a definite rejection of the request
// (a 4xx other than 408/429, or a validation error).
func IsPermanent(err error) bool {
	return errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrInvalidOp) || errors.Is(err, ErrUnauthorized)
}

// RetryAfter returns the server's Retry-After carried by err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}
