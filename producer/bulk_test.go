package producer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

func bulkEvent(i int) producer.Op {
	return producer.Op{Key: fmt.Sprintf("bulk-%d", i), Op: track.Op{Action: track.ActionEvent,
		Identifiers: &track.Identifiers{ID: fmt.Sprintf("u%d", i%100)}, Name: "viewed", Attributes: map[string]any{"n": i}}}
}

// bulkTasks returns the decoded bulk tasks pending in queue.
func (b *testBundle) bulkTasks(t *testing.T, queue string) []*task.Bulk {
	t.Helper()
	infos, err := b.insp.ListPendingTasks(queue, asynq.PageSize(1000))
	require.NoError(t, err)
	var out []*task.Bulk
	for _, info := range infos {
		require.Equal(t, task.TypeBulk, info.Type)
		bk, err := task.DecodeBulk(info.Payload)
		require.NoError(t, err)
		out = append(out, bk)
	}
	return out
}

func TestEnqueueBulk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("PacksOpsIntoBulkTasksBoundedByCount", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		const n = 4500
		ops := make([]producer.Op, n)
		for i := range ops {
			ops[i] = bulkEvent(i)
		}
		res, err := p.EnqueueBulk(ctx, ops)
		require.NoError(t, err)
		require.Equal(t, producer.BulkResult{Ops: n, Enqueued: n, Tasks: 3}, res)

		tasks := b.bulkTasks(t, task.BulkQueue(producer.DefaultWorkspace))
		require.Len(t, tasks, 3)
		seen := map[string]bool{}
		for _, bk := range tasks {
			require.LessOrEqual(t, len(bk.Ops), producer.DefaultBulkMaxOps)
			require.Less(t, bk.BodyBytes(), track.MaxBatchBytes)
			for _, pl := range bk.Ops {
				require.False(t, seen[pl.OpID], "op %s packed twice", pl.OpID)
				seen[pl.OpID] = true
			}
		}
		require.Len(t, seen, n)
	})

	t.Run("StampsEachOpAsEnqueueDoes", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		single, err := p.Enqueue(ctx, producer.Op{Key: "single-twin", Op: bulkEvent(1).Op})
		require.NoError(t, err)
		_, want := b.queued(t, single)

		op := bulkEvent(1)
		op.Key = "single-twin"
		res, err := p.EnqueueBulk(ctx, []producer.Op{op, bulkEvent(2)})
		require.NoError(t, err)
		require.Equal(t, 2, res.Enqueued)
		tasks := b.bulkTasks(t, task.BulkQueue(producer.DefaultWorkspace))
		require.Len(t, tasks, 1)
		got := tasks[0].Ops[0]
		// Same op JSON (event id derived from the key, timestamp), op id and
		// person as the single-op path.
		require.Equal(t, string(want.Op), string(got.Op))
		require.Equal(t, want.OpID, got.OpID)
		require.Equal(t, want.Person, got.Person)
		require.True(t, tasks[0].Ops[1].EnqueuedAt.After(got.EnqueuedAt), "enqueued_at strictly increases within a bulk")
	})

	t.Run("InvalidOpsAreReportedWithTheirIndexAndSkipped", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		bad := bulkEvent(1)
		bad.Name = strings.Repeat("n", track.MaxEventNameBytes+1)
		res, err := p.EnqueueBulk(ctx, []producer.Op{bulkEvent(0), bad, bulkEvent(2), {Op: track.Op{Action: track.ActionIdentify}}})
		require.NoError(t, err)
		require.Equal(t, 4, res.Ops)
		require.Equal(t, 2, res.Enqueued)
		require.Len(t, res.Invalid, 2)
		require.Equal(t, 1, res.Invalid[0].Index)
		require.Equal(t, 3, res.Invalid[1].Index)
		for _, inv := range res.Invalid {
			require.ErrorIs(t, inv.Err, track.ErrInvalidOp)
		}
		tasks := b.bulkTasks(t, task.BulkQueue(producer.DefaultWorkspace))
		require.Len(t, tasks, 1)
		require.Len(t, tasks[0].Ops, 2)
		require.Equal(t, []string{"bulk-0", "bulk-2"}, []string{tasks[0].Ops[0].OpID, tasks[0].Ops[1].OpID})
	})

	t.Run("CriticalOpsGoAloneOnTheCriticalLaneWithTheirTombstones", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		del := producer.Op{Key: "del-u7", Op: track.Op{Action: track.ActionDelete, Identifiers: &track.Identifiers{ID: "u7"}}}
		sup := producer.Op{Key: "sup-u8", Op: track.Op{Action: track.ActionSuppress, Identifiers: &track.Identifiers{ID: "u8"}}}
		res, err := p.EnqueueBulk(ctx, []producer.Op{bulkEvent(0), del, bulkEvent(1), sup})
		require.NoError(t, err)
		require.Equal(t, producer.BulkResult{Ops: 4, Enqueued: 4, Tasks: 1, Critical: 2}, res)
		tasks := b.bulkTasks(t, task.BulkQueue(producer.DefaultWorkspace))
		require.Len(t, tasks, 1)
		require.Len(t, tasks[0].Ops, 2)
		for _, key := range []string{"del-u7", "sup-u8"} {
			info, err := b.insp.GetTaskInfo(task.QueueCritical, task.TaskID(producer.DefaultWorkspace, key))
			require.NoError(t, err)
			pl, err := task.Decode(info.Payload)
			require.NoError(t, err)
			require.True(t, task.Critical(pl.Action))
		}
		store := idempotency.New(redis.NewClient(b.db.Options()), idempotency.Config{Prefix: b.prefix})
		tb, err := store.Tombstone(ctx, producer.DefaultWorkspace, "id:u7")
		require.NoError(t, err)
		require.NotNil(t, tb)
		require.Equal(t, "del-u7", tb.OpID)
	})

	t.Run("RunningTheSameInputAgainQueuesNothingTwice", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		ops := make([]producer.Op, 2500)
		for i := range ops {
			ops[i] = bulkEvent(i)
		}
		first, err := p.EnqueueBulk(ctx, ops)
		require.NoError(t, err)
		require.Equal(t, 2, first.Tasks)
		again, err := p.EnqueueBulk(ctx, ops)
		require.NoError(t, err)
		require.Equal(t, producer.BulkResult{Ops: 2500, Duplicates: 2500}, again)
		require.Len(t, b.bulkTasks(t, task.BulkQueue(producer.DefaultWorkspace)), 2)
	})

	t.Run("RepeatedKeysInOneTaskArePackedOnce", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		res, err := p.EnqueueBulk(ctx, []producer.Op{bulkEvent(0), bulkEvent(0), bulkEvent(1)})
		require.NoError(t, err)
		require.Equal(t, producer.BulkResult{Ops: 3, Enqueued: 2, Duplicates: 1, Tasks: 1}, res)
		require.Len(t, b.bulkTasks(t, task.BulkQueue(producer.DefaultWorkspace))[0].Ops, 2)
	})

	t.Run("EachWorkspaceGetsItsOwnTasksOnItsBulkLane", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		var ops []producer.Op
		for i := range 10 {
			op := bulkEvent(i)
			op.Workspace = []string{"eu", "us"}[i%2]
			ops = append(ops, op)
		}
		res, err := p.EnqueueBulk(ctx, ops)
		require.NoError(t, err)
		require.Equal(t, 2, res.Tasks)
		for _, ws := range []string{"eu", "us"} {
			tasks := b.bulkTasks(t, task.BulkQueue(ws))
			require.Len(t, tasks, 1)
			require.Equal(t, ws, tasks[0].Workspace)
			require.Len(t, tasks[0].Ops, 5)
		}
	})

	t.Run("BoundsTheBodyBytesOfATask", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		w, err := p.NewBulkWriter(producer.BulkOptions{MaxBytes: 64 * 1024})
		require.NoError(t, err)
		pad := strings.Repeat("x", 900)
		for i := range 300 {
			op := bulkEvent(i)
			op.Attributes = map[string]any{"pad": pad, "n": i}
			require.NoError(t, w.Add(ctx, op))
		}
		res, err := w.Close(ctx)
		require.NoError(t, err)
		require.Equal(t, 300, res.Enqueued)
		tasks := b.bulkTasks(t, task.BulkQueue(producer.DefaultWorkspace))
		require.Len(t, tasks, res.Tasks)
		require.Greater(t, res.Tasks, 4)
		total := 0
		for _, bk := range tasks {
			require.LessOrEqual(t, bk.BodyBytes(), 64*1024)
			total += len(bk.Ops)
		}
		require.Equal(t, 300, total)
	})

	t.Run("RejectsBadOptions", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, nil)
		for _, o := range []producer.BulkOptions{{MaxOps: -1}, {MaxOps: task.MaxBulkOps + 1},
			{MaxBytes: task.MaxBulkBytes + 1}, {MaxBytes: 100}, {Pipeline: -1}} {
			_, err := p.NewBulkWriter(o)
			require.ErrorIs(t, err, producer.ErrInvalidConfig, "%+v", o)
		}
	})

	t.Run("StopsOnAContextDone", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		res, err := p.EnqueueBulk(cctx, []producer.Op{bulkEvent(0)})
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, res.Enqueued)
	})
}

func TestEnqueueBulkSpoolsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: closedPort(t)}, Timeout: 200 * time.Millisecond,
		Spool: producer.SpoolConfig{Dir: t.TempDir()}})
	require.NoError(t, err)
	ops := make([]producer.Op, 2100)
	for i := range ops {
		ops[i] = bulkEvent(i)
	}
	res, err := p.EnqueueBulk(ctx, ops)
	require.NoError(t, err)
	require.Equal(t, producer.BulkResult{Ops: 2100, Spooled: 2100}, res)
	require.Equal(t, int64(2100), p.SpoolStats().Depth, "every op spooled: replayed as single-op tasks")
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, p.Close(cctx))
}
