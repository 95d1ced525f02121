package taskq_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
	"github.com/cioq/cioq/track"
)

type bundle struct {
	db   *redistest.DB
	rdb  *redis.Client
	idem *idempotency.Store
	w    *taskq.Writer
}

func setup(t *testing.T) *bundle {
	t.Helper()
	db := redistest.New(t)
	idem := idempotency.New(db.Client, idempotency.Config{Prefix: redistest.Prefix(t)})
	return &bundle{db: db, rdb: db.Client, idem: idem, w: taskq.New(db.Client, idem)}
}

func payload(ws, id string, a track.Action, person string) *task.Payload {
	return &task.Payload{Workspace: ws, OpID: id, Action: a, Person: person, Timestamp: 1700000000,
		Op: []byte(`{"type":"person","action":"` + string(a) + `"}`)}
}

// TestMessageIsAsynqs: a task the writer stores is byte for byte the task
// asynq's own client stores for the same type, payload, id, queue, retry
// count and header.
func TestMessageIsAsynqs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	client := asynq.NewClientFromRedisClient(b.rdb)
	p := payload("default", "01JD4X7Q8M6Y2K3N5P7R9T1V3W", track.ActionIdentify, "id:u1")
	p.EnqueuedAt = time.UnixMicro(1764748800123456)
	headers := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

	_, err := client.EnqueueContext(ctx, asynq.NewTaskWithHeaders(task.TypeName(p.Action), task.Encode(p), headers,
		asynq.Queue("qa"), asynq.TaskID("x:1"), asynq.MaxRetry(task.MaxRetry(25))))
	require.NoError(t, err)
	tk := taskq.Single(p, 25, headers)
	tk.Queue, tk.ID = "qb", "x:1"
	res, err := write(ctx, b.w, tk)
	require.NoError(t, err)
	require.False(t, res[0].Duplicate)
	require.Equal(t, []int64{p.Stamp()}, res[0].Stamps, "a given stamp is kept")

	theirs, err := b.rdb.HGetAll(ctx, "asynq:{qa}:t:x:1").Result()
	require.NoError(t, err)
	ours, err := b.rdb.HGetAll(ctx, "asynq:{qb}:t:x:1").Result()
	require.NoError(t, err)
	// The queue name is inside the message: swap it back before comparing.
	require.Equal(t, strings.ReplaceAll(theirs["msg"], "qa", "qb"), ours["msg"])
	require.Equal(t, theirs["state"], ours["state"])
	require.NotEmpty(t, ours["pending_since"])
	require.Equal(t, []string{"x:1"}, b.rdb.LRange(ctx, "asynq:{qb}:pending", 0, -1).Val())
	require.True(t, b.rdb.SIsMember(ctx, "asynq:queues", "qb").Val())
}

