package producer_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/producer"
)

// BenchmarkEnqueue measures one Track call end to end against the test Redis
// (loopback), reporting latency percentiles. For comparison,
// BenchmarkBareAsynqEnqueue enqueues a task of the same size with asynq
// alone.
func BenchmarkEnqueue(b *testing.B) {
	db := redistest.New(b)
	p, err := producer.New(producer.Config{Redis: db.ConnOpt(), KeyPrefix: redistest.Prefix(b)})
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
		if _, err := p.Track(ctx, "u1", "purchase", data); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportPercentiles(b, lat)
}

// BenchmarkEnqueueConcurrent measures Enqueue from 64 concurrent callers
// (the group commit's case): ops/s and each call's p99.
func BenchmarkEnqueueConcurrent(b *testing.B) {
	db := redistest.New(b)
	p, err := producer.New(producer.Config{Redis: db.ConnOpt(), KeyPrefix: redistest.Prefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	data := map[string]any{"amount": 10, "currency": "EUR", "sku": "A-1"}
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			if _, err := p.Track(ctx, "u1", "purchase", data); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	reportPercentiles(b, lat)
}

func BenchmarkBareAsynqEnqueue(b *testing.B) {
	db := redistest.New(b)
	c := asynq.NewClientFromRedisClient(db.Client)
	ctx := context.Background()
	payload := make([]byte, 200)
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := c.EnqueueContext(ctx, asynq.NewTask("cio:event", payload), asynq.MaxRetry(25)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(at(0.50), "p50-us")
	b.ReportMetric(at(0.99), "p99-us")
}
