package loadtest_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

const (
	benchSite = "bench-site"
	benchKey  = "bench-key"
	// budget is the workspace's request budget, as Customer.io's fair use.
	budget = 100
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// benchHistory is the op history configuration of a run: on unless
// CIOQ_BENCH_HISTORY=0 (the "History cost" comparison in docs/BENCHMARKS.md).
func benchHistory() history.Config {
	return history.Config{Disabled: os.Getenv("CIOQ_BENCH_HISTORY") == "0"}
}

func benchOps() int {
	if n, err := strconv.Atoi(os.Getenv("CIOQ_BENCH_OPS")); err == nil && n > 0 {
		return n
	}
	return 60000
}

// child runs one measured side in a process of its own (the test binary
// re-executed) and reports its peak RSS when stopped.
type child struct {
	cmd *exec.Cmd
}

func startChild(tb testing.TB, mode string, db *redistest.DB, url string) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchChild$")
	cmd.Env = append(os.Environ(), "CIOQ_BENCH_CHILD="+mode, "CIOQ_BENCH_REDIS="+db.Addr,
		"CIOQ_BENCH_DB="+strconv.Itoa(db.Index), "CIOQ_BENCH_URL="+url)
	cmd.Stderr = os.Stderr
	require.NoError(tb, cmd.Start())
	c := &child{cmd: cmd}
	tb.Cleanup(func() { _ = c.cmd.Process.Kill(); _, _ = c.cmd.Process.Wait() })
	return c
}

// peakRSS reads the child's VmHWM (peak resident set) in MiB.
func (c *child) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// cpu returns the child's CPU seconds so far (user + system, from /proc).
func (c *child) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after the command name (which is in parentheses): utime is the
	// 12th and stime the 13th of them, in clock ticks (100 per second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
}

