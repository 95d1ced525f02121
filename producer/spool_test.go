package producer_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// tickingClock returns a clock that starts at base and moves one
// millisecond per call, so every op has its own enqueued_at, far from the
// wall clock a replay runs at.
func tickingClock(base time.Time) func() time.Time {
	var n atomic.Int64
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Millisecond) }
}

// spoolOp is op i of the outage tests: mostly events on 40 people, every
// tenth a suppress of a person of its own (so no event is dropped by its
// tombstone and every op is delivered).
func spoolOp(run string, i int) producer.Op {
	if i%10 == 9 {
		return producer.Op{Op: track.Op{Action: track.ActionSuppress,
			Identifiers: &track.Identifiers{ID: fmt.Sprintf("%s-s%d", run, i)}}}
	}
	return producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: fmt.Sprintf("%s-u%d", run, i%40)},
		Name: "purchase", Attributes: map[string]any{"n": i, "run": run}}}
}

// p99 returns the 99th percentile of lat.
func p99(lat []time.Duration) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

func TestSpoolRedisOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	db := redistest.NewOn(t, srv)
	insp := asynq.NewInspector(db.ConnOpt())
	t.Cleanup(func() { _ = insp.Close() })
	reg := prometheus.NewRegistry()
	p, err := producer.New(producer.Config{
		Redis:      db.ConnOpt(),
		Timeout:    5 * time.Second,
		Now:        tickingClock(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)),
		Spool:      producer.SpoolConfig{Dir: t.TempDir(), ProbeInterval: 20 * time.Millisecond},
		Registerer: reg,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	const before, during, after = 100, 400, 100
	var results []producer.Result
	enqueue := func(from, to int) (lat []time.Duration) {
		for i := from; i < to; i++ {
			start := time.Now()
			res, err := p.Enqueue(ctx, spoolOp("outage", i))
			lat = append(lat, time.Since(start))
			require.NoError(t, err, "op %d", i)
			results = append(results, res)
		}
		return lat
	}

	enqueue(0, before)
	// On a loaded machine an enqueue can overrun the 5 ms budget with Redis
	// up and go to the spool; it is replayed at once. Start the outage with an
	// empty spool so the depth below counts the outage's ops only.
	require.Eventually(t, func() bool { return p.SpoolStats().Depth == 0 }, 30*time.Second, 10*time.Millisecond)
	// Keep what Redis holds across the kill (the server runs without AOF).
	require.NoError(t, db.Client.Save(ctx).Err())
	srv.Kill()
	lat := enqueue(before, before+during)
	for _, res := range results[before:] {
		require.True(t, res.Spooled, "op %s spooled while Redis is down", res.OpID)
		require.False(t, res.Duplicate)
	}
	st := p.SpoolStats()
	require.Equal(t, int64(during), st.Depth)
	require.True(t, st.Degraded)
	require.Positive(t, st.Bytes)
	require.Less(t, p99(lat), 50*producer.DefaultSpoolBudget, "Enqueue p99 during the outage (loose: the machine is noisy)")
	gauge := func(name string) float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if m.Gauge != nil {
					return m.Gauge.GetValue()
				}
				return m.Counter.GetValue()
			}
		}
		t.Fatalf("metric %s not registered", name)
		return 0
	}
	require.Equal(t, float64(during), gauge(metrics.NameSpoolOps))
	require.Equal(t, float64(st.Bytes), gauge(metrics.NameSpoolBytes))

	srv.Start()
	// Enqueued while the replay is pending: spooled behind the older ops.
	enqueue(before+during, before+during+after)
	require.Eventually(t, func() bool {
		st := p.SpoolStats()
		return st.Depth == 0 && !st.Degraded
	}, 60*time.Second, 10*time.Millisecond, "spool replayed: %+v", p.SpoolStats())
	st = p.SpoolStats()
	require.GreaterOrEqual(t, st.Replayed, uint64(during))
	require.Zero(t, st.Dropped)
	require.Zero(t, st.Bytes, "replayed segments are deleted")
	require.Equal(t, float64(0), gauge(metrics.NameSpoolOps))
	require.Equal(t, float64(st.Replayed), gauge(metrics.NameSpoolReplayed))

	const n = before + during + after
	t.Run("EveryOpIsQueuedExactlyOnce", func(t *testing.T) {
		total := 0
		for _, q := range []string{task.QueueDefault, task.QueueCritical} {
			info, err := insp.GetQueueInfo(q)
			require.NoError(t, err)
			total += info.Size
		}
		require.Equal(t, n, total)
		for _, res := range results {
			_, err := insp.GetTaskInfo(res.Queue, res.TaskID)
			require.NoError(t, err, "task %s", res.TaskID)
		}
	})
	t.Run("SpooledOpsAreQueuedInOrder", func(t *testing.T) {
		pending, err := insp.ListPendingTasks(task.QueueDefault, asynq.PageSize(n))
		require.NoError(t, err)
		var got, want []string
		for _, ti := range pending {
			got = append(got, ti.ID)
		}
		for _, res := range results[before:] {
			if res.Queue == task.QueueDefault {
				want = append(want, res.TaskID)
			}
		}
		got = slices.DeleteFunc(got, func(id string) bool { return !slices.Contains(want, id) })
		require.Equal(t, want, got)
	})
	t.Run("TombstonesCarryTheirOpsStamp", func(t *testing.T) {
		store := idempotency.New(db.Client, idempotency.Config{})
		checked := 0
		for i, res := range results[before:] {
			if res.Queue != task.QueueCritical {
				continue
			}
			info, err := insp.GetTaskInfo(res.Queue, res.TaskID)
			require.NoError(t, err)
			pl, err := task.Decode(info.Payload)
			require.NoError(t, err)
			tomb, err := store.Tombstone(ctx, pl.Workspace, pl.Person)
			require.NoError(t, err)
			require.NotNil(t, tomb, "op %d", before+i)
			require.Equal(t, res.OpID, tomb.OpID)
			require.Equal(t, pl.Stamp(), tomb.Stamp, "tombstone and op stamped in the one step that queued them")
			checked++
		}
		require.Equal(t, (during+after)/10, checked)
	})
	t.Run("WorkersDeliverEachOpOnce", func(t *testing.T) {
		srv := stacktest.Fake(t, fake.Options{Credentials: map[string]string{"site-1": "key-1"}})
		stacktest.StartWorker(t, stacktest.WorkerConfig(t, db, worker.Workspace{
			Name: producer.DefaultWorkspace, Sender: stacktest.Sender(t, srv.URL, "site-1", "key-1", time.Second),
			Limit: ratelimit.Limit{Rate: 100, Burst: 10},
			Batch: worker.BatchConfig{MaxOps: 100, MaxWait: 20 * time.Millisecond},
		}))
		require.Eventually(t, func() bool { return srv.Ledger().UniqueOps >= n }, 60*time.Second, 20*time.Millisecond,
			"delivered: %+v", srv.Ledger().WorkspaceLedger)
		time.Sleep(200 * time.Millisecond) // let a stray duplicate show up
		l := srv.Ledger()
		require.EqualValues(t, n, l.UniqueOps, "unique ops delivered")
		require.Zero(t, l.DuplicateOps, "duplicate ops")
	})
}

func TestSpoolBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"RedisDown", closedPort},
		// go-redis would wait its 3 s read timeout.
		{"RedisSilent", silentServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: tt.addr(t)}, Timeout: 200 * time.Millisecond,
				Spool: producer.SpoolConfig{Dir: t.TempDir()}})
			require.NoError(t, err)
			var lat []time.Duration
			for i := range 200 {
				start := time.Now()
				res, err := p.Enqueue(ctx, spoolOp("budget", i))
				lat = append(lat, time.Since(start))
				require.NoError(t, err)
				require.True(t, res.Spooled)
			}
			require.Less(t, p99(lat), 50*producer.DefaultSpoolBudget, "loose: the machine is noisy")
			require.Equal(t, int64(200), p.SpoolStats().Depth)
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, p.Close(cctx))
		})
	}
}

func TestSpoolCloseLeavesOpsForTheNextStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	down, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: closedPort(t)},
		Spool: producer.SpoolConfig{Dir: dir, Fsync: producer.FsyncAlways}})
	require.NoError(t, err)
	var results []producer.Result
	for i := range 30 {
		res, err := down.Enqueue(ctx, spoolOp("close", i))
		require.NoError(t, err)
		require.True(t, res.Spooled)
		results = append(results, res)
	}

	db := redistest.New(t)
	cfg := producer.Config{Redis: db.ConnOpt(), KeyPrefix: redistest.Prefix(t), Spool: producer.SpoolConfig{Dir: dir}}
	_, err = producer.New(cfg)
	require.ErrorIs(t, err, producer.ErrSpoolLocked, "one producer per directory")

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, down.Close(cctx))
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	require.NotEmpty(t, segs, "the ops stay on disk")

	up, err := producer.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = up.Close(context.Background()) })
	requireReplayed(t, up, db, results)
}

