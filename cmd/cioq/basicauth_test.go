package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusOK) })
	h := basicAuth(ok, "ops", "pw", "/monitoring/", "/ops/")
	for _, tt := range []struct {
		name, path, user, pass string
		auth                   bool
		want                   int
	}{
		{"HealthIsOpen", "/healthz", "", "", false, http.StatusOK},
		{"MetricsAreOpen", "/metrics", "", "", false, http.StatusOK},
		{"DashboardNeedsAuth", "/monitoring/", "", "", false, http.StatusUnauthorized},
		{"OpsNeedAuth", "/ops/01J", "", "", false, http.StatusUnauthorized},
		{"WrongPassword", "/monitoring/", "ops", "nope", true, http.StatusUnauthorized},
		{"WrongUser", "/ops/x", "root", "pw", true, http.StatusUnauthorized},
		{"RightCredentials", "/monitoring/api/queues", "ops", "pw", true, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.auth {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.want, rec.Code)
			if tt.want == http.StatusUnauthorized {
				require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Basic")
			}
		})
	}
}
