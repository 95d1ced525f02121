package health

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultTimeout bounds one /readyz answer when Config.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Check is one named readiness check.
type Check struct {
	// Name prefixes the reason /readyz gives when Func fails
	// ("redis: dial tcp ..."). Empty means the error alone.
	Name string
	// Func returns nil while the process is ready.
	Func func(ctx context.Context) error
}

// Config says what a health mux serves.
type Config struct {
	// Checks run in order on each /readyz; the first that fails answers 503.
	// None means /readyz always answers ready.
	Checks []Check
	// Gatherer is served on /metrics. Nil means no /metrics.
	Gatherer prometheus.Gatherer
	// MetricsErrors is what /metrics does when gathering fails. Zero means
	// promhttp.HTTPErrorOnError (a 500).
	MetricsErrors promhttp.HandlerErrorHandling
	// Timeout bounds the checks of one /readyz. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Status is the body of /healthz and /readyz.
type Status struct {
	// Status is "ok" (/healthz), "ready" or "unready" (/readyz).
	Status string `json:"status"`
	// Reason says why /readyz is unready.
	Reason string `json:"reason,omitempty"`
}

// NewMux returns a mux serving GET /healthz (Alive), GET /readyz (Ready)
// and, with a Gatherer, GET /metrics (Metrics). Callers add their own
// routes to it.
func NewMux(cfg Config) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", Alive())
	mux.Handle("GET /readyz", Ready(cfg))
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", Metrics(cfg))
	}
	return mux
}

// Alive answers 200 {"status":"ok"}: the process is alive.
func Alive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, Status{Status: "ok"})
	})
}

// Ready answers 200 {"status":"ready"} while every check of cfg passes,
// else 503 {"status":"unready","reason":...} with the first failure's
// reason.
func Ready(cfg Config) http.Handler {
	timeout := cmp.Or(cfg.Timeout, DefaultTimeout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		for _, c := range cfg.Checks {
			if err := c.Func(ctx); err != nil {
				reason := err.Error()
				if c.Name != "" {
					reason = c.Name + ": " + reason
				}
				WriteJSON(w, http.StatusServiceUnavailable, Status{Status: "unready", Reason: reason})
				return
			}
		}
		WriteJSON(w, http.StatusOK, Status{Status: "ready"})
	})
}

// Metrics serves cfg.Gatherer in the Prometheus exposition format.
func Metrics(cfg Config) http.Handler {
	return promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{ErrorHandling: cfg.MetricsErrors})
}

// WriteJSON answers status with v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
