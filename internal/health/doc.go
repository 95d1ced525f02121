// Package health serves the endpoints every cioq server command answers
// beside its API: /healthz (the process is alive), /readyz (named checks,
// 503 with the first failure's reason) and /metrics (a Prometheus
// gatherer), and writes their JSON bodies.
//
//	mux := health.NewMux(health.Config{
//		Checks:   []health.Check{{Name: "redis", Func: ping}},
//		Gatherer: reg,
//	})
//	mux.Handle("/", api)
package health
