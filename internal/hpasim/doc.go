// Package hpasim models the Kubernetes HorizontalPodAutoscaler (autoscaling/v2)
// and replays traffic through it against a model of cioq's workers, so the
// seed's HPA and cioq's rate-aware signal can be compared offline
// (`cioq sim hpa`, docs/scaling.md).
//
// The controller model follows pkg/controller/podautoscaler: a sync every
// 15 s; per metric a proposal (Resource utilization and Pods average with
// the missing/unready pod rules, External AverageValue as
// ceil(value/target), all within a 0.1 tolerance); the largest proposal;
// stabilization windows (scale up to the lowest recommendation of the up
// window, down to the highest of the down window); rate policies (Pods and
// Percent per periodSeconds, selectPolicy Max/Min/Disabled); min/max.
//
//	a, _ := hpasim.New(hpasim.SeedHPA())
//	d := a.Sync(hpasim.Observation{At: 15 * time.Second, Replicas: 2, Pods: pods})
//	// d.Desired is the new replica count.
//
// The worker model is deliberately small: each ready pod delivers a fixed
// ops/s; the workspace accepts at most budget × ops per request; what the
// pods could send beyond that is counted as over-budget requests (429s with
// per-pod limiters, limiter waits with cioq's shared one). New pods serve
// after a startup delay. Metrics are read without pipeline lag.
package hpasim
