// Package stacktest builds, for tests, the stack an op passes end to end: a
// Redis namespace (internal/redistest), the fake Track API (track/fake), a
// producer and a worker sending to the fake. Each piece is closed or shut
// down at the test's cleanup. It is imported only by _test.go files.
//
//	s := stacktest.New(t, stacktest.Options{})
//	s.StartWorker(t, nil)
//	_, err := s.Producer.Identify(ctx, "u1", map[string]any{"plan": "pro"})
//	// ... wait for s.Fake.Ledger().UniqueOps == 1
//
// The pieces are also there alone (Fake, Sender, NewProducer, WorkerConfig,
// StartWorker) for tests that put them together differently: several
// workspaces, the Pipelines API, a producer that ingest drives.
package stacktest
