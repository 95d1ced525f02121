package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/config"
	trackfake "github.com/cioq/cioq/track/fake"
)

var urlRE = regexp.MustCompile(`url=(http://\S+)`)

// startFakecio runs `cioq fakecio` until the test ends and returns its URL.
func startFakecio(t *testing.T, env map[string]string, args ...string) (string, func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, append([]string{"fakecio", "--addr", "127.0.0.1:0"}, args...),
			streams{in: strings.NewReader(""), out: &out, err: &errOut}, lookup)
	}()
	stop := func() result {
		cancel()
		select {
		case code := <-done:
			return result{code: code, stdout: out.String(), stderr: errOut.String()}
		case <-time.After(30 * time.Second):
			t.Fatal("fakecio did not stop within 30s of its context ending")
			return result{}
		}
	}
	t.Cleanup(func() { cancel() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := urlRE.FindStringSubmatch(errOut.String()); m != nil {
			return m[1], stop
		}
		select {
		case code := <-done:
			t.Fatalf("fakecio exited with %d: %s", code, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("fakecio logged no URL: %s", errOut.String())
	return "", nil
}

const batchBody = `{"batch":[{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"}}]}`

func postBatch(t *testing.T, base, site, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v2/batch", strings.NewReader(batchBody))
	require.NoError(t, err)
	req.SetBasicAuth(site, key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

const cdpBody = `{"batch":[{"type":"track","userId":"u1","event":"purchase","messageId":"m1"}]}`

// postCDP posts cdpBody to the Pipelines batch path with key, in strict
// mode, and returns the status.
func postCDP(t *testing.T, base, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/batch", strings.NewReader(cdpBody))
	require.NoError(t, err)
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(cdp.StrictModeHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// getJSON decodes the JSON answer of GET base+path into out.
func getJSON(t *testing.T, base, path string, out any) {
	t.Helper()
	resp, err := http.Get(base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}

func TestFakecio(t *testing.T) {
	t.Parallel()

	t.Run("ServesHealthReadinessAndMetrics", func(t *testing.T) {
		t.Parallel()
		base, stop := startFakecio(t, nil)
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/_fake/ledger"} {
			resp, err := http.Get(base + path)
			require.NoError(t, err)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, path)
		}
		r := stop()
		require.Equal(t, exitOK, r.code, r.stderr)
	})

	t.Run("ChecksConfiguredCredentialsAndStopsOnCancel", func(t *testing.T) {
		t.Parallel()
		base, stop := startFakecio(t, credsEnv())
		require.Equal(t, http.StatusUnauthorized, postBatch(t, base, "site-1", "wrong"))
		require.Equal(t, http.StatusOK, postBatch(t, base, "site-1", testKey))
		r := stop()
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stderr, "fake track api stopped")
		require.NotContains(t, r.stderr, testKey)
	})

	t.Run("AcceptsAnyCredentialsWhenUnset", func(t *testing.T) {
		t.Parallel()
		base, stop := startFakecio(t, nil)
		require.Equal(t, http.StatusOK, postBatch(t, base, "anything", "goes"))
		r := stop()
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stderr, "credentials=any")
	})

	t.Run("RateLimitAnswers429", func(t *testing.T) {
		t.Parallel()
		// One token a minute: the second request in a row cannot get one.
		base, stop := startFakecio(t, nil, "--rate", "0.016", "--burst", "1", "--retry-after")
		require.Equal(t, http.StatusOK, postBatch(t, base, "s", "k"))
		require.Equal(t, http.StatusTooManyRequests, postBatch(t, base, "s", "k"))
		require.Equal(t, exitOK, stop().code)
	})

	t.Run("ServesTheTrackAndPipelinesFakesOnOneListener", func(t *testing.T) {
		t.Parallel()
		base, stop := startFakecio(t, nil)
		require.Equal(t, http.StatusOK, postBatch(t, base, "site", "key"))
		require.Equal(t, http.StatusOK, postCDP(t, base, "any-key"))
		var tl trackfake.Ledger
		getJSON(t, base, "/_fake/ledger", &tl)
		require.Equal(t, int64(1), tl.UniqueOps)
		var cl cdpfake.Ledger
		getJSON(t, base, cdpfake.ControlPrefix+"ledger", &cl)
		require.Equal(t, int64(1), cl.UniqueCalls)
		require.Zero(t, cl.Permissive)
		r := stop()
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stderr, "cdp_credentials=any")
	})

	t.Run("ChecksThePipelinesKeyFromTheEnvironment", func(t *testing.T) {
		t.Parallel()
		const cdpKey = "cdp-s3cr3t-from-env"
		base, stop := startFakecio(t, map[string]string{"CUSTOMERIO_CDP_API_KEY": cdpKey})
		require.Equal(t, http.StatusUnauthorized, postCDP(t, base, "wrong"))
		require.Equal(t, http.StatusOK, postCDP(t, base, cdpKey))
		var cl cdpfake.Ledger
		getJSON(t, base, cdpfake.ControlPrefix+"ledger", &cl)
		require.Equal(t, int64(1), cl.PerWorkspace["default"].UniqueCalls)
		require.Equal(t, http.StatusOK, postBatch(t, base, "any-site", "any-key"), "Track credentials stay open")
		r := stop()
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stderr, "cdp_workspaces=1")
		require.NotContains(t, r.stderr, cdpKey)
	})

	t.Run("PipelinesRateLimitAnswers429", func(t *testing.T) {
		t.Parallel()
		base, stop := startFakecio(t, nil, "--cdp-rate", "0.016", "--cdp-burst", "1")
		require.Equal(t, http.StatusOK, postCDP(t, base, "k"))
		require.Equal(t, http.StatusTooManyRequests, postCDP(t, base, "k"))
		require.Equal(t, http.StatusOK, postBatch(t, base, "s", "k"), "the Track fake has its own budget")
		require.Equal(t, exitOK, stop().code)
	})

	t.Run("NegativeRateIsAUsageError", func(t *testing.T) {
		t.Parallel()
		r := run(t, nil, "fakecio", "--addr", "127.0.0.1:0", "--rate", "-1")
		require.Equal(t, exitUsage, r.code, r.outputs)
		r = run(t, nil, "fakecio", "--addr", "127.0.0.1:0", "--cdp-rate", "-1")
		require.Equal(t, exitUsage, r.code, r.outputs)
	})

	t.Run("BusyAddressFails", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		r := run(t, nil, "fakecio", "--addr", ln.Addr().String())
		require.Equal(t, exitFailure, r.code, r.outputs)
		require.Contains(t, r.stderr, "listen")
	})
}

func TestFakeCredentials(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Workspaces: []config.Workspace{
		{Name: "a", SiteID: "s1", APIKey: "k1"},
		{Name: "b", SiteID: "s2"},
		{Name: "c", SiteID: "s3", APIKey: "k3"},
	}}
	require.Equal(t, map[string]string{"s1": "k1", "s3": "k3"}, fakeCredentials(cfg))
	require.Nil(t, fakeCredentials(&config.Config{Workspaces: []config.Workspace{{Name: "default"}}}))
}

func TestFakeCDPKeys(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Workspaces: []config.Workspace{
		{Name: "a", CDPAPIKey: "c1"},
		{Name: "b"},
		{Name: "c", CDPAPIKey: "c3"},
	}}
	require.Equal(t, map[string]string{"c1": "a", "c3": "c"}, fakeCDPKeys(cfg))
	require.Nil(t, fakeCDPKeys(&config.Config{Workspaces: []config.Workspace{{Name: "default"}}}))
}

func TestListenURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want string }{
		{"0.0.0.0:8081", "http://127.0.0.1:8081"},
		{"[::]:8081", "http://127.0.0.1:8081"},
		{"127.0.0.1:9", "http://127.0.0.1:9"},
		{"[::1]:9", "http://[::1]:9"},
	}
	for _, tt := range tests {
		a, err := net.ResolveTCPAddr("tcp", tt.addr)
		require.NoError(t, err)
		require.Equal(t, tt.want, listenURL(a), tt.addr)
	}
}
