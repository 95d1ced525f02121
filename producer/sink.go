package producer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/task"
)

// entry is one prepared op on its way to storage.
type entry struct {
	payload *task.Payload
	// tombstone asks for a tombstone for payload.Person at
	// payload.EnqueuedAt before the task is queued (delete, suppress).
	tombstone bool
	// headers are the task headers (the caller's trace context); nil for
	// none. The spool does not keep them.
	headers map[string]string
}

// stored says where put left an op.
type stored struct {
	// duplicate: its task was already queued.
	duplicate bool
	// spooled: it is in the on-disk spool, to be replayed into Redis.
	spooled bool
}

// sink stores prepared ops durably. redisSink is the live path; spoolSink
// (spool_sink.go) wraps it and takes ops into the on-disk spool while Redis
// is unreachable or slow, replaying them when it returns.
type sink interface {
	// put stores e.
	put(ctx context.Context, e *entry) (stored, error)
	// close releases what the sink owns, within ctx.
	close(ctx context.Context) error
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
	closer   io.Closer      // the Redis connection when the Producer made it
	hist     *history.Store // op history; nil when off (history.go)
	log      *slog.Logger
}

func (s *redisSink) put(ctx context.Context, e *entry) (stored, error) {
	p := e.payload
	if e.tombstone {
		// Before the task: once the task can run, every older op of the
		// person must already be dropped.
		if err := s.tombs.SetTombstone(ctx, p.Workspace, p.Person, p.EnqueuedAt, p.OpID); err != nil {
			return stored{}, err
		}
	}
	_, err := s.client.EnqueueContext(ctx, task.NewTaskWithHeaders(p, e.headers, asynq.MaxRetry(s.maxRetry)))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return stored{duplicate: true}, nil
	}
	if err == nil {
		if herr := s.recordEnqueued(ctx, p); herr != nil && s.log != nil {
			s.log.WarnContext(ctx, "op history not written", "op_id", p.OpID, "error", herr.Error())
		}
	}
	return stored{}, err
}

func (s *redisSink) close(context.Context) error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}
