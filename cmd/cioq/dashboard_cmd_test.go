package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
)

func TestDashboardCmd(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	env := map[string]string{"CIOQ_MONITORING_USERNAME": "ops", "CIOQ_MONITORING_PASSWORD": "pw-s3cr3t"}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out, errOut syncBuffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"dashboard", "--addr", "127.0.0.1:0", "--redis", db.URL()},
			streams{in: strings.NewReader(""), out: &out, err: &errOut}, lookup)
	}()
	var base string
	require.Eventually(t, func() bool {
		if m := urlRE.FindStringSubmatch(errOut.String()); m != nil {
			base = strings.TrimSuffix(m[1], "/monitoring/")
			return true
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "dashboard logged no URL: %s", errOut.String())

	get := func(path string, auth bool) int {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if auth {
			req.SetBasicAuth("ops", "pw-s3cr3t")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get("/healthz", false))
	require.Equal(t, http.StatusOK, get("/readyz", false))
	require.Equal(t, http.StatusOK, get("/metrics", false))
	require.Equal(t, http.StatusUnauthorized, get("/monitoring/", false))
	require.Equal(t, http.StatusOK, get("/monitoring/", true))
	require.Equal(t, http.StatusOK, get("/monitoring/api/queues", true))

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("dashboard did not stop")
	}
	require.NotContains(t, errOut.String(), "pw-s3cr3t")
}

// Without credentials the dashboard (payloads, Redis INFO) only listens on
// loopback.
func TestDashboardCmd_NoCredentialsOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "dashboard", "--addr", ":0")
	require.Equal(t, exitUsage, r.code, r.outputs)
	require.Contains(t, r.stderr, "not a loopback address and no monitoring credentials")
	r = run(t, nil, "dashboard", "--addr", "10.0.0.1:8090")
	require.Equal(t, exitUsage, r.code, r.outputs)
}
