package task

import (
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/track"
)

// Queue policy: what an action means for the queue, kept here so that
// `track` knows nothing of lanes, tombstones or order.

// Critical reports whether a belongs on the critical lane: operations that
// remove or block a person (suppress, unsuppress, delete), which must never
// wait behind other traffic.
func Critical(a track.Action) bool {
	return a == track.ActionSuppress || a == track.ActionUnsuppress || a == track.ActionDelete
}

// Kind returns how an op with action a is ordered against the other ops of
// its person (idempotency.Kind; docs/architecture.md, "Order per person").
// An op without a person is never ordered, whatever Kind says.
func Kind(a track.Action) idempotency.Kind {
	switch a {
	case track.ActionEvent, track.ActionPage, track.ActionScreen:
		return idempotency.KindEvent
	case track.ActionIdentify:
		return idempotency.KindIdentify
	case track.ActionAddDevice, track.ActionAddRelationships, track.ActionDeleteRelationships:
		return idempotency.KindUpdate
	case track.ActionDeleteDevice, track.ActionMerge:
		return idempotency.KindBarrier
	case track.ActionDelete:
		return idempotency.KindDelete
	case track.ActionSuppress:
		return idempotency.KindSuppress
	case track.ActionUnsuppress:
		return idempotency.KindUnsuppress
	}
	return idempotency.KindNone
}

// Droppable reports whether an op with action a is dropped instead of sent
// when a newer delete or suppress of its person exists.
func Droppable(a track.Action) bool { return Kind(a).Droppable() }

// Item returns the op as package idempotency sees it.
func (p *Payload) Item() idempotency.Item {
	return idempotency.Item{OpID: p.OpID, Person: p.Person, Stamp: p.Stamp(), Timestamp: p.Timestamp, Kind: Kind(p.Action)}
}

// MaxRetry returns asynq's retry count for a task whose op may fail budget
// times before it is dead-lettered: budget + 1. asynq archives a task that
// returns any error once its counted failures reach its retry count, even
// an error it does not count; the worker dead-letters an op at its
// budget-th failure itself, so with one retry to spare a delay never meets
// that check and the op never ends in asynq's archive.
func MaxRetry(budget int) int { return max(budget, 0) + 1 }

// RetryBudget is the inverse of MaxRetry: the counted failures an op of a
// task with asynq retry count maxRetry may have.
func RetryBudget(maxRetry int) int { return max(maxRetry-1, 0) }
