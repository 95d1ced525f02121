package fake_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/cioq/cioq/track/fake"
)

// BenchmarkBatch measures ops/s through the fake with 100-op batches, every
// op new, so the ledger grows as in a load test.
func BenchmarkBatch(b *testing.B) {
	srv := fake.NewServer(fake.Options{RequestLog: -1})
	defer srv.Close()
	const perBatch = 100
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ops := make([]any, perBatch)
		for i := range ops {
			ops[i] = event(fmt.Sprintf("u%d", n%1000), "buy", fmt.Sprintf("01JD%022d", n), map[string]any{"n": n})
			n++
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/batch", bytes.NewReader(batch(b, ops...)))
		req.SetBasicAuth(testSite, testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "ops/s")
	if got := srv.Ledger().UniqueOps; got != int64(n) {
		b.Fatalf("unique ops %d, want %d", got, n)
	}
}
