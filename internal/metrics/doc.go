// Package metrics holds every Prometheus metric cioq exports, by name, in one
// place (docs/metrics.md is the catalogue). Metrics are registered on the
// prometheus.Registerer the caller passes; there is no default registry.
package metrics
