package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/ingest"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

const benchCDPKey = "bench-cdp-key"

// startBothChild runs the worker of BenchmarkPipelines (TestBenchPipelinesChild)
// in a process of its own, with a Track and a Pipelines sender.
func startBothChild(tb testing.TB, db *redistest.DB, trackURL, cdpURL string) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchPipelinesChild$")
	cmd.Env = append(os.Environ(), "CIOQ_BENCH_CHILD=cioq-both", "CIOQ_BENCH_REDIS="+db.Addr,
		"CIOQ_BENCH_DB="+strconv.Itoa(db.Index), "CIOQ_BENCH_URL="+trackURL, "CIOQ_BENCH_CDP_URL="+cdpURL)
	cmd.Stderr = os.Stderr
	require.NoError(tb, cmd.Start())
	c := &child{cmd: cmd}
	tb.Cleanup(func() { _ = c.cmd.Process.Kill(); _, _ = c.cmd.Process.Wait() })
	return c
}

// TestBenchPipelinesChild is the measured worker of BenchmarkPipelines; it
// does nothing unless CIOQ_BENCH_CHILD is "cioq-both": worker.New with its
// defaults, one workspace with both senders and one 100 req/s budget.
func TestBenchPipelinesChild(t *testing.T) {
	if os.Getenv("CIOQ_BENCH_CHILD") != "cioq-both" {
		t.Skip("helper process for BenchmarkPipelines")
	}
	idx, _ := strconv.Atoi(os.Getenv("CIOQ_BENCH_DB"))
	conn := asynq.RedisClientOpt{Addr: os.Getenv("CIOQ_BENCH_REDIS"), DB: idx}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	client, err := track.NewClient(track.Config{SiteID: benchSite, APIKey: benchKey, BaseURL: os.Getenv("CIOQ_BENCH_URL")})
	require.NoError(t, err)
	pl, err := cdp.NewClient(cdp.Config{APIKey: benchCDPKey, BaseURL: os.Getenv("CIOQ_BENCH_CDP_URL")})
	require.NoError(t, err)
	rdb := redis.NewClient(&redis.Options{Addr: conn.Addr, DB: idx, PoolSize: 64})
	w, err := worker.New(worker.Config{Redis: conn, Client: rdb, Workspaces: []worker.Workspace{{
		Name: producer.DefaultWorkspace, Sender: client, Pipelines: pl, Limit: ratelimit.Limit{Rate: budget},
	}}, History: benchHistory()})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	<-sig
	w.Shutdown()
}

// pathRun is one side's figures.
type pathRun struct {
	enqueueRate, rate             float64
	requests, accepted, opsPerReq float64
	maxPerSec, rateLimited, dupes int64
	workerCPU, redisCPU           float64 // ms per 1,000 ops
	ingestRate, ingestP99         float64 // ops/s, ms
	opBytes                       int
}

