// Package validate checks cioq's Kubernetes manifests and deploy/ files
// offline, with no kubectl and no cluster: `make k8s-validate`.
//
// It renders every kustomization under k8s/ (base, each overlay and the
// prometheus-adapter rules) with kustomize's own Go library (krusty), decodes
// each object strictly into its typed Kubernetes API struct (an unknown or
// misspelt field fails), and checks what a schema cannot see:
//
//   - probes point at endpoints the worker serves (/healthz, /readyz, read
//     from worker/health.go), never at /health/customerio;
//   - the HPA and KEDA metric names resolve, through the prometheus-adapter
//     rules, to metrics declared in internal/metrics/metrics.go;
//   - env var, ConfigMap and Secret key names are cioq's config names
//     (internal/config), and the Track API key comes only from a Secret;
//   - every container runs as non-root with a read-only root filesystem, no
//     privilege escalation and no capabilities;
//   - the Prometheus alert rules and the Grafana dashboard query only metrics
//     that exist, and promtool accepts the rules and config (skipped, saying
//     so, where promtool is not installed).
//
// It is its own Go module (github.com/cioq/cioq/k8s/validate) so kustomize
// and k8s.io/api never enter cioq's go.mod, and it runs without -race.
package validate
