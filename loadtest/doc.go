// Package loadtest holds cioq's throughput and latency benchmarks (make
// bench) and the k6 script for the ingest API. The benchmarks run against a
// real Redis and the fake Track API, each measured side in a process of its
// own so its RSS is its own; docs/BENCHMARKS.md has the figures.
package loadtest