// BenchmarkPipelines measures the Pipelines path beside the Track path in
// one run, on one Redis, with one worker configuration (defaults, one
// workspace with both senders, one 100 req/s budget, op history on):
//
//	(a) delivery: a backlog of n Track events (producer.Track), then the
//	    worker in a child process delivering them into the fake Track API;
//	    then a backlog of n Pipelines track calls with the same person,
//	    event and properties (producer Op.Call), delivered into the fake
//	    Pipelines API by a fresh child;
//	(b) ingest: 32 concurrent clients posting batches of 100 ops, a Track
//	    v2 batch vs a Pipelines /v1/batch, answered once in Redis.
//
// The ratios Pipelines/Track are the figures to read: absolute rates move
// with the machine's load.
//
//	scripts/with-redis.sh go test -run '^$' -bench BenchmarkPipelines -benchtime 1x -timeout 20m ./loadtest/
func BenchmarkPipelines(b *testing.B) {
	n := benchOps()
	for range b.N {
		db := redistest.New(b)
		ctx := context.Background()
		trackSrv := stacktest.Fake(b, fake.Options{Credentials: map[string]string{benchSite: benchKey},
			RateLimit: budget, RequestLog: -1})
		cdpSrv := cdpfake.NewServer(cdpfake.Options{Keys: map[string]string{benchCDPKey: producer.DefaultWorkspace},
			RateLimit: budget, RequestLog: -1, MaxUsers: -1})
		b.Cleanup(cdpSrv.Close)
		p := stacktest.NewProducer(b, producer.Config{Redis: db.ConnOpt(), History: benchHistory()})

		props := func(i int) map[string]any { return map[string]any{"seq": i, "path": "/pricing"} }
		trackOp := func(i int) producer.Op {
			return producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: "user-" + strconv.Itoa(i%5000)},
				Name: "page_viewed", Attributes: props(i)}}
		}
		callOp := func(i int) producer.Op {
			return producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "user-" + strconv.Itoa(i%5000), Event: "page_viewed",
				Properties: props(i), MessageID: "bench-" + strconv.Itoa(i)}}
		}
		var tr, pl pathRun

		// (a) delivery, Track then Pipelines.
		deliver := func(side *pathRun, op func(int) producer.Op, unique func() int64) {
			t0 := time.Now()
			enqueueConcurrently(b, n, 16, func(i int) error {
				_, err := p.Enqueue(ctx, op(i))
				return err
			})
			side.enqueueRate = float64(n) / time.Since(t0).Seconds()
			w := startBothChild(b, db, trackSrv.URL, cdpSrv.URL)
			cpu0, wcpu0 := redistest.CPUSeconds(b, db.Client), w.cpu()
			t0 = time.Now()
			waitUntil(b, 5*time.Minute, func() bool { return unique() >= int64(n) })
			wall := time.Since(t0).Seconds()
			side.rate = float64(n) / wall
			k := float64(n) / 1000
			side.redisCPU = 1000 * (redistest.CPUSeconds(b, db.Client) - cpu0) / k
			side.workerCPU = 1000 * (w.cpu() - wcpu0) / k
			w.stop()
		}
		deliver(&tr, trackOp, func() int64 { return trackSrv.Ledger().UniqueOps })
		deliver(&pl, callOp, func() int64 { return cdpSrv.Ledger().UniqueCalls })
		tl, cl := trackSrv.Ledger(), cdpSrv.Ledger()
		tr.requests, tr.accepted, tr.maxPerSec, tr.rateLimited, tr.dupes = float64(tl.Requests), float64(tl.Accepted),
			int64(tl.MaxReceivedPerSecond), tl.RateLimited, tl.DuplicateOps
		tr.opsPerReq = float64(tl.OpsAccepted) / max(tr.accepted, 1)
		pl.requests, pl.accepted, pl.maxPerSec, pl.rateLimited, pl.dupes = float64(cl.Requests), float64(cl.Accepted),
			int64(cl.MaxReceivedPerSecond), cl.RateLimited, cl.DuplicateCalls
		pl.opsPerReq = float64(cl.CallsAccepted) / max(pl.accepted, 1)
		require.Zero(b, tl.DuplicateOps)
		require.Zero(b, cl.DuplicateCalls)
		require.EqualValues(b, n, cl.UniqueCalls)

		// What one op weighs in its request.
		o := trackOp(1).Op
		o.Timestamp, o.ID = time.Now().Unix(), "01JD4X7Q8M6Y2K3N5P7R9T1V3W"
		te, err := track.EncodeOp(&o)
		require.NoError(b, err)
		c := callOp(1).Call
		c.Timestamp = cdp.FormatTimestamp(time.Now())
		ce, err := cdp.EncodeCall(c)
		require.NoError(b, err)
		tr.opBytes, pl.opBytes = len(te), len(ce)

		// (b) ingest.
		tr.ingestRate, tr.ingestP99 = benchIngestPath(b, p, false)
		pl.ingestRate, pl.ingestP99 = benchIngestPath(b, p, true)

		b.ReportMetric(tr.rate, "track-ops/s")
		b.ReportMetric(pl.rate, "pipelines-ops/s")
		b.ReportMetric(pl.rate/tr.rate, "delivery-ratio")
		b.ReportMetric(pl.ingestRate/tr.ingestRate, "ingest-ratio")
		fmt.Printf("\n| measure (%d ops, budget %d req/s) | Track | Pipelines | Pipelines / Track |\n|---|---:|---:|---:|\n", n, budget)
		row := func(name, f string, a, b float64) {
			fmt.Printf("| %s | "+f+" | "+f+" | %.2f |\n", name, a, b, b/a)
		}
		row("(a) enqueue, producer, 16 goroutines, ops/s", "%.0f", tr.enqueueRate, pl.enqueueRate)
		row("(a) delivered end to end, ops/s", "%.0f", tr.rate, pl.rate)
		row("(a) requests", "%.0f", tr.requests, pl.requests)
		row("(a) ops per request", "%.0f", tr.opsPerReq, pl.opsPerReq)
		row("(a) CPU ms per 1,000 ops, worker process", "%.0f", tr.workerCPU, pl.workerCPU)
		row("(a) CPU ms per 1,000 ops, Redis", "%.0f", tr.redisCPU, pl.redisCPU)
		row("bytes of one op as sent", "%.0f", float64(tr.opBytes), float64(pl.opBytes))
		row("(b) ingest, batches of 100, 32 clients, ops/s", "%.0f", tr.ingestRate, pl.ingestRate)
		row("(b) ingest p99 per request, ms", "%.1f", tr.ingestP99, pl.ingestP99)
		fmt.Printf("| max requests in any 1 s / 429s / duplicates | %d / %d / %d | %d / %d / %d | |\n\n",
			tr.maxPerSec, tr.rateLimited, tr.dupes, pl.maxPerSec, pl.rateLimited, pl.dupes)
	}
}

