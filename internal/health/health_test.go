package health_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/health"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(body)
}

func TestNewMux(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "health_test_total"}))
	tests := []struct {
		name     string
		cfg      health.Config
		path     string
		wantCode int
		wantBody string
	}{
		{"HealthzIsAlive", health.Config{Checks: []health.Check{{Name: "redis", Func: down}}}, "/healthz",
			http.StatusOK, "{\n  \"status\": \"ok\"\n}\n"},
		{"ReadyWithoutChecks", health.Config{}, "/readyz", http.StatusOK, "{\n  \"status\": \"ready\"\n}\n"},
		{"ReadyWhenEveryCheckPasses", health.Config{Checks: []health.Check{{Name: "redis", Func: ok}, {Name: "spool", Func: ok}}},
			"/readyz", http.StatusOK, "{\n  \"status\": \"ready\"\n}\n"},
		{"UnreadyNamesTheFirstFailure", health.Config{Checks: []health.Check{{Name: "spool", Func: ok}, {Name: "redis", Func: down}}},
			"/readyz", http.StatusServiceUnavailable, "{\n  \"status\": \"unready\",\n  \"reason\": \"redis: connection refused\"\n}\n"},
		{"UnnamedCheckGivesTheErrorAlone", health.Config{Checks: []health.Check{{Func: down}}},
			"/readyz", http.StatusServiceUnavailable, "{\n  \"status\": \"unready\",\n  \"reason\": \"connection refused\"\n}\n"},
		{"NoMetricsWithoutGatherer", health.Config{}, "/metrics", http.StatusNotFound, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body := get(t, health.NewMux(tt.cfg), tt.path)
			require.Equal(t, tt.wantCode, code)
			require.Equal(t, tt.wantBody, body)
		})
	}
	t.Run("MetricsFromGatherer", func(t *testing.T) {
		t.Parallel()
		code, body := get(t, health.NewMux(health.Config{Gatherer: reg}), "/metrics")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "health_test_total 0")
	})
	t.Run("ChecksGetADeadline", func(t *testing.T) {
		t.Parallel()
		var hasDeadline bool
		check := func(ctx context.Context) error { _, hasDeadline = ctx.Deadline(); return nil }
		code, _ := get(t, health.NewMux(health.Config{Checks: []health.Check{{Func: check}}}), "/readyz")
		require.Equal(t, http.StatusOK, code)
		require.True(t, hasDeadline)
	})
}
