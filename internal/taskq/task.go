package taskq

import (
	"time"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/task"
)

// Single returns the Task of one op: type p.TypeName() (its API and action), queue
// task.Queue(p.Workspace, p.Action), id task.TaskID(p.Workspace, p.OpID),
// asynq retry count task.MaxRetry(budget). A zero p.EnqueuedAt asks for a
// new stamp; a set one (a replayed or re-queued op) is kept.
func Single(p *task.Payload, budget int, headers map[string]string) Task {
	return Task{
		Workspace: p.Workspace,
		Type:      p.TypeName(),
		Payload:   task.Encode(p),
		ID:        task.TaskID(p.Workspace, p.OpID),
		Queue:     task.Queue(p.Workspace, p.Action),
		MaxRetry:  task.MaxRetry(budget),
		Headers:   headers,
		Ops:       []Op{{Item: p.Item(), StampAt: task.StampOffset}},
	}
}

// Bulk returns the Task of a bulk task: type task.BulkTypeName(b.API), queue
// task.BulkQueue(b.Workspace), id task.BulkTaskID of its op ids.
func Bulk(b *task.Bulk, budget int) Task {
	payload, at := task.EncodeBulkStamped(b)
	ids := make([]string, len(b.Ops))
	ops := make([]Op, len(b.Ops))
	for i, p := range b.Ops {
		ids[i] = p.OpID
		it := p.Item()
		// A backfill's ops are not registered for order: they follow the
		// older ops of their persons, but live ops do not wait for them
		// (docs/architecture.md). One that fails is re-queued as a single
		// task, registered then.
		it.Kind = idempotency.KindNone
		ops[i] = Op{Item: it, StampAt: at[i]}
	}
	return Task{
		Workspace: b.Workspace,
		Type:      task.BulkTypeName(b.API),
		Payload:   payload,
		ID:        task.BulkTaskID(b.Workspace, ids),
		Queue:     task.BulkQueue(b.Workspace),
		MaxRetry:  task.MaxRetry(budget),
		Ops:       ops,
	}
}

// After returns t scheduled to run d from now.
func (t Task) After(d time.Duration) Task {
	if d > 0 {
		t.ProcessAt = time.Now().Add(d)
	}
	return t
}
