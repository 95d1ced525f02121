package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/redistest"
)

// scrape gathers reg and returns every sample as "name{k=v,...}" → value.
func scrape(t *testing.T, reg *prometheus.Registry) (map[string]float64, error) {
	t.Helper()
	mfs, err := reg.Gather()
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out, err
}

func mustScrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	got, err := scrape(t, reg)
	require.NoError(t, err)
	return got
}

// replica is one worker's view: a collector on its own registry.
type replica struct {
	c   *metrics.QueueCollector
	reg *prometheus.Registry
}

func newReplica(t *testing.T, cfg metrics.QueueConfig) replica {
	t.Helper()
	c, err := metrics.NewQueueCollector(cfg)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return replica{c: c, reg: reg}
}

// seed enqueues pending tasks per queue and one scheduled task in default.
func seed(t *testing.T, db *redistest.DB, pending map[string]int) {
	t.Helper()
	client := asynq.NewClient(db.ConnOpt())
	t.Cleanup(func() { _ = client.Close() })
	for q, n := range pending {
		for i := range n {
			_, err := client.Enqueue(asynq.NewTask("cio:track", []byte(fmt.Sprint(i))), asynq.Queue(q))
			require.NoError(t, err)
		}
	}
	_, err := client.Enqueue(asynq.NewTask("cio:track", nil), asynq.Queue("default"), asynq.ProcessIn(time.Hour))
	require.NoError(t, err)
}

func TestQueueCollectorLease(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) (*redistest.DB, func(instance string, ttl time.Duration) replica) {
		t.Helper()
		db := redistest.New(t)
		seed(t, db, map[string]int{"default": 3, "critical": 1})
		prefix := "test-" + strings.ReplaceAll(t.Name(), "/", "-") + ":"
		mk := func(instance string, ttl time.Duration) replica {
			insp := asynq.NewInspectorFromRedisClient(db.Client)
			return newReplica(t, metrics.QueueConfig{Inspector: insp, Redis: db.Client, KeyPrefix: prefix,
				Instance: instance, LeaseTTL: ttl, Replicas: metrics.ReplicasConfig{PodThroughput: 1, DrainTime: time.Second}})
		}
		return db, mk
	}

	t.Run("ExactlyOneOfTwoReplicasExports", func(t *testing.T) {
		t.Parallel()
		_, mk := setup(t)
		a, b := mk("a", time.Minute), mk("b", time.Minute)

		got := mustScrape(t, a.reg)
		want := map[string]float64{
			"cioq_queue_exporter{}":                              1,
			"cioq_desired_replicas{}":                            4, // 4 pending at 1 op/s, drained in 1 s
			"cioq_queue_latency_seconds{queue=critical}":         got["cioq_queue_latency_seconds{queue=critical}"],
			"cioq_queue_latency_seconds{queue=default}":          got["cioq_queue_latency_seconds{queue=default}"],
			"cioq_queue_depth{queue=default,state=pending}":      3,
			"cioq_queue_depth{queue=default,state=scheduled}":    1,
			"cioq_queue_depth{queue=critical,state=pending}":     1,
			"cioq_queue_depth{queue=critical,state=scheduled}":   0,
			"cioq_queue_depth{queue=default,state=active}":       0,
			"cioq_queue_depth{queue=critical,state=active}":      0,
			"cioq_queue_depth{queue=default,state=retry}":        0,
			"cioq_queue_depth{queue=critical,state=retry}":       0,
			"cioq_queue_depth{queue=default,state=archived}":     0,
			"cioq_queue_depth{queue=critical,state=archived}":    0,
			"cioq_queue_depth{queue=default,state=aggregating}":  0,
			"cioq_queue_depth{queue=critical,state=aggregating}": 0,
			"cioq_queue_depth{queue=default,state=completed}":    0,
			"cioq_queue_depth{queue=critical,state=completed}":   0,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("leader scrape (-want +got):\n%s", diff)
		}
		require.Greater(t, got["cioq_queue_latency_seconds{queue=default}"], 0.0)

		// The other replica exports nothing but its exporter flag, scrape
		// after scrape; the leader keeps the lease by scraping.
		for range 3 {
			require.Equal(t, map[string]float64{"cioq_queue_exporter{}": 0}, mustScrape(t, b.reg))
			require.Equal(t, 1.0, mustScrape(t, a.reg)["cioq_queue_exporter{}"])
		}
	})

	t.Run("ReleaseHandsTheLeaseOver", func(t *testing.T) {
		t.Parallel()
		_, mk := setup(t)
		a, b := mk("a", time.Minute), mk("b", time.Minute)
		require.Equal(t, 1.0, mustScrape(t, a.reg)["cioq_queue_exporter{}"])
		require.Equal(t, 0.0, mustScrape(t, b.reg)["cioq_queue_exporter{}"])

		require.NoError(t, a.c.Release(context.Background()))
		got := mustScrape(t, b.reg)
		require.Equal(t, 1.0, got["cioq_queue_exporter{}"])
		require.Equal(t, 3.0, got["cioq_queue_depth{queue=default,state=pending}"])
		require.Equal(t, map[string]float64{"cioq_queue_exporter{}": 0}, mustScrape(t, a.reg))
	})

	t.Run("ReleaseByANonHolderKeepsTheLease", func(t *testing.T) {
		t.Parallel()
		_, mk := setup(t)
		a, b := mk("a", time.Minute), mk("b", time.Minute)
		mustScrape(t, a.reg)
		require.NoError(t, b.c.Release(context.Background()))
		require.Equal(t, 0.0, mustScrape(t, b.reg)["cioq_queue_exporter{}"])
	})

	t.Run("ExpiredLeaseIsTakenOver", func(t *testing.T) {
		t.Parallel()
		_, mk := setup(t)
		a, b := mk("a", 200*time.Millisecond), mk("b", time.Minute)
		require.Equal(t, 1.0, mustScrape(t, a.reg)["cioq_queue_exporter{}"])
		// a stops scraping (a dead pod); b takes over once the lease expires.
		require.Eventually(t, func() bool { return mustScrape(t, b.reg)["cioq_queue_exporter{}"] == 1 },
			30*time.Second, 50*time.Millisecond)
		require.Equal(t, 0.0, mustScrape(t, a.reg)["cioq_queue_exporter{}"])
	})

	t.Run("ForceExportsBesideTheLeaseHolder", func(t *testing.T) {
		t.Parallel()
		db, mk := setup(t)
		a := mk("a", time.Minute)
		forced := newReplica(t, metrics.QueueConfig{Inspector: asynq.NewInspectorFromRedisClient(db.Client), Force: true})
		require.Equal(t, 1.0, mustScrape(t, a.reg)["cioq_queue_exporter{}"])
		got := mustScrape(t, forced.reg)
		require.Equal(t, 1.0, got["cioq_queue_exporter{}"])
		require.Equal(t, 1.0, got["cioq_queue_depth{queue=critical,state=pending}"])
	})

	t.Run("ConcurrentScrapesElectOneExporter", func(t *testing.T) {
		t.Parallel()
		_, mk := setup(t)
		var reps []replica
		for i := range 6 {
			reps = append(reps, mk(fmt.Sprint("r", i), time.Minute))
		}
		var wg sync.WaitGroup
		results := make([]float64, len(reps))
		for i, r := range reps {
			wg.Go(func() { results[i] = mustScrape(t, r.reg)["cioq_queue_exporter{}"] })
		}
		wg.Wait()
		var sum float64
		for _, v := range results {
			sum += v
		}
		require.Equal(t, 1.0, sum, "exporters among %v", results)
	})
}

