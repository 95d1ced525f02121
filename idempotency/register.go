package idempotency

import (
	"context"
	"fmt"
	"strconv"
)

// Registration is what an enqueue script needs to register one queued op
// with cioq_register (LuaLib): its person, order and identify keys and its
// kind code. Package taskq builds its enqueue script on these, so an op is
// stamped, registered and queued in one atomic step.
type Registration struct {
	// Person, Order and Identify are the keys cioq_register touches (all
	// the op key, harmlessly, when the op is not ordered).
	Person, Order, Identify string
	// Kind is the kind code ("n" for an op that is not ordered).
	Kind string
	// Timestamp is the op's timestamp in unix seconds, as a string.
	Timestamp string
}

// RegistrationOf returns the registration of it in workspace.
func (s *Store) RegistrationOf(workspace string, it Item) Registration {
	p, ord, idn := s.personKeys(workspace, it)
	return Registration{Person: p, Order: ord, Identify: idn, Kind: string(it.kind()),
		Timestamp: strconv.FormatInt(it.Timestamp, 10)}
}

// RegistrationTTL is how long registrations and tombstones live, in ms.
func (s *Store) RegistrationTTL() int64 { return s.cfg.TombstoneTTL.Milliseconds() }

// Register stamps items (those whose Stamp is zero get new stamps, in
// order; the others keep theirs) and registers them for their persons: order
// registrations, tombstones of deletes and suppresses, the suppression lift
// of unsuppresses. One round trip. It returns the stamps, in order.
//
// It is the first half of an enqueue where the queue's keys live in other
// Redis Cluster slots than the workspace's; elsewhere the enqueue script
// does the same in the step that queues the ops.
func (s *Store) Register(ctx context.Context, workspace string, items []Item) ([]int64, error) {
	if err := s.checkArgs("register", workspace); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 1+3*len(items))
	args := make([]any, 0, 1+4*len(items))
	keys = append(keys, s.StampKey(workspace))
	args = append(args, s.RegistrationTTL())
	for _, it := range items {
		if err := checkItem("register", it); err != nil {
			return nil, err
		}
		r := s.RegistrationOf(workspace, it)
		keys = append(keys, r.Person, r.Order, r.Identify)
		args = append(args, strconv.FormatInt(it.Stamp, 10), r.Kind, r.Timestamp, it.OpID)
	}
	res, err := registerScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("idempotency: register %d ops in %s: %w", len(items), workspace, err)
	}
	if len(res) != len(items) {
		return nil, fmt.Errorf("idempotency: register: %d answers for %d ops", len(res), len(items))
	}
	out := make([]int64, len(res))
	for i, v := range res {
		if out[i], err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("idempotency: register: stamp %q: %w", v, err)
		}
	}
	return out, nil
}

// ReserveStamps hands out n new stamps of workspace at once (one round
// trip) and returns the first: first, first+1, …, first+n-1 are the
// caller's to give to ops it writes later, in that order (a bulk import
// keeps its input order this way while it writes its tasks in parallel).
func (s *Store) ReserveStamps(ctx context.Context, workspace string, n int) (int64, error) {
	if err := s.checkArgs("reserve stamps", workspace); err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("idempotency: reserve stamps: %w: n %d < 1", ErrInvalid, n)
	}
	v, err := reserveScript.Run(ctx, s.rdb, []string{s.StampKey(workspace)}, n).Text()
	if err != nil {
		return 0, fmt.Errorf("idempotency: reserve %d stamps in %s: %w", n, workspace, err)
	}
	first, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("idempotency: reserve stamps: %q: %w", v, err)
	}
	return first, nil
}
