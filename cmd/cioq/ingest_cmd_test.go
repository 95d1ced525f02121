package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

func TestIngestCmd_QueuesTrackCallsAndStopsOnSignal(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	env := map[string]string{"CUSTOMERIO_SITE_ID": "in-site", "CUSTOMERIO_TRACK_API_KEY": "in-key-secret",
		"CIOQ_KEY_PREFIX": redistest.Prefix(t)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out, errOut syncBuffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"ingest", "--addr", "127.0.0.1:0", "--redis", db.URL()},
			streams{in: strings.NewReader(""), out: &out, err: &errOut}, lookup)
	}()
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == "" && time.Now().Before(deadline); {
		if m := urlRE.FindStringSubmatch(errOut.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("ingest exited with %d: %s", code, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.NotEmpty(t, base, "ingest logged no URL: %s", errOut.String())

	c, err := track.NewClient(track.Config{SiteID: "in-site", APIKey: "in-key-secret", BaseURL: base})
	require.NoError(t, err)
	require.NoError(t, c.Identify(ctx, "u1", map[string]any{"plan": "pro"}))
	bad, err := track.NewClient(track.Config{SiteID: "in-site", APIKey: "wrong", BaseURL: base})
	require.NoError(t, err)
	require.ErrorIs(t, bad.Identify(ctx, "u2", nil), track.ErrUnauthorized)
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	insp := asynq.NewInspector(db.ConnOpt())
	defer insp.Close()
	tasks, err := insp.ListPendingTasks(task.QueueDefault)
	require.NoError(t, err)
	require.Len(t, tasks, 1)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not stop")
	}
	require.NotContains(t, errOut.String(), "in-key-secret")
}

// A stop lets the request in flight finish with its answer, and accepts no
// new connection.
func TestServeIngest_GracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "{}")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	o := ingestOptions{readTimeout: 10 * time.Second, headerTimeout: 5 * time.Second, writeTimeout: 30 * time.Second,
		idleTimeout: time.Second, shutdownTimeout: 30 * time.Second}
	go func() { served <- serveIngest(ctx, ln, h, o, slog.New(slog.DiscardHandler)) }()
	url := "http://" + ln.Addr().String() + "/api/v1/customers/u1"
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(url, "application/json", strings.NewReader("{}"))
		if err != nil {
			answered <- -1
			return
		}
		_ = resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-entered
	cancel()
	// The listener closes at once; the request in flight is still held.
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	}, 10*time.Second, 10*time.Millisecond, "new connections are refused")
	select {
	case <-served:
		t.Fatal("serveIngest returned with a request in flight")
	default:
	}
	close(release)
	require.Equal(t, http.StatusOK, <-answered)
	require.NoError(t, <-served)
}
