package main

import (
	"net/http"
	"strings"

	"github.com/cioq/cioq/internal/config"
)

// adminPrefixes are the worker paths that show personal data or Redis
// internals: the asynqmon dashboard (payloads, Redis INFO) and op lookups
// (person ids, often emails).
var adminPrefixes = []string{"/monitoring/", "/ops/"}

// adminRefusal is the body of a refused admin request: it says how to get
// access, never what is behind.
const adminRefusal = "forbidden: /monitoring/ and /ops/ need credentials. Set CIOQ_MONITORING_USERNAME and " +
	"CIOQ_MONITORING_PASSWORD (basic auth), or serve them on a loopback admin listener with " +
	"--admin-addr 127.0.0.1:9091 (CIOQ_ADMIN_ADDR) and reach it with kubectl port-forward. See docs/operations.md.\n"

// guardAdmin protects the admin paths of next on a listener: with
// monitoring credentials they need HTTP basic auth; without, they are
// refused (403) with a hint. Every other path (health probes, metrics) is
// passed through.
func guardAdmin(next http.Handler, m config.Monitoring) http.Handler {
	if m.HasCredentials() {
		return basicAuth(next, m.Username, m.Password.Reveal(), adminPrefixes...)
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if isAdminPath(r.URL.Path) {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.WriteHeader(http.StatusForbidden)
			_, _ = rw.Write([]byte(adminRefusal))
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// isAdminPath reports whether path is under one of adminPrefixes (or is one
// without its trailing slash).
func isAdminPath(path string) bool {
	for _, p := range adminPrefixes {
		if strings.HasPrefix(path, p) || path == strings.TrimSuffix(p, "/") {
			return true
		}
	}
	return false
}

// adminAccess says, for the start-up log, how the admin paths are reached
// on the main listener.
func adminAccess(m config.Monitoring) string {
	if m.HasCredentials() {
		return "basic auth"
	}
	return "refused: no credentials (CIOQ_MONITORING_USERNAME/_PASSWORD)"
}
