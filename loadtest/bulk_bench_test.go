package loadtest_test

import (
	"context"
	"fmt"
	"iter"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// bulkBenchOps is the size of the bulk import: CIOQ_BENCH_BULK_OPS, else
// 1,000,000.
func bulkBenchOps() int {
	if n, err := strconv.Atoi(os.Getenv("CIOQ_BENCH_BULK_OPS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// backfillOps yields n small track events (one import's worth) with
// deterministic keys, as `cioq import` derives them.
func backfillOps(run string, n int) iter.Seq[producer.Op] {
	return func(yield func(producer.Op) bool) {
		for i := range n {
			op := producer.Op{Key: run + "-" + strconv.Itoa(i), Op: track.Op{Action: track.ActionEvent,
				Identifiers: &track.Identifiers{ID: "bf-" + strconv.Itoa(i%100_000)}, Name: "backfilled",
				Attributes: map[string]any{"seq": i, "plan": "pro"}}}
			if !yield(op) {
				return
			}
		}
	}
}

// BenchmarkBulk measures, in one run on one Redis and one worker process
// (default settings, fake Track API at a 100 req/s budget): (a) the
// single-op path delivering CIOQ_BENCH_OPS ops (default 60,000), (b) a bulk
// import of CIOQ_BENCH_BULK_OPS ops (default 1,000,000) into the same
// workspace, enqueued first with EnqueueBulkSeq and then delivered, with
// live single ops enqueued at 20/s during the whole delivery: their
// end-to-end p99, the bulk rate and its ratio to (a), the worker's peak RSS.
func BenchmarkBulk(b *testing.B) {
	n, single := bulkBenchOps(), benchOps()
	for range b.N {
		db := redistest.New(b)
		ctx := context.Background()
		// A short request log: live requests are collected as they come,
		// so the fake never holds a million decoded ops.
		srv := fake.NewServer(fake.Options{Credentials: map[string]string{benchSite: benchKey},
			RateLimit: budget, RequestLog: 256, RequestLogOps: 20_000})
		b.Cleanup(srv.Close)
		p, err := producer.New(producer.Config{Redis: db.ConnOpt()})
		require.NoError(b, err)
		b.Cleanup(func() { _ = p.Close(ctx) })

		// (a) single-op path: the backlog first, then the worker.
		enqueueConcurrently(b, single, 16, func(i int) error {
			_, err := p.Track(ctx, "one-"+strconv.Itoa(i%5000), "page_viewed", map[string]any{"seq": i})
			return err
		})
		w1 := startChild(b, "cioq", db, srv.URL)
		t0 := time.Now()
		waitUntil(b, 5*time.Minute, func() bool { return srv.Ledger().UniqueOps >= int64(single) })
		singleRate := float64(single) / time.Since(t0).Seconds()
		w1.stop()
		srv.Reset()

		// (b) bulk: the whole import enqueued, then a fresh worker delivers
		// it while live single ops arrive at 20/s.
		t0 = time.Now()
		res, err := p.EnqueueBulkSeq(ctx, backfillOps("bf", n))
		require.NoError(b, err)
		require.Equal(b, n, res.Enqueued)
		enqWall := time.Since(t0).Seconds()
		w := startChild(b, "cioq", db, srv.URL)
		t0 = time.Now()
		live := newLiveProbe(srv)
		stopLive := live.run(ctx, b, p, 50*time.Millisecond)
		// UniqueOps ≤ bulk delivered + live sent: past n + sent, the
		// import is delivered.
		waitUntil(b, 10*time.Minute, func() bool { return srv.Ledger().UniqueOps-live.sentCount() >= int64(n) })
		bulkWall := time.Since(t0).Seconds()
		bulkRate := float64(n) / bulkWall
		stopLive()
		waitUntil(b, time.Minute, func() bool { live.collect(); return live.done() })
		l := srv.Ledger()
		e2e := live.latencies()
		rss := w.peakRSS()
		w.stop()

		b.ReportMetric(bulkRate, "bulk-ops/s")
		b.ReportMetric(singleRate, "single-ops/s")
		b.ReportMetric(bulkRate/singleRate, "ratio")
		b.ReportMetric(float64(percentile(e2e, .99).Milliseconds()), "live-p99-ms")
		b.ReportMetric(rss, "worker-MiB")
		fmt.Printf("\n| measure | value |\n|---|---|\n")
		fmt.Printf("| (a) single-op path, %d ops, 100 req/s budget | %.0f ops/s |\n", single, singleRate)
		fmt.Printf("| (b) bulk import, %d ops: enqueue (EnqueueBulkSeq) | %.0f ops/s (%.1f s, %d tasks) |\n", n, float64(n)/enqWall, enqWall, res.Tasks)
		fmt.Printf("| (b) bulk import: delivered | %.0f ops/s (%.1f s) |\n| ratio b/a | %.1f |\n", bulkRate, bulkWall, bulkRate/singleRate)
		fmt.Printf("| requests / ops per request (max) | %d / %.0f (%d) |\n", l.Requests, float64(l.OpsAccepted)/float64(max(l.Accepted, 1)), l.MaxOpsPerRequest)
		fmt.Printf("| max requests in any 1 s | %d |\n| 429s | %d |\n| duplicates | %d |\n", l.MaxReceivedPerSecond, l.RateLimited, l.DuplicateOps)
		fmt.Printf("| live single ops during (b): p50 / p99 / max | %s / %s / %s (%d ops) |\n",
			percentile(e2e, .5).Round(time.Millisecond), percentile(e2e, .99).Round(time.Millisecond),
			percentile(e2e, 1).Round(time.Millisecond), len(e2e))
		fmt.Printf("| worker peak RSS (whole run) | %.1f MiB |\n\n", rss)
		require.Zero(b, l.DuplicateOps)
		require.EqualValues(b, int64(n)+live.sentCount(), l.UniqueOps)
	}
}

// liveProbe enqueues live single ops and reads their delivery times from the
// fake's request log as they come.
type liveProbe struct {
	srv *fake.Server

	mu        sync.Mutex
	sent      map[string]time.Time // event id → enqueued
	delivered map[string]time.Duration
}

func newLiveProbe(srv *fake.Server) *liveProbe {
	return &liveProbe{srv: srv, sent: map[string]time.Time{}, delivered: map[string]time.Duration{}}
}

// run enqueues one live op every interval and collects deliveries until the
// returned stop is called.
func (l *liveProbe) run(ctx context.Context, tb testing.TB, p *producer.Producer, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			at := time.Now()
			r, err := p.Track(ctx, "live-"+strconv.Itoa(i%1000), "clicked", map[string]any{"seq": i})
			if err != nil {
				tb.Error(err)
				return
			}
			l.mu.Lock()
			l.sent[r.EventID] = at
			l.mu.Unlock()
			l.collect()
		}
	}()
	return func() { close(done); wg.Wait() }
}

// collect reads the fake's recent requests for live ops delivered.
func (l *liveProbe) collect() {
	reqs := l.srv.Requests()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range reqs {
		if len(r.Ops) > 100 { // a bulk request
			continue
		}
		for _, op := range r.Ops {
			if at, ok := l.sent[op.ID]; ok {
				if _, seen := l.delivered[op.ID]; !seen {
					l.delivered[op.ID] = r.Time.Sub(at)
				}
			}
		}
	}
}

func (l *liveProbe) sentCount() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.sent))
}

func (l *liveProbe) done() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.delivered) == len(l.sent)
}

func (l *liveProbe) latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]time.Duration, 0, len(l.delivered))
	for _, d := range l.delivered {
		out = append(out, d)
	}
	return out
}
