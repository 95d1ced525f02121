package producer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
)

// tombstoneFunc adapts a function to tombstoner.
type tombstoneFunc func(ctx context.Context, workspace, person string, at time.Time, opID string) error

func (f tombstoneFunc) SetTombstone(ctx context.Context, workspace, person string, at time.Time, opID string) error {
	return f(ctx, workspace, person, at, opID)
}

func TestRedisSinkTombstoneOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newProducerWith := func(t *testing.T, tombs tombstoneFunc) (*Producer, *asynq.Inspector) {
		db := redistest.New(t)
		insp := asynq.NewInspector(db.ConnOpt())
		t.Cleanup(func() { _ = insp.Close() })
		s := &redisSink{client: asynq.NewClientFromRedisClient(db.Client), tombs: tombs, maxRetry: 3}
		p := newProducer(Config{Timeout: 30 * time.Second}.withDefaults(), s)
		t.Cleanup(func() { require.NoError(t, p.Close(ctx)) })
		return p, insp
	}
	pendingCritical := func(t *testing.T, insp *asynq.Inspector) int {
		tasks, err := insp.ListPendingTasks(task.QueueCritical)
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0
		}
		require.NoError(t, err)
		return len(tasks)
	}

	t.Run("WrittenBeforeTheTask", func(t *testing.T) {
		t.Parallel()
		// The sink runs on its own goroutine: record, then assert here.
		var insp *asynq.Inspector
		type call struct {
			ws, person, opID string
			pendingBefore    int
			pendingErr       error
		}
		var calls []call
		p, insp := newProducerWith(t, func(ctx context.Context, ws, person string, at time.Time, opID string) error {
			tasks, err := insp.ListPendingTasks(task.QueueCritical)
			if errors.Is(err, asynq.ErrQueueNotFound) {
				err = nil
			}
			calls = append(calls, call{ws: ws, person: person, opID: opID, pendingBefore: len(tasks), pendingErr: err})
			return nil
		})
		res, err := p.Delete(ctx, "u1")
		require.NoError(t, err)
		require.Equal(t, []call{{ws: "default", person: "id:u1", opID: res.OpID}}, calls,
			"one tombstone, written while no task was queued")
		require.Equal(t, 1, pendingCritical(t, insp))
		info, err := insp.GetTaskInfo(task.QueueCritical, res.TaskID)
		require.NoError(t, err)
		require.Equal(t, 3, info.MaxRetry)
	})
	t.Run("FailureQueuesNothing", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("READONLY You can't write against a read only replica")
		p, insp := newProducerWith(t, func(context.Context, string, string, time.Time, string) error { return boom })
		_, err := p.Suppress(ctx, "u1")
		require.ErrorIs(t, err, ErrUnavailable)
		require.ErrorIs(t, err, boom)
		require.Equal(t, 0, pendingCritical(t, insp))
	})
}
