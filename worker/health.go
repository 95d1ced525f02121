package worker

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/internal/health"
)

// CircuitStatus is the seed's /health/customerio shape for one workspace,
// plus why a workspace is not sending.
type CircuitStatus struct {
	CircuitState string     `json:"circuit_state"`
	FailureCount int        `json:"failure_count"`
	LastFailure  *time.Time `json:"last_failure"`
	// OpenUntil is when an open circuit lets a probe through.
	OpenUntil *time.Time `json:"open_until,omitempty"`
	// Unauthorized is true while Customer.io rejects the workspace's key.
	Unauthorized bool `json:"unauthorized,omitempty"`
	// CoolDownSeconds is the remaining shared 429 cool-down.
	CoolDownSeconds float64 `json:"cooldown_seconds,omitempty"`
	// RateEffective is the request rate (req/s) every replica sends at: the
	// budget, or less while Customer.io answers 429 (omitted when Redis did
	// not answer).
	RateEffective float64 `json:"rate_effective,omitempty"`
	// RateBudget is the configured rate (req/s), the effective rate's ceiling.
	RateBudget float64 `json:"rate_budget,omitempty"`
	// Pipelines is the same for the workspace's Pipelines API requests
	// (their own circuit and credentials); absent when the worker has no
	// Pipelines sender for the workspace.
	Pipelines *CircuitStatus `json:"pipelines,omitempty"`
}

// Health is the /health/customerio body: the seed's `customerio` object (the
// worst workspace) and every workspace by name.
type Health struct {
	Customerio CircuitStatus            `json:"customerio"`
	Workspaces map[string]CircuitStatus `json:"workspaces"`
}

// Health reports the breaker and credential state of every workspace (and
// of its Pipelines requests), and whether Customer.io can be sent to (false
// when any circuit is open or any workspace is paused for bad credentials).
// The top-level `customerio` is the worst of them.
func (w *Worker) Health(ctx context.Context) (Health, bool) {
	h := Health{Workspaces: map[string]CircuitStatus{}}
	names := make([]string, 0, len(w.ws))
	for n := range w.ws {
		names = append(names, n)
	}
	sort.Strings(names)
	healthy := true
	rank := map[breaker.State]int{breaker.StateClosed: 0, breaker.StateHalfOpen: 1, breaker.StateOpen: 2}
	first := true
	worst := func(cs CircuitStatus) {
		state := breaker.State(cs.CircuitState)
		if state == breaker.StateOpen || cs.Unauthorized {
			healthy = false
		}
		if first || rank[state] > rank[breaker.State(h.Customerio.CircuitState)] ||
			(cs.Unauthorized && !h.Customerio.Unauthorized) {
			h.Customerio = cs
		}
		first = false
	}
	for _, n := range names {
		cs := w.ws[n].circuitStatus(ctx)
		worst(cs)
		if pl := w.pl[n]; pl != nil {
			ps := pl.circuitStatus(ctx)
			worst(ps)
			cs.Pipelines = &ps
		}
		h.Workspaces[n] = cs
	}
	return h, healthy
}

// circuitStatus is the breaker, credential and cool-down state of ws's
// requests.
func (ws *workspace) circuitStatus(ctx context.Context) CircuitStatus {
	st := ws.w.breakers.Status(ws.breakerKey)
	cs := CircuitStatus{CircuitState: string(st.State), FailureCount: st.FailureCount, LastFailure: st.LastFailure,
		Unauthorized: ws.unauthorized()}
	if !st.OpenUntil.IsZero() && st.State != breaker.StateClosed {
		u := st.OpenUntil
		cs.OpenUntil = &u
	}
	cs.RateBudget = ws.budget.Rate
	if rs, err := ws.w.limiter.State(ctx, ws.limitKey, ws.budget); err == nil {
		cs.RateEffective = rs.Rate
		if rs.CoolDown > 0 {
			cs.CoolDownSeconds = rs.CoolDown.Seconds()
		}
	}
	return cs
}

// HTTPHandler serves /healthz (alive), /readyz (Redis reachable),
// /health/customerio (503 when a circuit is open or a key is rejected; not a
// liveness probe), GET /ops/{id} (an op's history, read-only) and /metrics
// from gatherer (nil: no /metrics).
func (w *Worker) HTTPHandler(gatherer prometheus.Gatherer) *http.ServeMux {
	// The paths are spelled out here: k8s/validate reads the worker's probe
	// paths from this file.
	hc := health.Config{Checks: []health.Check{{Name: "redis", Func: w.Ping}},
		Gatherer: gatherer, MetricsErrors: promhttp.ContinueOnError}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", health.Alive())
	mux.Handle("GET /readyz", health.Ready(hc))
	if gatherer != nil {
		mux.Handle("GET /metrics", health.Metrics(hc))
	}
	mux.HandleFunc("GET /health/customerio", func(rw http.ResponseWriter, r *http.Request) {
		h, ok := w.Health(r.Context())
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		health.WriteJSON(rw, status, h)
	})
	mux.Handle("GET /ops/{id}", w.OpsHandler()) // history.go
	return mux
}
