package producer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
)

// TestTombstoneAndTaskInOneStep: a delete's task, its stamp and its
// person's tombstone are written by one script: both or neither.
func TestTombstoneAndTaskInOneStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*Producer, *asynq.Inspector, *idempotency.Store, *redistest.DB) {
		db := redistest.New(t)
		prefix := redistest.Prefix(t)
		p, err := New(Config{Client: db.Client, KeyPrefix: prefix, MaxRetry: 3, Timeout: 30 * time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, p.Close(ctx)) })
		insp := asynq.NewInspectorFromRedisClient(db.Client)
		return p, insp, idempotency.New(db.Client, idempotency.Config{Prefix: prefix}), db
	}

	t.Run("WrittenTogetherAtTheOpsStamp", func(t *testing.T) {
		t.Parallel()
		p, insp, idem, _ := setup(t)
		res, err := p.Delete(ctx, "u1")
		require.NoError(t, err)
		info, err := insp.GetTaskInfo(task.QueueCritical, res.TaskID)
		require.NoError(t, err)
		require.Equal(t, task.MaxRetry(3), info.MaxRetry)
		pl, err := task.Decode(info.Payload)
		require.NoError(t, err)
		require.NotZero(t, pl.Stamp(), "stamped by Redis as it was queued")
		require.WithinDuration(t, time.Now(), pl.EnqueuedAt, time.Minute)
		tb, err := idem.Tombstone(ctx, "default", "id:u1")
		require.NoError(t, err)
		require.Equal(t, &idempotency.Tombstone{OpID: res.OpID, Kind: idempotency.KindDelete, Stamp: pl.Stamp()}, tb)
	})
	t.Run("FailureWritesNeither", func(t *testing.T) {
		t.Parallel()
		p, insp, idem, db := setup(t)
		// A stamp key of the wrong type makes the script fail before it
		// writes anything.
		require.NoError(t, db.Client.RPush(ctx, idem.StampKey("default"), "x").Err())
		_, err := p.Suppress(ctx, "u1")
		require.ErrorIs(t, err, ErrUnavailable)
		tb, err := idem.Tombstone(ctx, "default", "id:u1")
		require.NoError(t, err)
		require.Nil(t, tb)
		_, err = insp.ListPendingTasks(task.QueueCritical)
		require.True(t, err == nil || errors.Is(err, asynq.ErrQueueNotFound))
		tasks, _ := insp.ListPendingTasks(task.QueueCritical)
		require.Empty(t, tasks)
	})
}