func TestQueueCollectorDesiredReplicasFollowsArrivals(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	seed(t, db, map[string]int{"default": 3})
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r := newReplica(t, metrics.QueueConfig{Inspector: asynq.NewInspectorFromRedisClient(db.Client), Force: true,
		Now:      func() time.Time { return now },
		Replicas: metrics.ReplicasConfig{PodThroughput: 0.1, DrainTime: 100 * time.Second}})
	// 3 pending, no arrival rate yet: 3/100 s = 0.03 ops/s → 1 pod of 0.1.
	require.Equal(t, 1.0, mustScrape(t, r.reg)["cioq_desired_replicas{}"])

	seed(t, db, map[string]int{"default": 17}) // +17 pending (and one more scheduled)
	now = now.Add(10 * time.Second)
	// arrivals 17/10 s = 1.7 ops/s, backlog 20/100 s = 0.2 → 1.9 / 0.1 = 19 pods.
	require.Equal(t, 19.0, mustScrape(t, r.reg)["cioq_desired_replicas{}"])
}

func TestQueueCollectorErrors(t *testing.T) {
	t.Parallel()
	t.Run("UnreachableRedisIsAnInvalidMetric", func(t *testing.T) {
		t.Parallel()
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
		t.Cleanup(func() { _ = rdb.Close() })
		r := newReplica(t, metrics.QueueConfig{Inspector: asynq.NewInspectorFromRedisClient(rdb), Redis: rdb})
		_, err := scrape(t, r.reg)
		require.ErrorContains(t, err, "queue exporter lease")
	})
	t.Run("InspectorErrorOnTheExporterIsAnInvalidMetric", func(t *testing.T) {
		t.Parallel()
		r := newReplica(t, metrics.QueueConfig{Inspector: &fakeInspector{err: errors.New("boom")}, Force: true})
		got, err := scrape(t, r.reg)
		require.ErrorContains(t, err, "boom")
		require.Equal(t, 1.0, got["cioq_queue_exporter{}"])
	})
	t.Run("ConfigNeedsInspectorAndRedis", func(t *testing.T) {
		t.Parallel()
		_, err := metrics.NewQueueCollector(metrics.QueueConfig{})
		require.ErrorContains(t, err, "needs an Inspector")
		require.ErrorContains(t, err, "needs Redis")
	})
}

