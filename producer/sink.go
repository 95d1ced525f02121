package producer

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
)

// entry is one prepared op on its way to storage.
type entry struct {
	payload *task.Payload
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

// sink stores prepared ops durably, a unit at a time: the ops of one put
// are all stored or none is. redisSink is the live path; spoolSink
// (spool_sink.go) wraps it and takes ops into the on-disk spool while Redis
// is unreachable or slow, replaying them when it returns.
type sink interface {
	// put stores the ops of es as one unit and says where each went.
	put(ctx context.Context, es []*entry) ([]stored, error)
	// close releases what the sink owns, within ctx.
	close(ctx context.Context) error
}

// redisSink queues each op as one asynq task, through the group commit:
// one enqueue script stamps, registers and queues a unit's ops atomically
// (delete and suppress write their tombstones in the same step).
type redisSink struct {
	w        *taskq.Writer
	commit   *committer
	maxRetry int
	closer   io.Closer      // the Redis connection when the Producer made it
	hist     *history.Store // op history; nil when off (history.go)
	log      *slog.Logger
}

func (s *redisSink) put(ctx context.Context, es []*entry) ([]stored, error) {
	tasks := make([]taskq.Task, len(es))
	for i, e := range es {
		tasks[i] = taskq.Single(e.payload, s.maxRetry, e.headers)
	}
	res, err := s.commit.write(ctx, tasks, s.historyOf(es))
	if err != nil {
		return nil, err
	}
	out := make([]stored, len(es))
	for i, r := range res {
		out[i].duplicate = r.Duplicate
	}
	return out, nil
}

// historyOf returns the enqueued events that seed the histories of es (and
// add them to their persons' indexes), by workspace; nil when history is
// off. They are written in the enqueue's round trip; the seed's time is
// this process's clock (the op's stamp is Redis's).
func (s *redisSink) historyOf(es []*entry) map[string][]history.Record {
	if s.hist == nil {
		return nil
	}
	now := time.Now()
	out := make(map[string][]history.Record, 1)
	for _, e := range es {
		p := e.payload
		out[p.Workspace] = append(out[p.Workspace], history.Record{
			OpID: p.OpID, Person: p.Person, EnqueuedAt: now,
			Seed: history.Event{Kind: history.KindEnqueued, At: now, Queue: task.Queue(p.Workspace, p.Action),
				Action: string(p.Action), Ref: p.Person},
		})
	}
	return out
}

func (s *redisSink) close(context.Context) error {
	s.commit.close()
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}
