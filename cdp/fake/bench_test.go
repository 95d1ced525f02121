package fake_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
)

// BenchmarkBatch measures calls/s from cdp.Client through the fake with
// 100-call batches, every call new, so the ledger and the people's state
// grow as in a load test.
func BenchmarkBatch(b *testing.B) {
	srv := fake.NewServer(fake.Options{RequestLog: -1})
	defer srv.Close()
	c, err := cdp.NewClient(cdp.Config{APIKey: "k", BaseURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	const perBatch = 100
	n := 0
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		calls := make([][]byte, perBatch)
		for i := range calls {
			calls[i], err = cdp.EncodeCall(&cdp.Call{
				Type: cdp.TypeTrack, UserID: fmt.Sprintf("u%d", n%1000), Event: "buy", MessageID: fmt.Sprint("m", n),
				Timestamp: "2024-01-02T03:04:05.678Z", Properties: map[string]any{"n": n},
			})
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := c.BatchEncoded(ctx, calls); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "calls/s")
	if got := srv.Ledger().UniqueCalls; got != int64(n) {
		b.Fatalf("unique calls %d, want %d", got, n)
	}
}