// benchIngestPath posts 200 batches of 100 ops to an ingest handler on p
// from 32 clients (a Track v2 batch, or a Pipelines /v1/batch) and returns
// ops/s and the p99 of one request in ms.
func benchIngestPath(b *testing.B, p *producer.Producer, pipelines bool) (float64, float64) {
	h, err := ingest.New(ingest.Config{Producer: p, Workspaces: []ingest.Workspace{{Name: producer.DefaultWorkspace,
		SiteID: benchSite, APIKey: benchKey, PipelinesKey: benchCDPKey}}})
	require.NoError(b, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	const vus, requests, per = 32, 200, 100
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: vus, MaxConnsPerHost: vus}}
	tc, err := track.NewClient(track.Config{SiteID: benchSite, APIKey: benchKey, BaseURL: srv.URL, HTTPClient: hc})
	require.NoError(b, err)
	cc, err := cdp.NewClient(cdp.Config{APIKey: benchCDPKey, BaseURL: srv.URL, HTTPClient: hc})
	require.NoError(b, err)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx := context.Background()
	lat := make([]time.Duration, requests)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range vus {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				t0 := time.Now()
				var err error
				if pipelines {
					calls := make([]*cdp.Call, per)
					for j := range calls {
						calls[j] = &cdp.Call{Type: cdp.TypeTrack, UserID: fmt.Sprintf("ib-%d-%d", i, j), Event: "load_test_event",
							Properties: map[string]any{"j": j}, MessageID: fmt.Sprintf("%s-%d-%d", run, i, j)}
					}
					err = cc.Batch(ctx, calls)
				} else {
					ops := make([]*track.Op, per)
					for j := range ops {
						ops[j] = &track.Op{Identifiers: &track.Identifiers{ID: fmt.Sprintf("ib-%d-%d", i, j)},
							Action: track.ActionEvent, Name: "load_test_event", Attributes: map[string]any{"j": j}}
					}
					err = tc.Batch(ctx, ops)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	require.Nil(b, firstErr.Load())
	return float64(requests*per) / elapsed.Seconds(), float64(percentile(lat, .99).Microseconds()) / 1000
}
