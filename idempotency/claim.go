package idempotency

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Claim checks every item in one round trip (one EVALSHA) and returns one
// Check per item, in order. The caller gives the items of one batch in
// stamp order (the order they will be sent in). For each item:
//
//   - a done-marker means Done;
//   - a claim held by any copy means Claimed;
//   - a droppable item older than its person's tombstone is Tombstoned, one
//     queued while its person was suppressed is Suppressed;
//   - an item that must follow an older operation of its person not yet
//     settled (a barrier; for an identify, an identify of the same
//     timestamp second; for a delete or suppress, droppable operations in
//     flight) is Waiting, unless that operation is claimed earlier in the
//     same call (it goes first in the same request);
//   - else the item's claim is taken (SET PX ClaimTTL) and the verdict is
//     Send.
//
// The same op id twice in one call is Send then Claimed. An empty slice
// costs no round trip.
func (s *Store) Claim(ctx context.Context, workspace string, items []Item) ([]Check, error) {
	if err := s.checkArgs("claim", workspace); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 4*len(items))
	args := make([]any, 0, 2+4*len(items))
	args = append(args, s.token, s.cfg.ClaimTTL.Milliseconds())
	for _, it := range items {
		if err := checkItem("claim", it); err != nil {
			return nil, err
		}
		p, ord, idn := s.personKeys(workspace, it)
		keys = append(keys, s.OpKey(workspace, it.OpID), p, ord, idn)
		args = append(args, string(it.kind()), strconv.FormatInt(it.Stamp, 10), strconv.FormatInt(it.Timestamp, 10), it.OpID)
	}
	res, err := claimScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("idempotency: claim %d ops in %s: %w", len(items), workspace, err)
	}
	if len(res) != len(items) {
		return nil, fmt.Errorf("idempotency: claim: %d answers for %d ops", len(res), len(items))
	}
	out := make([]Check, len(items))
	for i, r := range res {
		c, err := parseCheck(r)
		if err != nil {
			return nil, fmt.Errorf("idempotency: claim: %w", err)
		}
		out[i] = c
	}
	return out, nil
}

func parseCheck(r any) (Check, error) {
	a, ok := r.([]any)
	if !ok || len(a) == 0 {
		return Check{}, fmt.Errorf("unexpected answer %T", r)
	}
	code, ok := a[0].(int64)
	if !ok {
		return Check{}, fmt.Errorf("unexpected answer %v", a)
	}
	arg := ""
	if len(a) > 1 {
		arg, _ = a[1].(string)
	}
	switch code {
	case 1:
		return Check{Verdict: Send}, nil
	case 2:
		return Check{Verdict: Done}, nil
	case 4:
		return Check{Verdict: Claimed}, nil
	case 3, 6:
		tb, err := parseTombstone(arg)
		if err != nil {
			return Check{}, err
		}
		v := Tombstoned
		if code == 6 {
			v = Suppressed
		}
		return Check{Verdict: v, Tombstone: tb}, nil
	case 5:
		if arg == "f" {
			return Check{Verdict: Waiting, Blocker: &Blocker{InFlight: true}}, nil
		}
		st, k, op, err := parseStamped(arg, true)
		if err != nil {
			return Check{}, fmt.Errorf("blocker: %w", err)
		}
		return Check{Verdict: Waiting, Blocker: &Blocker{OpID: op, Kind: k, Stamp: st}}, nil
	}
	return Check{}, fmt.Errorf("unexpected answer %d", code)
}

// MarkDone writes a done-marker ("d", EX DoneTTL) for every item (over the
// claim, whoever holds it), removes the items' order registrations and
// lowers the in-flight count of their persons for the claims this Store
// held, in one round trip. Marking an item done twice is harmless.
func (s *Store) MarkDone(ctx context.Context, workspace string, items []Item) error {
	return s.settle(ctx, "mark done", workspace, "d", items)
}

// Release deletes the claims this Store holds on items, in one round trip,
// so a retry need not wait for ClaimTTL after a failed send; the items stay
// registered (they are still queued). Claims held by another Store are left
// alone.
func (s *Store) Release(ctx context.Context, workspace string, items []Item) error {
	return s.settle(ctx, "release", workspace, "r", items)
}

// Forget settles items that leave the queue without being delivered (dead
// letters, and orphans: ops whose task asynq archived or lost): it releases this Store's claims and removes the items' order
// registrations, writing no done-marker (a replay sends them again). A
// delete or suppress also takes back its person's tombstone when it is the
// newest one: the person was not deleted, so older ops are no longer
// dropped. One round trip.
func (s *Store) Forget(ctx context.Context, workspace string, items []Item) error {
	return s.settle(ctx, "forget", workspace, "f", items)
}

// Extend gives the claims this Store holds on items another ClaimTTL, in
// one round trip: a sender that keeps items longer than planned (a batch
// bisected to find a bad op) keeps them its own.
func (s *Store) Extend(ctx context.Context, workspace string, items []Item) error {
	return s.settle(ctx, "extend", workspace, "e", items)
}

func (s *Store) settle(ctx context.Context, op, workspace, mode string, items []Item) error {
	if err := s.checkArgs(op, workspace); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	keys := make([]string, 0, 4*len(items))
	args := make([]any, 0, 3+3*len(items))
	ttl := int64((s.cfg.DoneTTL + time.Second - 1) / time.Second)
	if mode == "e" {
		ttl = s.cfg.ClaimTTL.Milliseconds()
	}
	args = append(args, s.token, mode, ttl)
	for _, it := range items {
		if err := checkItem(op, it); err != nil {
			return err
		}
		p, ord, idn := s.personKeys(workspace, it)
		keys = append(keys, s.OpKey(workspace, it.OpID), p, ord, idn)
		args = append(args, string(it.kind()), strconv.FormatInt(it.Timestamp, 10), it.OpID)
	}
	if err := settleScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("idempotency: %s %d ops in %s: %w", op, len(items), workspace, err)
	}
	return nil
}