// TestStampsAndAsynqProcessing: the script fills every zero stamp with a
// stamp from Redis's clock, unique and increasing, in the stored task that
// asynq's server then hands to the handler.
func TestStampsAndAsynqProcessing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// A stamp key ahead of the clock: stamps continue above it.
	ahead := time.Now().Add(time.Hour).UnixMicro()
	require.NoError(t, b.rdb.Set(ctx, b.idem.StampKey("w1"), ahead, 0).Err())

	var tasks []taskq.Task
	for _, id := range []string{"a", "b", "c"} {
		tasks = append(tasks, taskq.Single(payload("w1", id, track.ActionEvent, "id:u1"), 3, nil))
	}
	bulk := &task.Bulk{Workspace: "w1", Ops: []*task.Payload{
		payload("w1", "d", track.ActionIdentify, "id:u2"), payload("w1", "e", track.ActionEvent, "id:u3")}}
	tasks = append(tasks, taskq.Bulk(bulk, 3))
	// Pipelines ops (a Version3 payload: the API byte follows the stamp)
	// are stamped alike, single or in bulk.
	pl := payload("w1", "f", track.ActionEvent, "id:u1")
	pl.API = task.APIPipelines
	tasks = append(tasks, taskq.Single(pl, 3, nil))
	pbulk := &task.Bulk{Workspace: "w1", API: task.APIPipelines, Ops: []*task.Payload{
		payload("w1", "g", track.ActionIdentify, "id:u4"), payload("w1", "h", track.ActionEvent, "id:u5")}}
	tasks = append(tasks, taskq.Bulk(pbulk, 3))
	require.Equal(t, "cio:pipelines:event", tasks[4].Type)
	require.Equal(t, task.TypeBulkPipelines, tasks[5].Type)
	res, err := write(ctx, b.w, tasks...)
	require.NoError(t, err)
	var stamps []int64
	for _, r := range res {
		require.False(t, r.Duplicate)
		stamps = append(stamps, r.Stamps...)
	}
	require.Len(t, stamps, 8)
	for i, s := range stamps {
		require.Equal(t, ahead+1+int64(i), s, "stamps continue above the last one given")
	}

	got := map[string]int64{}
	var mu sync.Mutex
	done := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{Concurrency: 2,
		Queues: map[string]int{task.Queue("w1", track.ActionEvent): 1, task.BulkQueue("w1"): 1},
		Logger: nopLogger{}, TaskCheckInterval: 10 * time.Millisecond})
	h := asynq.HandlerFunc(func(_ context.Context, tk *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		if tk.Type() == task.TypeBulk || tk.Type() == task.TypeBulkPipelines {
			bk, err := task.BulkFromTask(tk)
			require.NoError(t, err)
			for _, p := range bk.Ops {
				got[p.OpID] = p.Stamp()
			}
		} else {
			p, err := task.FromTask(tk)
			require.NoError(t, err)
			got[p.OpID] = p.Stamp()
		}
		if len(got) == 8 {
			close(done)
		}
		return nil
	})
	require.NoError(t, srv.Start(h))
	t.Cleanup(srv.Shutdown)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("asynq handled %d of 8 ops", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int64{"a": stamps[0], "b": stamps[1], "c": stamps[2], "d": stamps[3], "e": stamps[4],
		"f": stamps[5], "g": stamps[6], "h": stamps[7]}, got)
}

// TestDuplicatesAreNotWritten: a task id that exists, or repeats in the
// call, is reported as a duplicate and writes nothing (no registration).
func TestDuplicatesAreNotWritten(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	del := taskq.Single(payload("w", "del1", track.ActionDelete, "id:u1"), 3, nil)
	res, err := write(ctx, b.w, del, del)
	require.NoError(t, err)
	require.False(t, res[0].Duplicate)
	require.True(t, res[1].Duplicate)
	res2, err := write(ctx, b.w, del)
	require.NoError(t, err)
	require.True(t, res2[0].Duplicate)
	require.Equal(t, int64(1), b.rdb.LLen(ctx, "asynq:{critical.w}:pending").Val())

	tb, err := b.idem.Tombstone(ctx, "w", "id:u1")
	require.NoError(t, err)
	require.Equal(t, &idempotency.Tombstone{OpID: "del1", Kind: idempotency.KindDelete, Stamp: res[0].Stamps[0]}, tb,
		"the tombstone is written with the delete, at its stamp")
}

// TestScheduled: a task with ProcessAt in the future goes to the scheduled
// set, as asynq's client puts it.
func TestScheduled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tk := taskq.Single(payload("w", "s1", track.ActionEvent, "id:u1"), 3, nil).After(time.Minute)
	_, err := write(ctx, b.w, tk)
	require.NoError(t, err)
	insp := asynq.NewInspectorFromRedisClient(b.rdb)
	info, err := insp.GetTaskInfo(tk.Queue, tk.ID)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateScheduled, info.State)
	require.WithinDuration(t, time.Now().Add(time.Minute), info.NextProcessAt, 2*time.Second)
	require.Equal(t, task.MaxRetry(3), info.MaxRetry)
	require.Equal(t, taskq.DefaultTimeout, info.Timeout)
}

func write(ctx context.Context, w *taskq.Writer, tasks ...taskq.Task) ([]taskq.Result, error) {
	u := &taskq.Unit{Tasks: tasks}
	err := w.Write(ctx, nil, u)
	return u.Results, err
}

type nopLogger struct{}

func (nopLogger) Debug(...any) {}
func (nopLogger) Info(...any)  {}
func (nopLogger) Warn(...any)  {}
func (nopLogger) Error(...any) {}
func (nopLogger) Fatal(...any) {}
