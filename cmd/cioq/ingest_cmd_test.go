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
	ctx := context.Background()
	in := startIngestCmd(t, env, db.URL())
	base, errOut := in.base, in.errOut

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

	in.stop(t)
	require.NotContains(t, errOut.String(), "in-key-secret")
	// No spool configured: said at start, with what it means and the fix.
	require.Contains(t, errOut.String(), `level=WARN msg="ingest has no spool: while Redis is unreachable every request is answered 503"`)
	require.Contains(t, errOut.String(), "CIOQ_SPOOL_DIR")
	require.Contains(t, errOut.String(), "spool=false")
}

// `cioq ingest --help` states what running without a spool means.
func TestIngestCmd_HelpStatesTheSpoolDefault(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "ingest", "--help")
	require.Equal(t, exitOK, r.code, r.outputs)
	help := strings.Join(strings.Fields(r.stdout), " ")
	require.Contains(t, help, "Without a spool (spool.dir, CIOQ_SPOOL_DIR: unset by default)")
	require.Contains(t, help, "every request is answered 503")
	require.Contains(t, help, "logs a warning at start when no spool is configured")
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

// ingestCmd is a `cioq ingest` running in the test process.
type ingestCmd struct {
	base   string
	errOut *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// startIngestCmd runs `cioq ingest --addr 127.0.0.1:0 --redis redisURL` with
// env and waits for the URL it logs.
func startIngestCmd(t *testing.T, env map[string]string, redisURL string) *ingestCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	in := &ingestCmd{errOut: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	var out syncBuffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	go func() {
		in.done <- execute(ctx, []string{"ingest", "--addr", "127.0.0.1:0", "--redis", redisURL},
			streams{in: strings.NewReader(""), out: &out, err: in.errOut}, lookup)
	}()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if m := urlRE.FindStringSubmatch(in.errOut.String()); m != nil {
			in.base = m[1]
			return in
		}
		select {
		case code := <-in.done:
			t.Fatalf("ingest exited with %d: %s", code, in.errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("ingest logged no URL: %s", in.errOut.String())
	return nil
}

// stop cancels the command and requires a clean exit.
func (in *ingestCmd) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case code := <-in.done:
		require.Equal(t, exitOK, code, in.errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not stop")
	}
}
