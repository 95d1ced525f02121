package track_test

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
)

const (
	testSite = "site-abc"
	testKey  = "s3cr3t-api-key-0123456789"
)

// testAuth is the Authorization header every request must carry.
var testAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(testSite+":"+testKey))

// recorded is one request the test server saw.
type recorded struct {
	Method, Path, Auth, ContentType, UserAgent, Body string
}

// testBundle is a client wired to an httptest server.
type testBundle struct {
	client *track.Client
	srv    *httptest.Server

	conns atomic.Int32 // connections the server accepted

	mu   sync.Mutex
	reqs []recorded
}

func (b *testBundle) requests() []recorded {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]recorded(nil), b.reqs...)
}

// setup starts a server that records each request and then runs handler
// (nil: 200 with "{}"), and a client for it configured by cfg (SiteID,
// APIKey and BaseURL are filled in).
func setup(t testing.TB, handler http.HandlerFunc, cfg track.Config) *testBundle {
	t.Helper()
	if handler == nil {
		handler = reply(http.StatusOK, "{}")
	}
	b := &testBundle{}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		b.mu.Lock()
		b.reqs = append(b.reqs, recorded{
			Method: r.Method, Path: r.URL.EscapedPath(), Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"), Body: string(body),
		})
		b.mu.Unlock()
		handler(w, r)
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	cfg.SiteID, cfg.APIKey, cfg.BaseURL = testSite, testKey, b.srv.URL
	c, err := track.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	b.client = c
	return b
}

// reply answers status with body (and Content-Type JSON when body is set).
func reply(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}
