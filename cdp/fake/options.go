package fake

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"
)

// Defaults of Options and Faults.
const (
	// DefaultDownStatus is the status of every answer while Faults.Down is
	// set and Faults.DownStatus is zero.
	DefaultDownStatus = http.StatusServiceUnavailable
	// DefaultFailStatus is the status Faults.FailNext answers with when
	// Faults.FailStatus is zero.
	DefaultFailStatus = http.StatusServiceUnavailable
	// DefaultRequestLog is how many requests Requests keeps when
	// Options.RequestLog is zero.
	DefaultRequestLog = 10_000
	// DefaultRequestLogCalls is how many calls, over all kept requests,
	// Requests keeps when Options.RequestLogCalls is zero.
	DefaultRequestLogCalls = 100_000
	// DefaultMaxUsers is how many people the ledger keeps a final state for
	// when Options.MaxUsers is zero.
	DefaultMaxUsers = 100_000
)

// DefaultErrorStatuses are the statuses Faults.ErrorRate picks from when
// Faults.ErrorStatuses is empty.
func DefaultErrorStatuses() []int {
	return []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
}

// StrictMode says when the fake answers as in strict mode.
type StrictMode int

// The strict modes.
const (
	// StrictByHeader, the default, is the real API: strict when the
	// request carries X-Strict-Mode: 1, permissive otherwise.
	StrictByHeader StrictMode = iota
	// StrictAlways answers every request as in strict mode.
	StrictAlways
	// StrictNever answers every request as in permissive mode.
	StrictNever
)

// Options configures a fake Pipelines API. The zero Options is a healthy,
// unlimited Pipelines API that accepts any API key.
type Options struct {
	// Keys maps each API key the fake accepts to the name of its workspace,
	// under which the ledger counts its requests. Nil means any non-empty
	// key is accepted, its workspace named by KeyName. A non-nil empty map
	// accepts nobody.
	Keys map[string]string
	// Strict says when answers follow strict mode. Zero means
	// StrictByHeader, as the real API.
	Strict StrictMode
	// RateLimit is the requests per second each workspace may make,
	// enforced with a token bucket before a request is processed; an empty
	// bucket answers 429. Zero means no limit.
	RateLimit float64
	// Burst is the size of each workspace's token bucket. Zero means
	// max(1, ceil(RateLimit)).
	Burst int
	// RetryAfter makes 429 answers carry a Retry-After header (whole seconds
	// until the bucket holds a token again). False, the default, answers a
	// bare 429.
	RetryAfter bool
	// Faults are the faults active from the start; see SetFaults.
	Faults Faults
	// Logger receives one debug record per request and warnings. Nil means
	// logs are discarded.
	Logger *slog.Logger
	// Now is the clock of the ledger windows, the token buckets and the
	// time of calls without a timestamp. Nil means time.Now.
	Now func() time.Time
	// Seed seeds the random draws of ErrorRate and CloseConnection. Zero
	// means a random seed.
	Seed uint64
	// RequestLog bounds how many requests Requests keeps (the newest). Zero
	// means DefaultRequestLog; negative means none are kept.
	RequestLog int
	// RequestLogCalls bounds how many calls, summed over the kept requests,
	// Requests keeps. Zero means DefaultRequestLogCalls.
	RequestLogCalls int
	// MaxUsers bounds how many people the ledger keeps a final state for;
	// calls about more people still count, their state is not kept. Zero
	// means DefaultMaxUsers; negative means none.
	MaxUsers int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.RequestLog = cmp.Or(o.RequestLog, DefaultRequestLog)
	o.RequestLogCalls = cmp.Or(o.RequestLogCalls, DefaultRequestLogCalls)
	o.MaxUsers = cmp.Or(o.MaxUsers, DefaultMaxUsers)
	o.Faults = o.Faults.clone()
	o.Keys = maps.Clone(o.Keys) // nil stays nil
	return o
}

func (o Options) validate() error {
	switch {
	case o.RateLimit < 0 || math.IsNaN(o.RateLimit):
		return fmt.Errorf("fake: rate limit %v is negative", o.RateLimit)
	case o.Burst < 0:
		return fmt.Errorf("fake: burst %d is negative", o.Burst)
	case o.Strict < StrictByHeader || o.Strict > StrictNever:
		return fmt.Errorf("fake: unknown strict mode %d", o.Strict)
	}
	for key, ws := range o.Keys {
		if key == "" || ws == "" {
			return errors.New("fake: keys: an API key and its workspace name must not be empty")
		}
	}
	return o.Faults.validate()
}

// burst returns the bucket size for rate.
func (o Options) burst(rate float64) float64 {
	if o.Burst > 0 {
		return float64(o.Burst)
	}
	return math.Max(1, math.Ceil(rate))
}