// TestBenchChild is the measured process; it does nothing unless
// CIOQ_BENCH_CHILD is set ("bare": asynq no-op servers; "cioq": the worker).
func TestBenchChild(t *testing.T) {
	mode := os.Getenv("CIOQ_BENCH_CHILD")
	if mode == "" {
		t.Skip("helper process for the benchmarks")
	}
	idx, _ := strconv.Atoi(os.Getenv("CIOQ_BENCH_DB"))
	conn := asynq.RedisClientOpt{Addr: os.Getenv("CIOQ_BENCH_REDIS"), DB: idx}
	if path := os.Getenv("CIOQ_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path + "." + mode)
		require.NoError(t, err)
		require.NoError(t, pprof.StartCPUProfile(f))
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	switch mode {
	case "bare":
		// The same server layout as cioq's default lane: 2 servers, 1000 slots each.
		var servers []*asynq.Server
		for range worker.DefaultServers {
			s := asynq.NewServer(conn, asynq.Config{Concurrency: worker.DefaultConcurrency,
				Queues: map[string]int{"bare": 1}, LogLevel: asynq.ErrorLevel, TaskCheckInterval: 50 * time.Millisecond})
			require.NoError(t, s.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
			servers = append(servers, s)
		}
		<-sig
		for _, s := range servers {
			s.Shutdown()
		}
	case "cioq":
		client, err := track.NewClient(track.Config{SiteID: benchSite, APIKey: benchKey, BaseURL: os.Getenv("CIOQ_BENCH_URL")})
		require.NoError(t, err)
		rdb := redis.NewClient(&redis.Options{Addr: conn.Addr, DB: idx, PoolSize: 64})
		cfg := worker.Config{Redis: conn, Client: rdb, Workspaces: []worker.Workspace{{
			Name: producer.DefaultWorkspace, Sender: client, Limit: ratelimit.Limit{Rate: budget},
		}}, History: benchHistory()}
		// Knobs for tuning runs; the defaults are what `make bench` reports.
		cfg.Concurrency = envInt("CIOQ_BENCH_CONCURRENCY", 0)
		cfg.Servers = envInt("CIOQ_BENCH_SERVERS", 0)
		cfg.Workspaces[0].Batch.MaxOps = envInt("CIOQ_BENCH_MAX_OPS", 0)
		cfg.Workspaces[0].Batch.MaxWait = time.Duration(envInt("CIOQ_BENCH_MAX_WAIT_MS", 0)) * time.Millisecond
		cfg.Workspaces[0].Batch.MaxInFlight = envInt("CIOQ_BENCH_MAX_INFLIGHT", 0)
		cfg.Protocol = envInt("CIOQ_BENCH_PROTOCOL", 0) // 3: asynq's RESP3 clients, as before
		w, err := worker.New(cfg)
		require.NoError(t, err)
		require.NoError(t, w.Start())
		<-sig
		w.Shutdown()
	}
}

// enqueueConcurrently runs fn(i) for i in [0, n) on g goroutines and returns
// each call's latency.
func enqueueConcurrently(tb testing.TB, n, g int, fn func(i int) error) []time.Duration {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := fn(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		tb.Fatal(err)
	}
	return lat
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func waitUntil(tb testing.TB, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not done after %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkDelivery measures, in one run on one Redis: (a) bare asynq
// processing no-op tasks, (b) cioq delivering the same number of ops end to
// end into the fake at a 100 req/s budget, their ratio, producer Enqueue
// latency, the worker's peak RSS, and (c) end-to-end latency at half of (b).
func BenchmarkDelivery(b *testing.B) {
	n := benchOps()
	for range b.N {
		db := redistest.New(b)
		ctx := context.Background()

		// (a) bare asynq.
		ac := asynq.NewClient(db.ConnOpt())
		enqueueConcurrently(b, n, 16, func(i int) error {
			_, err := ac.Enqueue(asynq.NewTask("noop", []byte(strconv.Itoa(i))), asynq.Queue("bare"))
			return err
		})
		insp := asynq.NewInspector(db.ConnOpt())
		bare := startChild(b, "bare", db, "")
		cpu0 := redistest.CPUSeconds(b, db.Client)
		bareCPU0 := bare.cpu()
		t0 := time.Now()
		waitUntil(b, 5*time.Minute, func() bool {
			q, err := insp.GetQueueInfo("bare")
			return err == nil && q.Pending == 0 && q.Active == 0
		})
		bareWall := time.Since(t0).Seconds()
		bareRate := float64(n) / bareWall
		bareRedisSec := redistest.CPUSeconds(b, db.Client) - cpu0
		bareRedis := bareRedisSec / bareWall
		bareProcSec := bare.cpu() - bareCPU0
		bareRSS := bare.peakRSS()
		bare.stop()
		_ = ac.Close()

		// (b) cioq end to end.
		srv := stacktest.Fake(b, fake.Options{Credentials: map[string]string{benchSite: benchKey},
			RateLimit: budget, RequestLog: 200000, RequestLogOps: 2 * n})
		p := stacktest.NewProducer(b, producer.Config{Redis: db.ConnOpt(), History: benchHistory()})
		// Enqueue latency as one caller sees it (one goroutine), then the
		// rest of the backlog filled by 16 goroutines.
		const seq = 5000
		enqLat := enqueueConcurrently(b, seq, 1, func(i int) error {
			_, err := p.Track(ctx, "user-"+strconv.Itoa(i%5000), "page_viewed", map[string]any{"seq": i, "path": "/pricing"})
			return err
		})
		enqueueConcurrently(b, n-seq, 16, func(i int) error {
			i += seq
			_, err := p.Track(ctx, "user-"+strconv.Itoa(i%5000), "page_viewed", map[string]any{"seq": i, "path": "/pricing"})
			return err
		})
		w := startChild(b, "cioq", db, srv.URL)
		cpu0 = redistest.CPUSeconds(b, db.Client)
		cioqCPU0 := w.cpu()
		t0 = time.Now()
		waitUntil(b, 5*time.Minute, func() bool { return srv.Ledger().UniqueOps >= int64(n) })
		cioqWall := time.Since(t0).Seconds()
		cioqRate := float64(n) / cioqWall
		cioqRedisSec := redistest.CPUSeconds(b, db.Client) - cpu0
		cioqRedis := cioqRedisSec / cioqWall
		cioqProcSec := w.cpu() - cioqCPU0
		l := srv.Ledger()
		histBytes := historyBytesPerOp(b, db.Client, n)

		// (c) end-to-end latency at half of (b)'s rate, with the worker running.
		half := cioqRate / 2
		const window = 10 * time.Second
		m := int(half * window.Seconds())
		srv.Reset()
		start := time.Now()
		var sent sync.Map
		tick := time.Duration(float64(time.Second) / half)
		enqueueConcurrently(b, m, 8, func(i int) error {
			time.Sleep(time.Until(start.Add(time.Duration(i) * tick)))
			r, err := p.Track(ctx, "late-"+strconv.Itoa(i%5000), "clicked", map[string]any{"seq": i})
			sent.Store(r.EventID, time.Now())
			return err
		})
		waitUntil(b, 2*time.Minute, func() bool { return srv.Ledger().UniqueOps >= int64(m) })
		var e2e []time.Duration
		for _, r := range srv.Requests() {
			for _, op := range r.Ops {
				if at, ok := sent.Load(op.ID); ok {
					e2e = append(e2e, r.Time.Sub(at.(time.Time)))
				}
			}
		}
		workerRSS := w.peakRSS()
		w.stop()

		b.ReportMetric(bareRate, "bare-tasks/s")
		b.ReportMetric(cioqRate, "cioq-ops/s")
		b.ReportMetric(cioqRate/bareRate, "ratio")
		b.ReportMetric(float64(percentile(enqLat, .5).Microseconds()), "enqueue-p50-µs")
		b.ReportMetric(float64(percentile(enqLat, .99).Microseconds()), "enqueue-p99-µs")
		b.ReportMetric(workerRSS, "worker-MiB")
		b.ReportMetric(histBytes, "history-B/op")
		b.ReportMetric(float64(percentile(e2e, .5).Milliseconds()), "e2e-p50-ms")
		b.ReportMetric(float64(percentile(e2e, .99).Milliseconds()), "e2e-p99-ms")
		fmt.Printf("\n| measure | value |\n|---|---|\n")
		fmt.Printf("| ops | %d |\n| (a) bare asynq, no-op handler | %.0f tasks/s (peak RSS %.0f MiB) |\n", n, bareRate, bareRSS)
		fmt.Printf("| (b) cioq end to end, 100 req/s budget | %.0f ops/s |\n| ratio b/a | %.2f |\n", cioqRate, cioqRate/bareRate)
		fmt.Printf("| requests / ops per request (max) | %d / %.0f (%d) |\n", l.Requests, float64(l.OpsAccepted)/float64(max(l.Accepted, 1)), l.MaxOpsPerRequest)
		fmt.Printf("| max requests in any 1 s | %d |\n| 429s | %d |\n| duplicates | %d |\n", l.MaxReceivedPerSecond, l.RateLimited, l.DuplicateOps)
		fmt.Printf("| Redis CPU busy during (a) / (b) | %.0f%% / %.0f%% of one core |\n", 100*bareRedis, 100*cioqRedis)
		k := float64(n) / 1000
		fmt.Printf("| CPU ms per 1,000 ops, worker process (a) / (b) | %.0f / %.0f |\n", 1000*bareProcSec/k, 1000*cioqProcSec/k)
		fmt.Printf("| CPU ms per 1,000 ops, Redis (a) / (b) | %.0f / %.0f |\n", 1000*bareRedisSec/k, 1000*cioqRedisSec/k)
		fmt.Printf("| producer Enqueue p50 / p99 (one caller, %d ops) | %s / %s |\n", seq, percentile(enqLat, .5), percentile(enqLat, .99))
		fmt.Printf("| worker peak RSS | %.1f MiB |\n", workerRSS)
		fmt.Printf("| op history (CIOQ_BENCH_HISTORY=%s) | %.0f bytes/op in Redis |\n", cmp.Or(os.Getenv("CIOQ_BENCH_HISTORY"), "1"), histBytes)
		fmt.Printf("| (c) end-to-end latency at %.0f ops/s: p50 / p99 | %s / %s (%d ops) |\n\n", half,
			percentile(e2e, .5).Round(time.Millisecond), percentile(e2e, .99).Round(time.Millisecond), len(e2e))
		require.Zero(b, l.DuplicateOps)
	}
}

// historyBytesPerOp estimates the op history's Redis memory per op: MEMORY
// USAGE of up to 500 sampled history keys (their mean times n) plus every
// person index, divided by n. 0 when no history was written.
func historyBytesPerOp(tb testing.TB, c *redis.Client, n int) float64 {
	ctx := context.Background()
	var hKeys, pKeys []string
	for _, pat := range []string{"cioq:{default}:h:*", "cioq:{default}:hp:*"} {
		iter := c.Scan(ctx, 0, pat, 1000).Iterator()
		for iter.Next(ctx) {
			if strings.Contains(iter.Val(), ":hp:") {
				pKeys = append(pKeys, iter.Val())
			} else if len(hKeys) < 500 {
				hKeys = append(hKeys, iter.Val())
			}
		}
		require.NoError(tb, iter.Err())
	}
	if len(hKeys) == 0 {
		return 0
	}
	sum := func(keys []string) float64 {
		total := 0.0
		for _, k := range keys {
			m, err := c.MemoryUsage(ctx, k).Result()
			require.NoError(tb, err)
			total += float64(m)
		}
		return total
	}
	return sum(hKeys)/float64(len(hKeys)) + sum(pKeys)/float64(n)
}
