package fake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"
)

// Defaults of Options and Faults.
const (
	// DefaultDownStatus is the status of every answer while Faults.Down is set
	// and Faults.DownStatus is zero.
	DefaultDownStatus = http.StatusServiceUnavailable
	// DefaultRequestLog is how many requests Requests keeps when
	// Options.RequestLog is zero.
	DefaultRequestLog = 10_000
	// DefaultRequestLogOps is how many ops, over all kept requests, Requests
	// keeps when Options.RequestLogOps is zero. Older requests are dropped
	// first, so a load test of millions of ops stays small.
	DefaultRequestLogOps = 100_000
)

// DefaultErrorStatuses are the statuses Faults.ErrorRate picks from, at
// random, when Faults.ErrorStatuses is empty.
func DefaultErrorStatuses() []int {
	return []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
}

// Options configures a fake Track API. The zero Options is a healthy,
// unlimited Track API that accepts any Basic-auth credentials.
type Options struct {
	// Credentials maps a site id to the API key the fake accepts for it. Nil
	// means any site id and key are accepted; Basic auth must still be
	// present. A non-nil empty map accepts nobody.
	Credentials map[string]string
	// RateLimit is the requests per second each workspace (site id) may make,
	// enforced with a token bucket before a request is processed; an empty
	// bucket answers 429. Zero means no limit.
	RateLimit float64
	// Burst is the size of each workspace's token bucket. Zero means
	// max(1, ceil(RateLimit)).
	Burst int
	// RetryAfter makes 429 answers carry a Retry-After header (whole seconds
	// until the bucket holds a token again). False, the default, answers a
	// bare 429 with no Retry-After, as the real API does.
	RetryAfter bool
	// Faults are the faults active from the start; see SetFaults. Zero means
	// none.
	Faults Faults
	// Logger receives one debug record per request and warnings. Nil means
	// logs are discarded.
	Logger *slog.Logger
	// Now is the clock of the ledger windows and the token buckets. Nil means
	// time.Now.
	Now func() time.Time
	// Seed seeds the random draws of ErrorRate and CloseConnection, so a run
	// can be replayed. Zero means a random seed.
	Seed uint64
	// RequestLog bounds how many requests Requests keeps (the newest). Zero
	// means DefaultRequestLog; negative means none are kept.
	RequestLog int
	// RequestLogOps bounds how many ops, summed over the kept requests,
	// Requests keeps; the oldest requests are dropped first. Zero means
	// DefaultRequestLogOps.
	RequestLogOps int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.RequestLog = cmp.Or(o.RequestLog, DefaultRequestLog)
	o.RequestLogOps = cmp.Or(o.RequestLogOps, DefaultRequestLogOps)
	o.Faults = o.Faults.clone()
	o.Credentials = maps.Clone(o.Credentials) // nil stays nil
	return o
}

// burst returns the bucket size for rate: Burst when set, else
// max(1, ceil(rate)).
func (o Options) burst(rate float64) float64 {
	if o.Burst > 0 {
		return float64(o.Burst)
	}
	return math.Max(1, math.Ceil(rate))
}

// Faults are failures the fake injects, changed at run time with
// (*Server).SetFaults or PUT /_fake/faults. The zero Faults injects nothing.
// The checks run in this order, the first that applies answers: Latency,
// CloseConnection, Down, Unauthorized, routing (404/405), Basic auth (401),
// Storm429, the rate limit (429), ErrorRate, then request validation and
// RejectAttribute. The control API (/_fake/) is never faulted.
type Faults struct {
	// Down makes every request fail with DownStatus.
	Down bool `json:"down,omitempty"`
	// DownStatus is the status of every answer while Down. Zero means
	// DefaultDownStatus (503).
	DownStatus int `json:"down_status,omitempty"`
	// ErrorRate is the fraction (0..1) of requests answered with one of
	// ErrorStatuses instead of being processed.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// ErrorStatuses are the statuses ErrorRate picks from at random. Empty
	// means DefaultErrorStatuses (500, 502, 503, 504).
	ErrorStatuses []int `json:"error_statuses,omitempty"`
	// Latency is added before a request is handled. A request whose context
	// ends first (the client gave up) gets no answer and is not processed.
	Latency time.Duration `json:"-"`
	// Storm429 answers 429 to every authenticated request.
	Storm429 bool `json:"storm_429,omitempty"`
	// RateLimit, when non-nil, replaces Options.RateLimit (requests/s per
	// workspace) while set, e.g. a quarter of the budget; zero means no
	// limit. The bucket size follows Options.Burst, else max(1, ceil(rate)).
	RateLimit *float64 `json:"rate_limit,omitempty"`
	// CloseConnection is the fraction (0..1) of requests whose connection is
	// closed without an answer, before the body is read.
	CloseConnection float64 `json:"close_connection,omitempty"`
	// RejectAttribute, when set, rejects permanently every op whose
	// attributes hold this key (a poison op): in a v2 batch as a batch_index
	// error, elsewhere as a 400.
	RejectAttribute string `json:"reject_attribute,omitempty"`
	// Unauthorized answers 401 to every request.
	Unauthorized bool `json:"unauthorized,omitempty"`
	// FailContaining, when set, answers FailStatus to requests whose body
	// contains this text (e.g. `"action":"delete"` or `"plan":"first"`):
	// the first FailTimes of them, or every one when FailTimes is zero. It
	// aims a retryable failure at chosen ops while the others go through.
	FailContaining string `json:"fail_containing,omitempty"`
	// FailStatus is the status of those answers. Zero means 503.
	FailStatus int `json:"fail_status,omitempty"`
	// FailTimes bounds how many requests FailContaining fails (counted from
	// the SetFaults that set it).
	FailTimes int `json:"fail_times,omitempty"`
}

