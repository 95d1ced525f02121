package cdp_test

import (
	"testing"

	"github.com/cioq/cioq/cdp"
)

// sdkCall is a track call as @customerio/cdp-analytics-node 0.5.9 sends it.
var sdkCall = []byte(`{"userId":"node-1-u1","event":"Purchase","type":"track","properties":{"amount":42,"currency":"EUR"},` +
	`"options":{},"integrations":{},"timestamp":"2024-01-02T03:04:05.678Z","context":{"library":{"name":"@customerio/cdp-analytics-node",` +
	`"version":"1.0.0-beta.22"}},"messageId":"node-next-1704164645678-3f0c8a7e-9b1d-4a43-8f7e-1a2b3c4d5e6f",` +
	`"_metadata":{"nodeVersion":"20.20.2","jsRuntime":"node"}}`)

// BenchmarkDecodeCall measures what ingest pays per SDK call: decode,
// validate, encode once.
func BenchmarkDecodeCall(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(sdkCall)))
	for b.Loop() {
		if _, _, err := cdp.DecodeCall(sdkCall, ""); err != nil {
			b.Fatal(err)
		}
	}
}
