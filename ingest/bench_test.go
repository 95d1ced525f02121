package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/track"
)

// BenchmarkIngest drives ingest (over real HTTP, with a real producer on
// Redis) with the seed's k6 scenario, identify then track per iteration,
// from 32 concurrent track.Clients, and reports requests/s and the p50/p99
// latency of one request (answered once its op is in Redis). The batch
// variant sends v2 batches of 100 ops, from 32 clients and from 4.
//
//	CIOQ_TEST_REDIS_ADDR=127.0.0.1:6379 go test -run '^$' -bench Ingest -benchtime 2000x ./ingest/
func BenchmarkIngest(b *testing.B) {
	b.Run("V1IdentifyTrack", func(b *testing.B) {
		benchIngest(b, func(ctx context.Context, c *track.Client, vu, i int) error {
			user := fmt.Sprintf("bench-%d-%d", vu, i)
			if i%2 == 0 {
				return c.Identify(ctx, user, map[string]any{"email": user + "@loadtest.example.com", "_load_test": true, "created_at": 1700000000})
			}
			return c.Track(ctx, user, track.Event{Name: "load_test_event", Data: map[string]any{"iteration": i, "vu": vu}})
		}, 1)
	})
	batch := func(ctx context.Context, c *track.Client, vu, i int) error {
		ops := make([]*track.Op, 100)
		for j := range ops {
			ops[j] = &track.Op{Identifiers: &track.Identifiers{ID: fmt.Sprintf("bb-%d-%d-%d", vu, i, j)},
				Action: track.ActionEvent, Name: "load_test_event", Attributes: map[string]any{"j": j}}
		}
		return c.Batch(ctx, ops)
	}
	b.Run("V2Batch100", func(b *testing.B) { benchIngest(b, batch, 100) })
	// The same batches from 4 clients: the latency of a request when the
	// machine is not saturated (at 32 clients the p99 is mostly queueing:
	// 32 requests in flight over the throughput).
	b.Run("V2Batch100Clients4", func(b *testing.B) { benchIngestVUs(b, 4, batch, 100) })
}

func benchIngest(b *testing.B, call func(ctx context.Context, c *track.Client, vu, i int) error, opsPerRequest int) {
	benchIngestVUs(b, 32, call, opsPerRequest)
}

// benchIngestVUs runs call from vus concurrent clients. Besides rates and
// latencies it reports the CPU per 1,000 ops of this process (clients,
// ingest and producer together) and of Redis.
func benchIngestVUs(b *testing.B, vus int, call func(ctx context.Context, c *track.Client, vu, i int) error, opsPerRequest int) {
	bd := setup(b, nil)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: vus, MaxConnsPerHost: vus}}
	c, err := track.NewClient(track.Config{SiteID: siteID, APIKey: apiKey, BaseURL: bd.srv.URL, HTTPClient: hc})
	require.NoError(b, err)
	ctx := context.Background()
	lat := make([][]time.Duration, vus)
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	b.ResetTimer()
	cpu0, redis0 := processCPU(), redistest.CPUSeconds(b, bd.db.Client)
	start := time.Now()
	var wg sync.WaitGroup
	for vu := range vus {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := call(ctx, c, vu, i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				lat[vu] = append(lat[vu], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, redisSec := processCPU()-cpu0, redistest.CPUSeconds(b, bd.db.Client)-redis0
	b.StopTimer()
	require.Zero(b, failed.Load(), "failed requests; first: %v", firstErr.Load())
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(b.N*opsPerRequest)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	kops := float64(b.N*opsPerRequest) / 1000
	b.ReportMetric(1000*cpu.Seconds()/kops, "proc-cpu-ms/kop")
	b.ReportMetric(1000*redisSec/kops, "redis-cpu-ms/kop")
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
