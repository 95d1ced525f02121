package breaker

import (
	"time"

	"github.com/sony/gobreaker/v2"
)

// State is a workspace breaker's state as health endpoints and metrics
// name it: StateClosed, StateOpen or StateHalfOpen. Compare states with
// these constants, never with string literals.
type State string

// The states of Status.State, as the seed's /health/customerio names them.
const (
	StateClosed   State = "CLOSED"
	StateOpen     State = "OPEN"
	StateHalfOpen State = "HALF_OPEN"
)

// Status is a workspace breaker's state for health endpoints and metrics.
type Status struct {
	// State is StateClosed, StateOpen or StateHalfOpen. A shared opening by
	// another replica (as last read) shows as StateOpen.
	State State
	// FailureCount is the number of consecutive counted failures (those that
	// opened the breaker while it is open).
	FailureCount int
	// LastFailure is when the last counted failure happened; nil when none.
	LastFailure *time.Time
	// OpenUntil is when an open breaker lets probes through; zero unless
	// State is "OPEN".
	OpenUntil time.Time
}

func stateName(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return StateOpen
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	default:
		return StateClosed
	}
}

// Status returns workspace's status without a Redis round trip. A workspace
// the Set has not seen is "CLOSED".
func (s *Set) Status(workspace string) Status {
	s.mu.Lock()
	e, ok := s.entries[workspace]
	s.mu.Unlock()
	if !ok {
		return Status{State: stateName(gobreaker.StateClosed)}
	}
	return s.status(e)
}

// Statuses returns the status of every workspace the Set has seen.
func (s *Set) Statuses() map[string]Status {
	s.mu.Lock()
	entries := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		entries = append(entries, e)
	}
	s.mu.Unlock()
	out := make(map[string]Status, len(entries))
	for _, e := range entries {
		out[e.ws] = s.status(e)
	}
	return out
}

func (s *Set) status(e *entry) Status {
	state := e.cb.State() // may move open to half-open: call before e.mu
	now := s.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{State: stateName(state), FailureCount: e.failures}
	if !e.lastFailure.IsZero() {
		t := e.lastFailure
		st.LastFailure = &t
	}
	switch {
	case state == gobreaker.StateOpen:
		st.OpenUntil = e.openUntil
	case e.sharedUntil.After(now) && e.sharedUntil.UnixMilli() != e.openUntil.UnixMilli():
		st.State, st.OpenUntil = stateName(gobreaker.StateOpen), e.sharedUntil
	}
	return st
}
