package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
}

// Health is the /health/customerio body: the seed's `customerio` object (the
// worst workspace) and every workspace by name.
type Health struct {
	Customerio CircuitStatus            `json:"customerio"`
	Workspaces map[string]CircuitStatus `json:"workspaces"`
}

// Health reports the breaker and credential state of every workspace, and
// whether Customer.io can be sent to (false when any circuit is open or any
// workspace is paused for bad credentials).
func (w *Worker) Health(ctx context.Context) (Health, bool) {
	h := Health{Workspaces: map[string]CircuitStatus{}}
	names := make([]string, 0, len(w.ws))
	for n := range w.ws {
		names = append(names, n)
	}
	sort.Strings(names)
	healthy := true
	rank := map[string]int{"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}
	for i, n := range names {
		st := w.breakers.Status(n)
		cs := CircuitStatus{CircuitState: st.State, FailureCount: st.FailureCount, LastFailure: st.LastFailure,
			Unauthorized: w.ws[n].unauthorized()}
		if !st.OpenUntil.IsZero() && st.State != "CLOSED" {
			u := st.OpenUntil
			cs.OpenUntil = &u
		}
		cs.RateBudget = w.ws[n].limit.Rate
		if rs, err := w.limiter.State(ctx, n, w.ws[n].limit); err == nil {
			cs.RateEffective, cs.CoolDownSeconds = rs.Rate, rs.CoolDown.Seconds()
		}
		if st.State == "OPEN" || cs.Unauthorized {
			healthy = false
		}
		h.Workspaces[n] = cs
		if i == 0 || rank[cs.CircuitState] > rank[h.Customerio.CircuitState] ||
			(cs.Unauthorized && !h.Customerio.Unauthorized) {
			h.Customerio = cs
		}
	}
	return h, healthy
}

// HTTPHandler serves /healthz (alive), /readyz (Redis reachable),
// /health/customerio (503 when a circuit is open or a key is rejected; not a
// liveness probe), GET /ops/{id} (an op's history, read-only) and /metrics
// from gatherer (nil: no /metrics).
func (w *Worker) HTTPHandler(gatherer prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := w.Ping(ctx); err != nil {
			writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"status": "unready", "reason": "redis: " + err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /health/customerio", func(rw http.ResponseWriter, r *http.Request) {
		h, ok := w.Health(r.Context())
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		writeJSON(rw, status, h)
	})
	mux.Handle("GET /ops/{id}", w.OpsHandler()) // history.go
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	}
	return mux
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
