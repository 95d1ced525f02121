package fake

import (
	"time"

	"github.com/cioq/cioq/track"
)

// Fault names, as Request.Fault reports the injected fault that decided an
// answer.
const (
	FaultLatency         = "latency"          // the client gave up while Latency held the request
	FaultCloseConnection = "close_connection" // the connection was closed without an answer
	FaultDown            = "down"
	FaultUnauthorized    = "unauthorized"
	FaultStorm429        = "storm_429"
	FaultRateLimit       = "rate_limit" // a 429 from the bucket while Faults.RateLimit overrides the rate
	FaultErrorRate       = "error_rate"
	FaultRejectAttribute = "reject_attribute" // some op was refused as a poison op
	FaultFailContaining  = "fail_containing"  // the body held Faults.FailContaining
)

// Request is one Track API call as the fake received and answered it.
type Request struct {
	// Time is when the request arrived (Options.Now).
	Time time.Time `json:"time"`
	// Method and Path as received (Path escaped, without the query).
	Method string `json:"method"`
	Path   string `json:"path"`
	// SiteID is the Basic-auth user name; "" when absent.
	SiteID string `json:"site_id,omitempty"`
	// Status is the answer's status; 0 when the request got no answer.
	Status int `json:"status"`
	// Fault names the injected fault that decided the answer (Fault*
	// constants); "" when none did.
	Fault string `json:"fault,omitempty"`
	// Ops are the ops accepted, in v2 form, in request order; a v1 call is
	// mapped to its v2 op as TRACK_API.md "v1 → v2" says. Empty unless the
	// answer was 2xx.
	Ops []track.Op `json:"ops,omitempty"`
	// Errors are the batch_index errors of a v2 batch answer.
	Errors []track.ItemError `json:"errors,omitempty"`
}

// requestLog keeps the newest requests in a ring, bounded in requests and in
// ops held. Guarded by Server.mu.
type requestLog struct {
	buf         []Request
	start, n    int
	ops, maxOps int
	disabled    bool
}

func newRequestLog(size, maxOps int) *requestLog {
	if size < 0 {
		return &requestLog{disabled: true}
	}
	return &requestLog{buf: make([]Request, size), maxOps: maxOps}
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
	l.ops += len(r.Ops)
	for l.ops > l.maxOps && l.n > 1 {
		l.pop()
	}
}

func (l *requestLog) pop() {
	old := &l.buf[l.start]
	l.ops -= len(old.Ops)
	*old = Request{}
	l.start = (l.start + 1) % len(l.buf)
	l.n--
}

// newest returns copies of the newest limit requests (all when limit <= 0),
// oldest first.
func (l *requestLog) newest(limit int) []Request {
	n := l.n
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]Request, 0, n)
	for i := l.n - n; i < l.n; i++ {
		r := l.buf[(l.start+i)%len(l.buf)]
		r.Ops = cloneOps(r.Ops)
		r.Errors = append([]track.ItemError(nil), r.Errors...)
		out = append(out, r)
	}
	return out
}

// cloneOps copies the op slice; the ops' maps are never modified after they
// are recorded, so they are shared.
func cloneOps(ops []track.Op) []track.Op {
	if ops == nil {
		return nil
	}
	return append([]track.Op(nil), ops...)
}