// Faults are failures the fake injects, changed at run time with
// (*Server).SetFaults or PUT /_fake/cdp/faults. The zero Faults injects
// nothing. The checks run in this order, the first that applies answers:
// Latency, CloseConnection, Down, Unauthorized, routing (404/405), the API
// key (401, or a 200 that drops the request in permissive mode), FailNext,
// Storm429, the rate limit (429), ErrorRate, then the body (size, JSON,
// validation) and RejectAttribute. The control API is never faulted.
type Faults struct {
	// Down makes every request fail with DownStatus.
	Down bool `json:"down,omitempty"`
	// DownStatus is the status of every answer while Down. Zero means
	// DefaultDownStatus (503).
	DownStatus int `json:"down_status,omitempty"`
	// FailNext answers the next FailNext authenticated requests with
	// FailStatus (a "fail the first N" fault). Faults reports how many are
	// left.
	FailNext int `json:"fail_next,omitempty"`
	// FailStatus is the status of FailNext answers. Zero means
	// DefaultFailStatus (503).
	FailStatus int `json:"fail_status,omitempty"`
	// ErrorRate is the fraction (0..1) of requests answered with one of
	// ErrorStatuses instead of being processed.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// ErrorStatuses are the statuses ErrorRate picks from. Empty means
	// DefaultErrorStatuses (500, 502, 503, 504).
	ErrorStatuses []int `json:"error_statuses,omitempty"`
	// Latency is added before a request is handled. A request whose client
	// gives up first gets no answer and is not processed.
	Latency time.Duration `json:"-"`
	// Storm429 answers 429 to every authenticated request.
	Storm429 bool `json:"storm_429,omitempty"`
	// RateLimit, when non-nil, replaces Options.RateLimit (requests/s per
	// workspace) while set; zero means no limit.
	RateLimit *float64 `json:"rate_limit,omitempty"`
	// CloseConnection is the fraction (0..1) of requests whose connection is
	// closed without an answer, before the body is read.
	CloseConnection float64 `json:"close_connection,omitempty"`
	// RejectAttribute, when set, refuses every call whose traits or
	// properties hold this key (a poison call), as an invalid call: a 400
	// in strict mode, dropped in permissive mode.
	RejectAttribute string `json:"reject_attribute,omitempty"`
	// AcceptValidOnReject makes a strict-mode batch that holds invalid
	// calls still accept its valid calls while it answers 400. The
	// Pipelines API does not document which it does; the default (false)
	// accepts none. Senders must be right under both.
	AcceptValidOnReject bool `json:"accept_valid_on_reject,omitempty"`
	// Unauthorized answers every request as a wrong API key would.
	Unauthorized bool `json:"unauthorized,omitempty"`
}

// MarshalJSON encodes Latency as a Go duration string ("250ms").
func (f Faults) MarshalJSON() ([]byte, error) {
	type plain Faults
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
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("fake: faults: trailing data")
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
		return errors.New("fake: faults: latency must be a duration string or nanoseconds")
	}
	f.Latency = time.Duration(ns)
	return nil
}

func (f Faults) validate() error {
	status := func(s int) bool { return s >= 100 && s <= 999 }
	switch {
	case f.ErrorRate < 0 || f.ErrorRate > 1 || math.IsNaN(f.ErrorRate):
		return fmt.Errorf("fake: faults: error_rate %v is not in [0,1]", f.ErrorRate)
	case f.CloseConnection < 0 || f.CloseConnection > 1 || math.IsNaN(f.CloseConnection):
		return fmt.Errorf("fake: faults: close_connection %v is not in [0,1]", f.CloseConnection)
	case f.Latency < 0:
		return fmt.Errorf("fake: faults: latency %v is negative", f.Latency)
	case f.FailNext < 0:
		return fmt.Errorf("fake: faults: fail_next %d is negative", f.FailNext)
	case f.RateLimit != nil && (*f.RateLimit < 0 || math.IsNaN(*f.RateLimit) || math.IsInf(*f.RateLimit, 0)):
		return fmt.Errorf("fake: faults: rate_limit %v is not a finite rate >= 0", *f.RateLimit)
	case f.DownStatus != 0 && !status(f.DownStatus):
		return fmt.Errorf("fake: faults: down_status %d is not an HTTP status", f.DownStatus)
	case f.FailStatus != 0 && !status(f.FailStatus):
		return fmt.Errorf("fake: faults: fail_status %d is not an HTTP status", f.FailStatus)
	}
	for _, s := range f.ErrorStatuses {
		if !status(s) {
			return fmt.Errorf("fake: faults: error status %d is not an HTTP status", s)
		}
	}
	return nil
}

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