// requireReplayed waits until p's spool is empty and checks that every
// result's task is queued.
func requireReplayed(t *testing.T, p *producer.Producer, db *redistest.DB, results []producer.Result) {
	t.Helper()
	require.Eventually(t, func() bool {
		st := p.SpoolStats()
		return st.Depth == 0 && !st.Degraded
	}, 30*time.Second, 10*time.Millisecond, "spool replayed: %+v", p.SpoolStats())
	insp := asynq.NewInspectorFromRedisClient(db.Client)
	total := 0
	for _, q := range []string{task.QueueDefault, task.QueueCritical} {
		if info, err := insp.GetQueueInfo(q); err == nil {
			total += info.Size
		}
	}
	require.GreaterOrEqual(t, total, len(results))
	require.LessOrEqual(t, total, len(results)+1, "at most the op being acknowledged when the process died")
	for _, res := range results {
		_, err := insp.GetTaskInfo(res.Queue, res.TaskID)
		require.NoError(t, err, "task %s", res.TaskID)
	}
}

// TestSpoolSurvivesKill SIGKILLs a producer process whose Redis is down
// while it spools ops; a new producer on the same directory replays every
// op the dead one acknowledged.
func TestSpoolSurvivesKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestSpoolChildProcess$")
	child.Env = append(os.Environ(), "CIOQ_SPOOL_CHILD=1", "CIOQ_SPOOL_DIR="+dir, "CIOQ_SPOOL_REDIS="+closedPort(t))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = child.Process.Kill()
		}
	})

	// Each line is "queue taskID opID" of an op the child's Enqueue
	// acknowledged; kill the child mid-stream.
	var results []producer.Result
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue // test framework output
		}
		results = append(results, producer.Result{Queue: f[0], TaskID: f[1], OpID: f[2]})
		if len(results) == 300 && !killed {
			require.NoError(t, child.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	_ = child.Wait()
	require.True(t, killed, "the child stopped on its own after %d ops", len(results))

	db := redistest.New(t)
	p, err := producer.New(producer.Config{Redis: db.ConnOpt(), KeyPrefix: redistest.Prefix(t), Spool: producer.SpoolConfig{Dir: dir}})
	require.NoError(t, err, "the dead process's lock is gone with it")
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	requireReplayed(t, p, db, results)
}

// TestSpoolChildProcess is the producer TestSpoolSurvivesKill kills; it
// does nothing unless CIOQ_SPOOL_CHILD is set.
func TestSpoolChildProcess(t *testing.T) {
	if os.Getenv("CIOQ_SPOOL_CHILD") == "" {
		t.Skip("helper process for TestSpoolSurvivesKill")
	}
	p, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: os.Getenv("CIOQ_SPOOL_REDIS")},
		Spool: producer.SpoolConfig{Dir: os.Getenv("CIOQ_SPOOL_DIR"), Fsync: producer.FsyncNever}})
	require.NoError(t, err)
	for i := range 1_000_000 {
		res, err := p.Enqueue(context.Background(), spoolOp("kill", i))
		require.NoError(t, err)
		require.True(t, res.Spooled)
		// Unbuffered: a line on stdout is an op acknowledged.
		fmt.Println(res.Queue, res.TaskID, res.OpID)
	}
	t.Fatal("not killed")
}

