package producer

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/internal/task"
)

// entry is one prepared op on its way to storage.
type entry struct {
	payload *task.Payload
	// tombstone asks for a tombstone for payload.Person at
	// payload.EnqueuedAt before the task is queued (delete, suppress).
	tombstone bool
}

// sink stores prepared ops durably. redisSink is the live path. This is the
// seam for the on-disk spool that takes ops while Redis is unreachable and
// replays them when it returns: it wraps redisSink and falls back on errors.
type sink interface {
	// put stores e. duplicate reports that its task was already queued.
	put(ctx context.Context, e *entry) (duplicate bool, err error)
	// close releases what the sink owns.
	close() error
}

// tombstoner writes delete/suppress tombstones; *idempotency.Store is one.
type tombstoner interface {
	SetTombstone(ctx context.Context, workspace, person string, at time.Time, opID string) error
}

// redisSink queues each op as one asynq task.
type redisSink struct {
	client   *asynq.Client
	tombs    tombstoner
	maxRetry int
	closer   io.Closer // the Redis connection when the Producer made it
}

func (s *redisSink) put(ctx context.Context, e *entry) (bool, error) {
	p := e.payload
	if e.tombstone {
		// Before the task: once the task can run, every older op of the
		// person must already be dropped.
		if err := s.tombs.SetTombstone(ctx, p.Workspace, p.Person, p.EnqueuedAt, p.OpID); err != nil {
			return false, err
		}
	}
	_, err := s.client.EnqueueContext(ctx, task.NewTask(p, asynq.MaxRetry(s.maxRetry)))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return true, nil
	}
	return false, err
}

func (s *redisSink) close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}
