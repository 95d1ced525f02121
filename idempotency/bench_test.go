package idempotency_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/redistest"
)

// BenchmarkClaimMarkDone measures what a worker's per-batch round trips
// cost Redis: one Claim and one MarkDone of 500 ops, by kind of op (events:
// not registered; identifies: registered at enqueue, their registration
// removed at MarkDone). It reports Redis CPU µs per op (INFO cpu), the
// figure docs/BENCHMARKS.md ("Order per person") quotes.
func BenchmarkClaimMarkDone(b *testing.B) {
	for _, kind := range []idempotency.Kind{idempotency.KindEvent, idempotency.KindIdentify} {
		b.Run(map[idempotency.Kind]string{idempotency.KindEvent: "Events", idempotency.KindIdentify: "Identifies"}[kind], func(b *testing.B) {
			db := redistest.New(b)
			store := idempotency.New(db.Client, idempotency.Config{Prefix: redistest.Prefix(b)})
			ctx := context.Background()
			const batch = 500
			var cpu float64
			ops := 0
			for i := 0; b.Loop(); i++ {
				items := make([]idempotency.Item, batch)
				for j := range items {
					items[j] = idempotency.Item{OpID: fmt.Sprintf("op-%d-%d", i, j), Person: "id:user-" + strconv.Itoa(j%5000),
						Kind: kind, Timestamp: 1764748800 + int64(j)}
				}
				stamps, err := store.Register(ctx, "ws", items) // the enqueue script's part
				if err != nil {
					b.Fatal(err)
				}
				for j := range items {
					items[j].Stamp = stamps[j]
				}
				c0 := redistest.CPUSeconds(b, db.Client)
				if _, err := store.Claim(ctx, "ws", items); err != nil {
					b.Fatal(err)
				}
				if err := store.MarkDone(ctx, "ws", items); err != nil {
					b.Fatal(err)
				}
				cpu += redistest.CPUSeconds(b, db.Client) - c0
				ops += batch
			}
			b.ReportMetric(1e6*cpu/float64(ops), "redis-µs/op")
		})
	}
}