func TestSpoolConfigValidation(t *testing.T) {
	t.Parallel()
	redis := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	tests := []struct {
		name    string
		spool   producer.SpoolConfig
		wantMsg string
	}{
		{"UnknownFsync", producer.SpoolConfig{Fsync: "sometimes"}, `spool fsync "sometimes"`},
		{"NegativeMaxBytes", producer.SpoolConfig{MaxBytes: -1}, "spool max bytes is negative"},
		{"NegativeBudget", producer.SpoolConfig{Budget: -time.Millisecond}, "spool budget is negative"},
		{"HugeSegments", producer.SpoolConfig{SegmentBytes: producer.MaxSegmentBytes + 1}, "spool segment bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.spool.Dir = t.TempDir()
			p, err := producer.New(producer.Config{Redis: redis, Spool: tt.spool})
			require.Nil(t, p)
			require.ErrorIs(t, err, producer.ErrInvalidConfig)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
	t.Run("MetricsRegisteredTwiceIsAnErrorNotAPanic", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		dir := t.TempDir()
		first, err := producer.New(producer.Config{Redis: redis, Registerer: reg})
		require.NoError(t, err)
		t.Cleanup(func() { _ = first.Close(context.Background()) })
		_, err = producer.New(producer.Config{Redis: redis, Registerer: reg, Spool: producer.SpoolConfig{Dir: dir}})
		require.ErrorContains(t, err, "register metrics")
		p, err := producer.New(producer.Config{Redis: redis, Spool: producer.SpoolConfig{Dir: dir}})
		require.NoError(t, err, "the failed New released the spool lock")
		require.NoError(t, p.Close(context.Background()))
	})
	t.Run("SpoolFullMatchesErrUnavailable", func(t *testing.T) {
		t.Parallel()
		p, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: closedPort(t)},
			Spool: producer.SpoolConfig{Dir: t.TempDir(), MaxBytes: 1000}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		var full error
		for i := range 100 {
			if _, err := p.Enqueue(context.Background(), spoolOp("full", i)); err != nil {
				full = err
				break
			}
		}
		require.ErrorIs(t, full, producer.ErrSpoolFull)
		require.ErrorIs(t, full, producer.ErrUnavailable)
		require.Equal(t, uint64(1), p.SpoolStats().Rejected)
	})
}

// BenchmarkEnqueueDuringOutage measures Enqueue while Redis is down, so
// every op goes to the spool, under each fsync policy. Compare p99 with the
// 5 ms budget.
func BenchmarkEnqueueDuringOutage(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now: Redis is down
	for _, policy := range []producer.FsyncPolicy{producer.FsyncInterval, producer.FsyncNever, producer.FsyncAlways} {
		b.Run("fsync="+string(policy), func(b *testing.B) {
			p, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: addr},
				Spool: producer.SpoolConfig{Dir: b.TempDir(), Fsync: policy, MaxBytes: 4 << 30, SegmentBytes: producer.MaxSegmentBytes}})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			data := map[string]any{"amount": 10, "currency": "EUR", "sku": "A-1"}
			lat := make([]time.Duration, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				res, err := p.Track(ctx, "u1", "purchase", data)
				if err != nil {
					b.Fatal(err)
				}
				if !res.Spooled {
					b.Fatal("not spooled")
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
			st := p.SpoolStats()
			b.ReportMetric(float64(st.Bytes)/float64(max(st.Depth, 1)), "bytes/op")
		})
	}
}
