package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
	"github.com/cioq/cioq/track"
)

// DefaultOrphanAfter is how old an order registration must be before a
// worker checks, when an op waits for it, whether its op is still queued.
const DefaultOrphanAfter = 2 * time.Minute

// orphan checks whether blocker, an older op an item waits for, is still
// queued; when it is not (its task was deleted by hand, archived, or never
// written because a Redis Cluster enqueue failed between its two steps) its
// registration is removed, so the person's later ops stop waiting for an op
// that will never run. Only blockers older than Config.OrphanAfter are
// checked, one Redis round trip each.
func (ws *workspace) orphan(ctx context.Context, it *item, b *idempotency.Blocker) error {
	w := ws.w
	if b == nil || b.InFlight || b.OpID == "" || b.Stamp <= 0 ||
		w.cfg.Now().Sub(time.UnixMicro(b.Stamp)) < w.cfg.OrphanAfter {
		return nil
	}
	a := actionOfKind(b.Kind)
	if a == "" {
		return nil
	}
	state, err := w.cfg.Client.HGet(ctx, taskq.TaskKey(task.Queue(ws.name, a), task.TaskID(ws.name, b.OpID)), "state").Result()
	switch {
	case err == redis.Nil, err == nil && state == "archived":
	case err != nil:
		return fmt.Errorf("check task of %s: %w", b.OpID, err)
	default:
		return nil // still queued: keep waiting
	}
	// The blocker's person is the waiting op's; an identify blocker has the
	// same timestamp second, which Forget needs to find it.
	orphan := idempotency.Item{OpID: b.OpID, Person: it.p.Person, Kind: b.Kind, Timestamp: it.p.Timestamp, Stamp: b.Stamp}
	if err := w.idem.Forget(ctx, ws.name, []idempotency.Item{orphan}); err != nil {
		return fmt.Errorf("forget %s: %w", b.OpID, err)
	}
	w.log.WarnContext(ctx, "order registration of an op no longer queued removed", "workspace", ws.name,
		"op_id", b.OpID, "state", state)
	return nil
}

// actionOfKind returns an action of kind k whose lane is k's lane (what
// orphan needs to find the task), or "" when k has no single lane.
func actionOfKind(k idempotency.Kind) track.Action {
	switch k {
	case idempotency.KindDelete:
		return track.ActionDelete
	case idempotency.KindSuppress:
		return track.ActionSuppress
	case idempotency.KindUnsuppress:
		return track.ActionUnsuppress
	case idempotency.KindIdentify:
		return track.ActionIdentify
	case idempotency.KindUpdate:
		return track.ActionAddDevice
	case idempotency.KindBarrier:
		return track.ActionDeleteDevice
	}
	return ""
}
