package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/ingest"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

const (
	siteID = "site-1"
	apiKey = "key-1-secret"
	wsName = "ws1"
)

// bundle is ingest served over HTTP in front of a real producer on a leased
// Redis database.
type bundle struct {
	db   *redistest.DB
	prod *producer.Producer
	h    *ingest.Handler
	srv  *httptest.Server
	insp *asynq.Inspector
	// prefix is the producer's key prefix.
	prefix string
}

func setup(t testing.TB, mod func(*ingest.Config)) *bundle {
	t.Helper()
	db := redistest.New(t)
	prefix := redistest.Prefix(t)
	p, err := producer.New(producer.Config{Client: db.Client, KeyPrefix: prefix, Workspace: "unused"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	cfg := ingest.Config{Producer: p, Workspaces: []ingest.Workspace{{Name: wsName, SiteID: siteID, APIKey: apiKey}}}
	if mod != nil {
		mod(&cfg)
	}
	h, err := ingest.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	insp := asynq.NewInspector(db.ConnOpt())
	t.Cleanup(func() { _ = insp.Close() })
	return &bundle{db: db, prod: p, h: h, srv: srv, insp: insp, prefix: prefix}
}

// client returns the real Track API client pointed at ingest; header, when
// given, is added to every request (e.g. Idempotency-Key).
func (b *bundle) client(t testing.TB, site, key string, header http.Header) *track.Client {
	t.Helper()
	hc := &http.Client{Transport: headerTransport{header}}
	c, err := track.NewClient(track.Config{SiteID: site, APIKey: key, BaseURL: b.srv.URL, HTTPClient: hc})
	require.NoError(t, err)
	return c
}

type headerTransport struct{ h http.Header }

func (ht headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range ht.h {
		r.Header[k] = vs
	}
	return http.DefaultTransport.RoundTrip(r)
}

// queued is one enqueued task: its payload and its op decoded.
type queued struct {
	queue   string
	payload *task.Payload
	op      track.Op
}

// tasks returns every pending task, by task id.
func (b *bundle) tasks(t testing.TB) map[string]queued {
	t.Helper()
	out := map[string]queued{}
	crit, def := task.Lanes(wsName)
	for _, q := range []string{def, crit} {
		infos, err := b.insp.ListPendingTasks(q, asynq.PageSize(10000))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		require.NoError(t, err)
		for _, info := range infos {
			p, err := task.FromTask(asynq.NewTask(info.Type, info.Payload))
			require.NoError(t, err)
			var op track.Op
			dec := json.NewDecoder(bytes.NewReader(p.Op))
			dec.UseNumber()
			require.NoError(t, dec.Decode(&op))
			out[info.ID] = queued{queue: q, payload: p, op: op}
		}
	}
	return out
}

// newTasks returns the tasks not in before.
func (b *bundle) newTasks(t testing.TB, before map[string]queued) []queued {
	t.Helper()
	var out []queued
	for id, q := range b.tasks(t) {
		if _, ok := before[id]; !ok {
			out = append(out, q)
		}
	}
	return out
}

// do sends a raw request with Basic auth site:key (none when site is "").
func (b *bundle) do(t testing.TB, method, path, site, key string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if site != "" {
		req.SetBasicAuth(site, key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, got
}

// stubEnqueuer stands in for the producer where a test needs to hold or
// fail enqueues.
type stubEnqueuer struct {
	entered chan struct{}
	release chan struct{}
	err     error
}

func (s *stubEnqueuer) EnqueueAll(ctx context.Context, ops []producer.Op) ([]producer.Result, error) {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.release != nil {
		<-s.release
	}
	if s.err != nil {
		return nil, s.err
	}
	res := make([]producer.Result, len(ops))
	for i, op := range ops {
		res[i] = producer.Result{OpID: op.Key}
	}
	return res, nil
}

func newServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// startWorker starts a worker delivering b's queue for wsName to the fake
// Track API cio (as cio-site:cio-key): 200 requests/s (burst 20), batches
// of up to 200 ops or 20 ms, a 5 s request timeout; mod changes the rest.
func startWorker(t *testing.T, b *bundle, cio *fake.Server, mod func(*worker.Config)) *worker.Worker {
	t.Helper()
	cfg := stacktest.WorkerConfig(t, b.db, worker.Workspace{Name: wsName,
		Sender: stacktest.Sender(t, cio.URL, "cio-site", "cio-key", 5*time.Second),
		Limit:  ratelimit.Limit{Rate: 200, Burst: 20},
		Batch:  worker.BatchConfig{MaxOps: 200, MaxWait: 20 * time.Millisecond}})
	cfg.RequestTimeout = 5 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	return stacktest.StartWorker(t, cfg)
}
