package loadtest_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
)

// BenchmarkGroupAggregation measures the design cioq did not choose: asynq's
// own group aggregation, groups sharded to get past its one-batch-per-group-
// per-check pace. Each aggregated task stands for one batch request (the
// handler only counts its ops), so this is an upper bound for that design.
// It reports ops/s and the time from enqueue to the aggregated handler.
func BenchmarkGroupAggregation(b *testing.B) {
	// One group paces at ~1,000 ops/s, so this side uses at most 20,000 ops.
	n := min(benchOps(), 20000)
	for _, shards := range []int{1, 32} {
		b.Run(fmt.Sprintf("groups=%d", shards), func(b *testing.B) {
			for range b.N {
				db := redistest.New(b)
				c := asynq.NewClient(db.ConnOpt())
				b.Cleanup(func() { _ = c.Close() })
				enqueueConcurrently(b, n, 16, func(i int) error {
					payload := strconv.FormatInt(time.Now().UnixNano(), 10)
					_, err := c.Enqueue(asynq.NewTask("op", []byte(payload)), asynq.Queue("grouped"),
						asynq.Group("ws-"+strconv.Itoa(i%shards)))
					return err
				})
				var done atomic.Int64
				var latSum, latMax atomic.Int64
				srv := asynq.NewServer(db.ConnOpt(), asynq.Config{
					Concurrency: 100, Queues: map[string]int{"grouped": 1}, LogLevel: asynq.ErrorLevel,
					TaskCheckInterval: 50 * time.Millisecond,
					GroupGracePeriod:  time.Second, GroupMaxDelay: time.Second, GroupMaxSize: 1000,
					GroupAggregator: asynq.GroupAggregatorFunc(func(group string, tasks []*asynq.Task) *asynq.Task {
						// The aggregated payload keeps the earliest enqueue time of each op.
						var buf []byte
						for _, t := range tasks {
							buf = append(buf, t.Payload()...)
							buf = append(buf, ',')
						}
						return asynq.NewTask("batch", buf)
					}),
				})
				t0 := time.Now()
				require.NoError(b, srv.Start(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
					now := time.Now().UnixNano()
					ops := 0
					for _, f := range splitComma(t.Payload()) {
						v, _ := strconv.ParseInt(string(f), 10, 64)
						d := now - v
						latSum.Add(d)
						for old := latMax.Load(); d > old && !latMax.CompareAndSwap(old, d); old = latMax.Load() {
						}
						ops++
					}
					done.Add(int64(ops))
					return nil
				})))
				waitUntil(b, 5*time.Minute, func() bool { return done.Load() >= int64(n) })
				rate := float64(n) / time.Since(t0).Seconds()
				srv.Shutdown()
				b.ReportMetric(rate, "ops/s")
				b.ReportMetric(float64(latMax.Load())/1e6, "max-wait-ms")
				fmt.Printf("| asynq group aggregation, %d group(s) of up to 1,000 | %.0f ops/s | longest op wait %s |\n",
					shards, rate, time.Duration(latMax.Load()).Round(time.Millisecond))
			}
		})
	}
}

func splitComma(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == ',' {
			if i > start {
				out = append(out, b[start:i])
			}
			start = i + 1
		}
	}
	return out
}
