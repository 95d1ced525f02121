package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/track/fake"
)

var (
	workerURLRE = regexp.MustCompile(`msg="worker http listening" url=(http://\S+)`)
	adminURLRE  = regexp.MustCompile(`msg="worker admin listening" url=(http://\S+)`)
)

// startWorker runs `cioq worker` with env and extra args on a leased Redis
// database against a fake Track API until the test ends; it returns the
// main and admin base URLs ("" when none) and the log.
func startWorker(t *testing.T, env map[string]string, args ...string) (base, admin string, log *syncBuffer) {
	t.Helper()
	db := redistest.New(t)
	cio := fake.NewServer(fake.Options{Credentials: map[string]string{"site-1": testKey}})
	t.Cleanup(cio.Close)
	full := credsEnv("CUSTOMERIO_TRACK_URL", cio.URL)
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	log = &syncBuffer{}
	lookup := func(k string) (string, bool) { v, ok := full[k]; return v, ok }
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, append([]string{"worker", "--addr", "127.0.0.1:0", "--redis", db.URL(), "--queue-metrics", "off"}, args...),
			streams{in: strings.NewReader(""), out: &out, err: log}, lookup)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			require.Equal(t, exitOK, code, log.String())
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	})
	require.Eventually(t, func() bool { return workerURLRE.MatchString(log.String()) }, 30*time.Second, 10*time.Millisecond,
		"worker logged no URL: %s", log.String())
	base = workerURLRE.FindStringSubmatch(log.String())[1]
	if m := adminURLRE.FindStringSubmatch(log.String()); m != nil {
		admin = m[1]
	}
	return base, admin, log
}

func status(t *testing.T, url string, user, pass string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// By default the admin paths (/monitoring/: asynqmon with Redis INFO;
// /ops/{id}: person ids) are refused on the worker's listener; health and
// metrics stay open. The start-up log says so.
func TestWorker_AdminPathsRefusedByDefault(t *testing.T) {
	t.Parallel()
	base, admin, log := startWorker(t, nil)
	require.Empty(t, admin)
	for _, p := range []string{"/healthz", "/readyz", "/health/customerio", "/metrics"} {
		require.Equal(t, http.StatusOK, status(t, base+p, "", ""), p)
	}
	for _, p := range []string{"/monitoring/", "/monitoring/api/redis_info", "/monitoring/api/queues", "/ops/01JD0000000000000000000001", "/monitoring", "/ops/"} {
		require.Equal(t, http.StatusForbidden, status(t, base+p, "", ""), p)
		require.Equal(t, http.StatusForbidden, status(t, base+p, "ops", "guess"), p)
	}
	require.Contains(t, log.String(), `admin_access="refused: no credentials`)
	require.Contains(t, log.String(), "worker admin paths refused: no monitoring credentials and no admin listener")
}

// With credentials the admin paths need them on the worker's listener.
func TestWorker_AdminPathsWithCredentials(t *testing.T) {
	t.Parallel()
	base, _, log := startWorker(t, map[string]string{"CIOQ_MONITORING_USERNAME": "ops", "CIOQ_MONITORING_PASSWORD": "pw-6f2a"})
	require.Equal(t, http.StatusUnauthorized, status(t, base+"/monitoring/", "", ""))
	require.Equal(t, http.StatusUnauthorized, status(t, base+"/ops/x", "ops", "wrong"))
	require.Equal(t, http.StatusOK, status(t, base+"/monitoring/", "ops", "pw-6f2a"))
	require.Equal(t, http.StatusOK, status(t, base+"/healthz", "", ""))
	require.Contains(t, log.String(), `admin_access="basic auth"`)
	require.NotContains(t, log.String(), "pw-6f2a")
}

// --admin-addr on loopback serves the admin paths there without auth, and
// the main listener still refuses them.
func TestWorker_AdminListenerOnLoopback(t *testing.T) {
	t.Parallel()
	base, admin, log := startWorker(t, nil, "--admin-addr", "127.0.0.1:0")
	require.NotEmpty(t, admin, log.String())
	require.Equal(t, http.StatusOK, status(t, admin+"/monitoring/", "", ""))
	require.Equal(t, http.StatusNotFound, status(t, admin+"/ops/01JD0000000000000000000001", "", ""), "served (no such op), not refused")
	require.Equal(t, http.StatusForbidden, status(t, base+"/monitoring/", "", ""))
	require.Contains(t, log.String(), `admin_access="none (loopback only)"`)
	require.NotContains(t, log.String(), "worker admin paths refused")
}

// Without credentials the admin listener may not leave loopback.
func TestWorker_AdminListenerOffLoopbackNeedsCredentials(t *testing.T) {
	t.Parallel()
	r := run(t, credsEnv("CIOQ_ADMIN_ADDR", "0.0.0.0:9091"), "worker")
	require.Equal(t, exitUsage, r.code, r.outputs)
	require.Contains(t, r.stderr, "must be on loopback")
}
