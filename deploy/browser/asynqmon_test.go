package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// chromiumPath is Debian's chromium unless CIOQ_CHROMIUM names another.
func chromiumPath() string {
	if p := os.Getenv("CIOQ_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// monitoredWorker starts a real worker on a leased Redis database with
// wantCritical suppress ops and wantDefault identify ops queued, both queues
// paused so the sizes hold still, and serves the worker's HTTP handler with
// asynqmon mounted read-only under /monitoring/ as `cioq worker` does.
func monitoredWorker(t *testing.T, wantCritical, wantDefault int) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	db := redistest.New(t)

	p, err := producer.New(producer.Config{Redis: db.ConnOpt()})
	require.NoError(t, err)
	for i := range wantCritical {
		_, err := p.Suppress(ctx, fmt.Sprintf("person-c%d", i))
		require.NoError(t, err)
	}
	for i := range wantDefault {
		_, err := p.Identify(ctx, fmt.Sprintf("person-d%d", i), map[string]any{"plan": "pro"})
		require.NoError(t, err)
	}
	require.NoError(t, p.Close(ctx))

	insp := asynq.NewInspector(db.ConnOpt())
	t.Cleanup(func() { _ = insp.Close() })
	for _, q := range []string{task.QueueCritical, task.QueueDefault} {
		require.NoError(t, insp.PauseQueue(q), "pause %s", q)
	}

	fakeAPI := fake.NewServer(fake.Options{Credentials: map[string]string{"site-1": "key-1"}})
	t.Cleanup(fakeAPI.Close)
	client, err := track.NewClient(track.Config{SiteID: "site-1", APIKey: "key-1", BaseURL: fakeAPI.URL, Timeout: time.Second})
	require.NoError(t, err)
	rdb := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{
		Redis: db.ConnOpt(), Client: rdb,
		Workspaces: []worker.Workspace{{
			Name: producer.DefaultWorkspace, Sender: client,
			Limit: ratelimit.Limit{Rate: 100, Burst: 10},
		}},
		Concurrency: 10, Servers: 1, CriticalConcurrency: 2,
		ShutdownTimeout: 5 * time.Second,
		Registerer:      reg,
	})
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)

	// As cmd/cioq/worker_cmd.go mounts it.
	mux := w.HTTPHandler(reg)
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: db.ConnOpt(), ReadOnly: true})
	t.Cleanup(func() { _ = mon.Close() })
	mux.Handle(mon.RootPath()+"/", mon)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// browser starts headless Chromium with the flags this machine needs (no
// background networking: outside connections are refused here) or skips.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no Chromium at %s (%v): the asynqmon UI was NOT checked in a browser; "+
			"`make browser-test` installs Debian's chromium and runs this test", path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	// The first call starts Chromium; its context must carry no timeout.
	require.NoError(t, chromedp.Do(bctx), "start Chromium at %s", path)
	// Generous: the page is a single-page app on a busy 2-core machine.
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// queueRow is one row of asynqmon's queues table as the page shows it.
type queueRow struct {
	Queue, State, Size string
}

// readQueuesJS reads the queues table: the header names the columns, each
// body row is one queue.
const readQueuesJS = `(() => {
  for (const table of document.querySelectorAll("table")) {
    const heads = Array.from(table.querySelectorAll("thead th")).map(th => th.innerText.trim());
    const q = heads.indexOf("Queue"), st = heads.indexOf("State"), sz = heads.indexOf("Size");
    if (q < 0 || sz < 0) continue;
    return Array.from(table.querySelectorAll("tbody tr")).map(tr => {
      const c = Array.from(tr.cells).map(td => td.innerText.trim());
      return {Queue: c[q] || "", State: st < 0 ? "" : (c[st] || ""), Size: c[sz] || ""};
    });
  }
  return [];
})()`

func TestAsynqmonListsQueuesWithSizes(t *testing.T) {
	t.Parallel()
	ctx := browser(t) // skips before anything else when Chromium is missing
	const wantCritical, wantDefault = 3, 7
	srv := monitoredWorker(t, wantCritical, wantDefault)

	shown := func() string {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		return body
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/monitoring/")), "open %s/monitoring/", srv.URL)
	// The UI is a single-page app: wait until its table has both queues.
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`(() => { const t = document.body.innerText; return t.includes("critical") && t.includes("default") && document.querySelectorAll("table tbody tr").length >= 2; })()`,
		chromedp.WithPollingInterval(200*time.Millisecond)))
	require.NoError(t, err, "asynqmon never listed both queues; the page showed:\n%s", shown())
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	require.Contains(t, strings.ToLower(title), "asynq")
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]queueRow](readQueuesJS))
	require.NoError(t, err)

	got := map[string]queueRow{}
	for _, r := range rows {
		got[r.Queue] = r
	}
	want := map[string]queueRow{
		task.QueueCritical: {Queue: task.QueueCritical, State: "paused", Size: fmt.Sprint(wantCritical)},
		task.QueueDefault:  {Queue: task.QueueDefault, State: "paused", Size: fmt.Sprint(wantDefault)},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("asynqmon queues table (-want +got):\n%s\npage:\n%s", d, shown())
	}

	// Read-only: the API behind the page refuses changes.
	req, err := http.NewRequest(http.MethodDelete, srv.URL+"/monitoring/api/queues/"+task.QueueDefault, nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "asynqmon must be read-only")
}
