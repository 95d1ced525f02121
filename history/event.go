package history

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says what happened to an op.
type Kind byte

// Kinds of events.
const (
	// KindEnqueued: the op was queued (Queue, Action; Ref is the person).
	KindEnqueued Kind = 'e'
	// KindAttempt: a batch request carried the op and it was not accepted
	// (Batch, Status, Latency, Reason; Next when the retry time is known).
	KindAttempt Kind = 'a'
	// KindDelivered: a batch request carried the op and Customer.io accepted
	// it (Batch, Status, Latency; Ref is the request id when the API gave
	// one). It is an attempt too.
	KindDelivered Kind = 'd'
	// KindDeferred: the op went back to the queue without a failure and was
	// not sent (Reason: claimed, breaker_open, rate_limited, unauthorized,
	// ...; Next).
	KindDeferred Kind = 'w'
	// KindDropped: the op was not sent and never will be (Reason
	// DropDuplicate, or DropTombstone with Ref the delete/suppress op id).
	KindDropped Kind = 'x'
	// KindDeadLettered: the op left the queue undelivered, into cioq's
	// dead-letter store: Customer.io rejected it for good, or its retries
	// ran out (Status, Reason).
	KindDeadLettered Kind = 'l'
	// KindArchived: the op's retries ran out and asynq archived its task
	// (Reason: the last error).
	KindArchived Kind = 'r'
)

// Reasons of KindDropped events.
const (
	// DropDuplicate: a done-marker exists, the op was delivered before.
	DropDuplicate = "duplicate"
	// DropTombstone: a newer delete or suppress of the person exists; Ref
	// names it.
	DropTombstone = "tombstone"
	// DropSuppressed: the op was queued while its person was suppressed
	// (Customer.io ignores such calls); Ref names the suppress.
	DropSuppressed = "suppressed"
)

// MaxReasonBytes bounds the Reason of a stored event; longer ones are cut.
const MaxReasonBytes = 200

var kindNames = map[Kind]string{
	KindEnqueued: "enqueued", KindAttempt: "attempt", KindDelivered: "delivered", KindDeferred: "deferred",
	KindDropped: "dropped", KindDeadLettered: "dead_lettered", KindArchived: "archived",
}

// String returns the kind's name ("enqueued", "attempt", "delivered",
// "deferred", "dropped", "dead_lettered", "archived").
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// IsAttempt reports whether the event is a batch request that carried the
// op (KindAttempt or KindDelivered).
func (k Kind) IsAttempt() bool { return k == KindAttempt || k == KindDelivered }

// Event is one thing that happened to an op. Fields a kind does not use are
// zero.
type Event struct {
	// Kind says what happened.
	Kind Kind
	// At is when (millisecond precision once stored).
	At time.Time
	// Status is the HTTP status of the request (0: no answer, e.g. a network
	// error or a timeout).
	Status int
	// Latency is how long the HTTP request took (microsecond precision).
	Latency time.Duration
	// Next is when the op runs again (deferrals; attempts when known).
	Next time.Time
	// Batch identifies the batch request (unique per worker process).
	Batch string
	// Queue is the asynq queue (KindEnqueued).
	Queue string
	// Action is the op's action (KindEnqueued).
	Action string
	// Ref names another thing: the person for KindEnqueued, the tombstone's
	// op id for a tombstone drop, the request id for a delivery.
	Ref string
	// Reason says why: the error of an attempt, the deferral reason, the drop
	// reason, the dead-letter or archive reason.
	Reason string
}

// MarshalJSON encodes the event with its kind's name and without zero
// fields; times are RFC 3339 UTC, latency in milliseconds.
func (e Event) MarshalJSON() ([]byte, error) {
	type out struct {
		Kind      string     `json:"kind"`
		At        time.Time  `json:"at"`
		Status    int        `json:"status,omitempty"`
		LatencyMs float64    `json:"latency_ms,omitempty"`
		Next      *time.Time `json:"next,omitempty"`
		Batch     string     `json:"batch,omitempty"`
		Queue     string     `json:"queue,omitempty"`
		Action    string     `json:"action,omitempty"`
		Ref       string     `json:"ref,omitempty"`
		Reason    string     `json:"reason,omitempty"`
	}
	o := out{Kind: e.Kind.String(), At: e.At.UTC(), Status: e.Status, LatencyMs: float64(e.Latency.Microseconds()) / 1000,
		Batch: e.Batch, Queue: e.Queue, Action: e.Action, Ref: e.Ref, Reason: e.Reason}
	if !e.Next.IsZero() {
		n := e.Next.UTC()
		o.Next = &n
	}
	return json.Marshal(o)
}

// encode returns the stored form of e: tab-separated kind, unix ms, status,
// latency µs, next ms, batch, queue, action, ref, reason, without trailing
// empty fields.
func (e *Event) encode() string {
	b := make([]byte, 0, 48+len(e.Batch)+len(e.Queue)+len(e.Action)+len(e.Ref)+min(len(e.Reason), MaxReasonBytes+3))
	b = append(b, byte(e.Kind), '\t')
	b = strconv.AppendInt(b, e.At.UnixMilli(), 10)
	// Fields after At; tabs are written only before a non-empty field.
	tabs := 0
	field := func(s string) {
		if s == "" {
			tabs++
			return
		}
		for ; tabs >= 0; tabs-- {
			b = append(b, '\t')
		}
		tabs = 0
		b = append(b, s...)
	}
	num := func(n int64, ok bool) {
		if !ok {
			tabs++
			return
		}
		for ; tabs >= 0; tabs-- {
			b = append(b, '\t')
		}
		tabs = 0
		b = strconv.AppendInt(b, n, 10)
	}
	num(int64(e.Status), e.Status != 0)
	num(e.Latency.Microseconds(), e.Latency != 0)
	num(e.Next.UnixMilli(), !e.Next.IsZero())
	field(clean(e.Batch, 0))
	field(clean(e.Queue, 0))
	field(clean(e.Action, 0))
	field(clean(e.Ref, 0))
	field(clean(e.Reason, MaxReasonBytes))
	return string(b)
}

// clean replaces tabs and line breaks with spaces and cuts s to limit bytes
// (0: no limit) on a rune boundary.
func clean(s string, limit int) string {
	if limit > 0 && len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if strings.ContainsAny(s, "\t\r\n") {
		s = strings.NewReplacer("\t", " ", "\r", " ", "\n", " ").Replace(s)
	}
	return s
}

// decodeEvent parses the stored form written by encode.
func decodeEvent(s string) (Event, error) {
	f := strings.Split(s, "\t")
	if len(f) < 2 || len(f[0]) != 1 {
		return Event{}, fmt.Errorf("history: malformed event %q", s)
	}
	f = append(f, make([]string, 10-min(len(f), 10))...)
	e := Event{Kind: Kind(f[0][0]), Batch: f[5], Queue: f[6], Action: f[7], Ref: f[8], Reason: f[9]}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Event{}, fmt.Errorf("history: malformed event time %q", f[1])
	}
	e.At = time.UnixMilli(ms).UTC()
	if f[2] != "" {
		if e.Status, err = strconv.Atoi(f[2]); err != nil {
			return Event{}, fmt.Errorf("history: malformed event status %q", f[2])
		}
	}
	if f[3] != "" {
		us, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return Event{}, fmt.Errorf("history: malformed event latency %q", f[3])
		}
		e.Latency = time.Duration(us) * time.Microsecond
	}
	if f[4] != "" {
		ms, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			return Event{}, fmt.Errorf("history: malformed event next %q", f[4])
		}
		e.Next = time.UnixMilli(ms).UTC()
	}
	return e, nil
}
