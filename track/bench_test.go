package track_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/cioq/cioq/track"
)

func benchOp() *track.Op {
	return &track.Op{
		Identifiers: &track.Identifiers{ID: "user-123456"}, Action: track.ActionEvent, Name: "purchase",
		ID: "01HZX0000000000000000000AA", Timestamp: 1700000000,
		Attributes: map[string]any{"amount": 19.99, "currency": "EUR", "sku": "A-1", "qty": 2,
			"tags": []any{"a", "b"}, "meta": map[string]any{"source": "web", "campaign": "spring"}},
	}
}

func BenchmarkEncodeOp(b *testing.B) {
	op := benchOp()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := track.EncodeOp(op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateRawOp(b *testing.B) {
	raw, err := track.EncodeOp(benchOp())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := track.ValidateRawOp(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatchEncoded(b *testing.B) {
	raw, err := track.EncodeOp(benchOp())
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprint(n, "ops"), func(b *testing.B) {
			bundle := setup(b, func(http.ResponseWriter, *http.Request) {}, track.Config{})
			ops := make([][]byte, n)
			for i := range ops {
				ops[i] = raw
			}
			b.ReportAllocs()
			b.SetBytes(int64(track.EncodedBatchSize(ops)))
			for b.Loop() {
				if err := bundle.client.BatchEncoded(b.Context(), ops); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
