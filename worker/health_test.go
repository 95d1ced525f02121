package worker_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	reg := prometheus.NewRegistry()
	w := e.startWorker(t, func(c *worker.Config) { c.Registerer = reg })
	srv := httptest.NewServer(w.HTTPHandler(reg))
	defer srv.Close()

	code, _ := get(t, srv.URL+"/healthz")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, srv.URL+"/readyz")
	require.Equal(t, http.StatusOK, code)

	code, body := get(t, srv.URL+"/health/customerio")
	require.Equal(t, http.StatusOK, code)
	var h map[string]map[string]any
	require.NoError(t, json.Unmarshal(body, &h), string(body))
	require.Equal(t, "CLOSED", h["customerio"]["circuit_state"])
	require.Contains(t, h["customerio"], "failure_count")
	require.Contains(t, h["customerio"], "last_failure")
	require.Nil(t, h["customerio"]["last_failure"])
	require.Contains(t, h["workspaces"], "default")
	require.Equal(t, 100.0, h["customerio"]["rate_budget"], "the configured budget")
	require.Equal(t, 100.0, h["customerio"]["rate_effective"], "no 429 yet: the fleet sends at its budget")

	// Customer.io down: the circuit opens and the endpoint says so with a 503.
	require.NoError(t, e.fake.SetFaults(fake.Faults{Down: true}))
	enqueueEvents(t, e.prod, "health", 200)
	require.Eventually(t, func() bool {
		code, _ := get(t, srv.URL+"/health/customerio")
		return code == http.StatusServiceUnavailable
	}, 20*time.Second, 50*time.Millisecond)
	_, body = get(t, srv.URL+"/health/customerio")
	require.NoError(t, json.Unmarshal(body, &h))
	require.Equal(t, "OPEN", h["customerio"]["circuit_state"])
	require.NotNil(t, h["customerio"]["last_failure"])
	require.GreaterOrEqual(t, h["customerio"]["failure_count"], float64(5))

	code, body = get(t, srv.URL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), "cioq_breaker_state")
	require.Contains(t, string(body), "cioq_requests_total")

	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.waitDrained(t, 60*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), 200)
}

// TestAPIKeyNeverLogged runs the worker through its error paths with debug
// logging and checks that neither the key nor its Basic-auth form appears.
func TestAPIKeyNeverLogged(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := e.startWorker(t, func(c *worker.Config) { c.Logger = logger; c.UnauthorizedPause = 200 * time.Millisecond })
	ctx := context.Background()
	for _, f := range []fake.Faults{{Unauthorized: true}, {Down: true}, {Storm429: true}, {RejectAttribute: "poison"}} {
		require.NoError(t, e.fake.SetFaults(f))
		enqueueEvents(t, e.prod, "keylog", 20)
		_, err := e.prod.Track(ctx, "keylog-bad", "x", map[string]any{"poison": 1})
		require.NoError(t, err)
		time.Sleep(700 * time.Millisecond)
	}
	require.NoError(t, e.fake.SetFaults(fake.Faults{}))
	e.waitDrained(t, 60*time.Second)
	h, _ := w.Health(ctx)
	hb, _ := json.Marshal(h)
	basic := base64.StdEncoding.EncodeToString([]byte(siteID + ":" + apiKey))
	for _, s := range []string{logs.String(), string(hb)} {
		require.NotContains(t, s, apiKey)
		require.NotContains(t, s, basic)
	}
	require.NotEmpty(t, logs.String(), "the error paths did log")
}
