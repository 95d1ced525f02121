package history

import (
	"encoding/json"
	"sort"
	"time"
)

// State is where an op is, derived from its events.
type State string

// States of an op.
const (
	// StateQueued: enqueued, no delivery attempt yet.
	StateQueued State = "queued"
	// StateRetrying: the last attempt failed (5xx, timeout, network, 429,
	// 401/403); the op waits in the queue for its next try.
	StateRetrying State = "retrying"
	// StateDeferred: sent back to the queue without an attempt (claimed by
	// another copy, breaker open, no rate token, workspace paused).
	StateDeferred State = "deferred"
	// StateDelivered: Customer.io accepted the op.
	StateDelivered State = "delivered"
	// StateDuplicate: skipped because a done-marker says it was delivered
	// before (its delivery is older than this history, or another copy
	// delivered it).
	StateDuplicate State = "duplicate"
	// StateDropped: dropped by a newer delete or suppress of its person.
	StateDropped State = "dropped"
	// StateDeadLettered: rejected for good, or out of retries; in cioq's
	// dead-letter store.
	StateDeadLettered State = "dead_lettered"
	// StateArchived: retries ran out; asynq archived the task.
	StateArchived State = "archived"
)

// Op is the history of one op.
type Op struct {
	// Workspace and OpID name the op.
	Workspace string `json:"workspace"`
	OpID      string `json:"op_id"`
	// Action, Queue and Person come from the KindEnqueued event ("" when it
	// was not recorded).
	Action string `json:"action,omitempty"`
	Queue  string `json:"queue,omitempty"`
	Person string `json:"person,omitempty"`
	// EnqueuedAt is the time of the KindEnqueued event (zero when absent).
	EnqueuedAt time.Time `json:"enqueued_at"`
	// State is where the op is now, as far as its events tell.
	State State `json:"state"`
	// Events are the op's events, oldest first.
	Events []Event `json:"events"`
}

// build decodes raw events into an Op.
func build(workspace, opID, person string, raw []string) (*Op, error) {
	op := &Op{Workspace: workspace, OpID: opID, Person: person, Events: make([]Event, 0, len(raw))}
	for _, r := range raw {
		e, err := decodeEvent(r)
		if err != nil {
			return nil, err
		}
		op.Events = append(op.Events, e)
	}
	// Writers of one op's history are ordered by the queue, but two batch
	// writes can land out of order by a few milliseconds.
	sort.SliceStable(op.Events, func(i, j int) bool { return op.Events[i].At.Before(op.Events[j].At) })
	op.State = StateQueued
	for _, e := range op.Events {
		switch e.Kind {
		case KindEnqueued:
			op.Action, op.Queue, op.EnqueuedAt = e.Action, e.Queue, e.At
			if e.Ref != "" {
				op.Person = e.Ref
			}
		case KindAttempt:
			if op.State != StateDelivered {
				op.State = StateRetrying
			}
		case KindDeferred:
			if op.State != StateDelivered {
				op.State = StateDeferred
			}
		case KindDelivered:
			op.State = StateDelivered
		case KindDropped:
			switch {
			case e.Reason == DropTombstone || e.Reason == DropSuppressed:
				op.State = StateDropped
			case op.State != StateDelivered:
				op.State = StateDuplicate
			}
		case KindDeadLettered:
			op.State = StateDeadLettered
		case KindArchived:
			op.State = StateArchived
		}
	}
	return op, nil
}

// Attempts returns the events that are batch requests carrying the op
// (KindAttempt and KindDelivered), oldest first.
func (o *Op) Attempts() []Event {
	var out []Event
	for _, e := range o.Events {
		if e.Kind.IsAttempt() {
			out = append(out, e)
		}
	}
	return out
}

// DeliveredAt returns when Customer.io accepted the op (its first
// KindDelivered event), or the zero time.
func (o *Op) DeliveredAt() time.Time {
	for _, e := range o.Events {
		if e.Kind == KindDelivered {
			return e.At
		}
	}
	return time.Time{}
}

// Summary is the machine-readable outcome of one op, the `cioq ops find
// --json` contract: op_id, action, state, attempts (at, status, error) and
// delivered_at (null until delivered).
type Summary struct {
	OpID        string           `json:"op_id"`
	Action      string           `json:"action"`
	State       State            `json:"state"`
	Attempts    []SummaryAttempt `json:"attempts"`
	DeliveredAt *time.Time       `json:"delivered_at"`
}

// SummaryAttempt is one delivery attempt in a Summary: when, the HTTP
// status (0: no answer) and the error ("" when accepted).
type SummaryAttempt struct {
	At     time.Time `json:"at"`
	Status int       `json:"status"`
	Error  string    `json:"error"`
}

// Summary returns the op's Summary.
func (o *Op) Summary() Summary {
	s := Summary{OpID: o.OpID, Action: o.Action, State: o.State, Attempts: []SummaryAttempt{}}
	for _, e := range o.Attempts() {
		s.Attempts = append(s.Attempts, SummaryAttempt{At: e.At.UTC(), Status: e.Status, Error: e.Reason})
	}
	if at := o.DeliveredAt(); !at.IsZero() {
		at = at.UTC()
		s.DeliveredAt = &at
	}
	return s
}

// MarshalJSON encodes the op with its attempts and delivered_at (null until
// delivered) beside its fields and events.
func (o Op) MarshalJSON() ([]byte, error) {
	type plain Op // no methods: no recursion
	s := o.Summary()
	return json.Marshal(struct {
		plain
		Attempts    []SummaryAttempt `json:"attempts"`
		DeliveredAt *time.Time       `json:"delivered_at"`
	}{plain(o), s.Attempts, s.DeliveredAt})
}