// fakeInspector serves scripted queue infos; it stands for asynq's
// Inspector where the test needs processed counters to move.
type fakeInspector struct {
	mu          sync.Mutex
	infos       map[string]*asynq.QueueInfo
	servers     []*asynq.ServerInfo
	serverCalls int
	err         error
}

func (f *fakeInspector) Queues() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var qs []string
	for q := range f.infos {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	return qs, nil
}

func (f *fakeInspector) GetQueueInfo(q string) (*asynq.QueueInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info := *f.infos[q]
	return &info, nil
}

func (f *fakeInspector) Servers() ([]*asynq.ServerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serverCalls++
	return f.servers, nil
}

func (f *fakeInspector) set(pending, processed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.infos = map[string]*asynq.QueueInfo{"default": {Queue: "default", Pending: pending, ProcessedTotal: processed}}
}

func TestQueueCollectorMeasuresPodThroughput(t *testing.T) {
	t.Parallel()
	// Two worker processes, three asynq servers (one has two lanes).
	servers := []*asynq.ServerInfo{{Host: "pod-a", PID: 1}, {Host: "pod-a", PID: 1}, {Host: "pod-b", PID: 1}}
	tests := []struct {
		name        string
		cfg         metrics.ReplicasConfig
		pending     [2]int
		processed   int // in 10 s
		want        float64
		wantServers int
	}{
		{name: "SaturatedFleetGivesRatePerPod", pending: [2]int{5000, 4000}, processed: 40_000, want: 2000, wantServers: 1},
		{name: "ShortBacklogSaysNothing", pending: [2]int{5000, 10}, processed: 40_000, want: 0},
		{name: "BudgetBoundFleetSaysNothing", cfg: metrics.ReplicasConfig{Budgets: []metrics.Budget{{Rate: 8}}},
			pending: [2]int{5000, 5000}, processed: 40_000, want: 0},
		{name: "ConfiguredThroughputSkipsTheMeasurement", cfg: metrics.ReplicasConfig{PodThroughput: 7},
			pending: [2]int{5000, 5000}, processed: 40_000, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
			f := &fakeInspector{servers: servers}
			f.set(tt.pending[0], 100)
			r := newReplica(t, metrics.QueueConfig{Inspector: f, Force: true, Replicas: tt.cfg,
				Now: func() time.Time { return now }})
			mustScrape(t, r.reg)
			f.set(tt.pending[1], 100+tt.processed)
			now = now.Add(10 * time.Second)
			mustScrape(t, r.reg)
			require.InDelta(t, tt.want, r.c.MeasuredThroughput(), 1e-9)
			require.Equal(t, tt.wantServers, f.serverCalls)
		})
	}
}

// A fresh Redis has no queue until a task is enqueued: the lanes given are
// exported at 0 from the first scrape, beside the queues asynq knows.
func TestQueueCollectorLanesExportedBeforeTheyExist(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	r := newReplica(t, metrics.QueueConfig{
		Inspector: asynq.NewInspectorFromRedisClient(db.Client), Redis: db.Client, KeyPrefix: redistest.Prefix(t),
		Lanes: []string{"critical", "default", "bulk"},
	})
	got := mustScrape(t, r.reg)
	for _, q := range []string{"critical", "default", "bulk"} {
		for _, st := range []string{metrics.StatePending, metrics.StateActive, metrics.StateScheduled, metrics.StateRetry,
			metrics.StateArchived, metrics.StateAggregating, metrics.StateCompleted} {
			v, ok := got[metrics.NameQueueDepth+"{queue="+q+",state="+st+"}"]
			require.True(t, ok, "no %s series for %s/%s on the first scrape", metrics.NameQueueDepth, q, st)
			require.Zero(t, v)
		}
		v, ok := got[metrics.NameQueueLatency+"{queue="+q+"}"]
		require.True(t, ok, "no %s series for %s", metrics.NameQueueLatency, q)
		require.Zero(t, v)
	}

	// A queue asynq knows that is not a lane is exported too.
	seed(t, db, map[string]int{"other": 2})
	got = mustScrape(t, r.reg)
	require.Equal(t, 2.0, got[metrics.NameQueueDepth+"{queue=other,state=pending}"])
	require.Equal(t, 1.0, got[metrics.NameQueueDepth+"{queue=default,state=scheduled}"])
	require.Contains(t, got, metrics.NameQueueDepth+"{queue=bulk,state=pending}")
}
