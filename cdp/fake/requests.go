package fake

import (
	"slices"
	"time"

	"github.com/cioq/cioq/cdp"
)

// Fault names, as Request.Fault reports the injected fault that decided an
// answer.
const (
	FaultLatency         = "latency"          // the client gave up while Latency held the request
	FaultCloseConnection = "close_connection" // the connection was closed without an answer
	FaultDown            = "down"
	FaultUnauthorized    = "unauthorized"
	FaultFailNext        = "fail_next"
	FaultStorm429        = "storm_429"
	FaultRateLimit       = "rate_limit" // a 429 from the bucket while Faults.RateLimit overrides the rate
	FaultErrorRate       = "error_rate"
	FaultRejectAttribute = "reject_attribute" // some call was refused as a poison call
)

// Request is one Pipelines API request as the fake received and answered
// it.
type Request struct {
	// Time is when the request arrived (Options.Now).
	Time time.Time `json:"time"`
	// Method and Path as received (Path escaped, without the query).
	Method string `json:"method"`
	Path   string `json:"path"`
	// Workspace names the workspace of the API key (Options.Keys, else
	// KeyName); "" when the key was missing or wrong.
	Workspace string `json:"workspace,omitempty"`
	// Strict reports whether the request was answered in strict mode.
	Strict bool `json:"strict"`
	// Gzip reports whether the body came gzip-encoded.
	Gzip bool `json:"gzip,omitempty"`
	// Status is the answer's status; 0 when the request got no answer.
	Status int `json:"status"`
	// Fault names the injected fault that decided the answer (Fault*
	// constants); "" when none did.
	Fault string `json:"fault,omitempty"`
	// Calls are the calls accepted, in request order, as decoded (a batch's
	// top-level context and integrations folded in).
	Calls []cdp.Call `json:"calls,omitempty"`
	// Errors are the problems the fake found: in strict mode they are the
	// answer's meta.errors; in permissive mode the API would only log them.
	Errors []string `json:"errors,omitempty"`
}

// requestLog keeps the newest requests in a ring, bounded in requests and in
// calls held. Guarded by Server.mu.
type requestLog struct {
	buf             []Request
	start, n        int
	calls, maxCalls int
	disabled        bool
}

func newRequestLog(size, maxCalls int) *requestLog {
	if size < 0 {
		return &requestLog{disabled: true}
	}
	return &requestLog{buf: make([]Request, size), maxCalls: maxCalls}
}

func (l *requestLog) push(r Request) {
	if l.disabled {
		return
	}
	if l.n == len(l.buf) {
		l.pop()
	}
	l.buf[(l.start+l.n)%len(l.buf)] = r
	l.n++
	l.calls += len(r.Calls)
	for l.calls > l.maxCalls && l.n > 1 {
		l.pop()
	}
}

func (l *requestLog) pop() {
	old := &l.buf[l.start]
	l.calls -= len(old.Calls)
	*old = Request{}
	l.start = (l.start + 1) % len(l.buf)
	l.n--
}

// newest returns copies of the newest limit requests (all when limit <= 0),
// oldest first. The calls' maps are never changed after they are recorded,
// so they are shared.
func (l *requestLog) newest(limit int) []Request {
	n := l.n
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]Request, 0, n)
	for i := l.n - n; i < l.n; i++ {
		r := l.buf[(l.start+i)%len(l.buf)]
		r.Calls = slices.Clone(r.Calls)
		r.Errors = slices.Clone(r.Errors)
		out = append(out, r)
	}
	return out
}