// MarshalJSON encodes Latency as a Go duration string ("250ms").
func (f Faults) MarshalJSON() ([]byte, error) {
	type plain Faults // no methods: no recursion
	w := struct {
		plain
		Latency string `json:"latency,omitempty"`
	}{plain: plain(f)}
	if f.Latency != 0 {
		w.Latency = f.Latency.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes Faults; latency is a Go duration string ("250ms")
// or a number of nanoseconds. Unknown fields are an error.
func (f *Faults) UnmarshalJSON(b []byte) error {
	type plain Faults
	var w struct {
		plain
		Latency json.RawMessage `json:"latency,omitempty"`
	}
	if err := strictUnmarshal(b, &w); err != nil {
		return err
	}
	*f = Faults(w.plain)
	if len(w.Latency) == 0 || string(w.Latency) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(w.Latency, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("fake: faults: latency: %w", err)
		}
		f.Latency = d
		return nil
	}
	var ns int64
	if err := json.Unmarshal(w.Latency, &ns); err != nil {
		return fmt.Errorf("fake: faults: latency must be a duration string or nanoseconds")
	}
	f.Latency = time.Duration(ns)
	return nil
}

// validate reports a fault setting the fake cannot honour.
func (f Faults) validate() error {
	switch {
	case f.ErrorRate < 0 || f.ErrorRate > 1 || math.IsNaN(f.ErrorRate):
		return fmt.Errorf("fake: faults: error_rate %v is not in [0,1]", f.ErrorRate)
	case f.CloseConnection < 0 || f.CloseConnection > 1 || math.IsNaN(f.CloseConnection):
		return fmt.Errorf("fake: faults: close_connection %v is not in [0,1]", f.CloseConnection)
	case f.Latency < 0:
		return fmt.Errorf("fake: faults: latency %v is negative", f.Latency)
	case f.RateLimit != nil && (*f.RateLimit < 0 || math.IsNaN(*f.RateLimit) || math.IsInf(*f.RateLimit, 0)):
		return fmt.Errorf("fake: faults: rate_limit %v is not a finite rate >= 0", *f.RateLimit)
	case f.DownStatus != 0 && (f.DownStatus < 100 || f.DownStatus > 999):
		return fmt.Errorf("fake: faults: down_status %d is not an HTTP status", f.DownStatus)
	case f.FailStatus != 0 && (f.FailStatus < 100 || f.FailStatus > 999):
		return fmt.Errorf("fake: faults: fail_status %d is not an HTTP status", f.FailStatus)
	case f.FailTimes < 0:
		return fmt.Errorf("fake: faults: fail_times %d is negative", f.FailTimes)
	}
	for _, s := range f.ErrorStatuses {
		if s < 100 || s > 999 {
			return fmt.Errorf("fake: faults: error status %d is not an HTTP status", s)
		}
	}
	return nil
}

// clone returns a deep copy of f.
func (f Faults) clone() Faults {
	f.ErrorStatuses = slices.Clone(f.ErrorStatuses)
	if f.RateLimit != nil {
		r := *f.RateLimit
		f.RateLimit = &r
	}
	return f
}

// Rate returns a pointer to r, for Faults.RateLimit.
func Rate(r float64) *float64 { return &r }
