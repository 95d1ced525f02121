package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/ingest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

const eventULID = "01JD0000000000000000000001"

// Every Track API call of the real client, pointed at ingest, queues the v2
// op it means: the client that speaks to Customer.io works unchanged.
func TestTrackClient_EveryEndpointQueuesItsOp(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	c := b.client(t, siteID, apiKey, nil)
	critLane, defLane := task.Lanes(wsName)
	id := func(s string) *track.Identifiers { return &track.Identifiers{ID: s} }
	tests := []struct {
		name      string
		call      func(ctx context.Context) error
		want      []track.Op // ID and Timestamp checked apart
		wantQueue string
		wantTS    int64 // 0: stamped by the producer (non-zero)
	}{
		{"Identify", func(ctx context.Context) error {
			return c.Identify(ctx, "u1", map[string]any{"plan": "pro", "_timestamp": 1700000001})
		}, []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionIdentify,
			Attributes: map[string]any{"plan": "pro"}}}, defLane, 1700000001},
		{"IdentifyByEmail", func(ctx context.Context) error {
			return c.Identify(ctx, "a@b.c", map[string]any{"n": 1})
		}, []track.Op{{Type: "person", Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionIdentify,
			Attributes: map[string]any{"n": json.Number("1")}}}, defLane, 0},
		{"IdentifyByCioID", func(ctx context.Context) error {
			return c.Identify(ctx, "cio_x1", nil)
		}, []track.Op{{Type: "person", Identifiers: &track.Identifiers{CioID: "x1"}, Action: track.ActionIdentify}}, defLane, 0},
		{"Track", func(ctx context.Context) error {
			return c.Track(ctx, "u2", track.Event{Name: "purchase", ID: eventULID, Timestamp: 1700000002, Data: map[string]any{"amount": 10}})
		}, []track.Op{{Type: "person", Identifiers: id("u2"), Action: track.ActionEvent, Name: "purchase",
			Attributes: map[string]any{"amount": json.Number("10")}}}, defLane, 1700000002},
		{"TrackPage", func(ctx context.Context) error {
			return c.Track(ctx, "u3", track.Event{Name: "https://x.test/", Type: "page"})
		}, []track.Op{{Type: "person", Identifiers: id("u3"), Action: track.ActionPage, Name: "https://x.test/"}}, defLane, 0},
		{"TrackAnonymous", func(ctx context.Context) error {
			return c.TrackAnonymous(ctx, "anon-1", track.Event{Name: "viewed", Data: map[string]any{"page": "/"}})
		}, []track.Op{{Type: "person", Identifiers: &track.Identifiers{AnonymousID: "anon-1"}, Action: track.ActionEvent,
			Name: "viewed", Attributes: map[string]any{"page": "/"}}}, defLane, 0},
		{"Suppress", func(ctx context.Context) error { return c.Suppress(ctx, "u4") },
			[]track.Op{{Type: "person", Identifiers: id("u4"), Action: track.ActionSuppress}}, critLane, 0},
		{"Unsuppress", func(ctx context.Context) error { return c.Unsuppress(ctx, "u4") },
			[]track.Op{{Type: "person", Identifiers: id("u4"), Action: track.ActionUnsuppress}}, critLane, 0},
		{"Delete", func(ctx context.Context) error { return c.Delete(ctx, "u5") },
			[]track.Op{{Type: "person", Identifiers: id("u5"), Action: track.ActionDelete}}, critLane, 0},
		{"AddDevice", func(ctx context.Context) error {
			return c.AddDevice(ctx, "u6", track.V1Device{ID: "tok", Platform: "ios", LastUsed: 1700000000})
		}, []track.Op{{Type: "person", Identifiers: id("u6"), Action: track.ActionAddDevice,
			Device: &track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000}}}, defLane, 0},
		{"DeleteDevice", func(ctx context.Context) error { return c.DeleteDevice(ctx, "u6", "tok/2") },
			[]track.Op{{Type: "person", Identifiers: id("u6"), Action: track.ActionDeleteDevice, Device: &track.Device{Token: "tok/2"}}},
			defLane, 0},
		{"Merge", func(ctx context.Context) error {
			return c.Merge(ctx, track.Identifiers{ID: "a"}, track.Identifiers{Email: "b@c.d"})
		}, []track.Op{{Type: "person", Action: track.ActionMerge, Primary: id("a"), Secondary: &track.Identifiers{Email: "b@c.d"}}},
			defLane, 0},
		{"V2Entity", func(ctx context.Context) error {
			return c.Entity(ctx, &track.Op{Identifiers: id("u7"), Action: track.ActionScreen, Name: "home"})
		}, []track.Op{{Type: "person", Identifiers: id("u7"), Action: track.ActionScreen, Name: "home"}}, defLane, 0},
		{"V2Batch", func(ctx context.Context) error {
			return c.Batch(ctx, []*track.Op{
				{Identifiers: id("u8"), Action: track.ActionIdentify, Attributes: map[string]any{"k": "v"}, Timestamp: 1700000003},
				{Identifiers: &track.Identifiers{AnonymousID: "anon-2"}, Action: track.ActionEvent, Name: "clicked"},
				{Identifiers: id("u9"), Action: track.ActionAddRelationships,
					Relationships: []json.RawMessage{json.RawMessage(`{"identifiers":{"object_type_id":"1","object_id":"acme"}}`)}},
			})
		}, []track.Op{
			{Type: "person", Identifiers: id("u8"), Action: track.ActionIdentify, Attributes: map[string]any{"k": "v"}},
			{Type: "person", Identifiers: &track.Identifiers{AnonymousID: "anon-2"}, Action: track.ActionEvent, Name: "clicked"},
			{Type: "person", Identifiers: id("u9"), Action: track.ActionAddRelationships,
				Relationships: []json.RawMessage{json.RawMessage(`{"identifiers":{"object_type_id":"1","object_id":"acme"}}`)}},
		}, defLane, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.tasks(t)
			require.NoError(t, tt.call(context.Background()))
			got := b.newTasks(t, before)
			require.Len(t, got, len(tt.want))
			ops := make([]track.Op, len(got))
			byPerson := map[string]int{}
			for i, w := range tt.want {
				byPerson[w.Person().Key()] = i
			}
			for _, q := range got {
				i, ok := byPerson[q.op.Person().Key()]
				require.True(t, ok, "unexpected op for %s", q.op.Person().Key())
				require.Equal(t, tt.wantQueue, q.queue)
				require.Equal(t, wsName, q.payload.Workspace)
				if tt.wantTS != 0 && i == 0 {
					require.Equal(t, tt.wantTS, q.op.Timestamp)
				}
				require.NotZero(t, q.op.Timestamp, "the producer stamps a timestamp")
				if q.op.Action.IsEvent() {
					_, err := ulid.ParseStrict(q.op.ID)
					require.NoError(t, err, "event id %q is a ULID", q.op.ID)
				}
				op := q.op
				op.ID, op.Timestamp = "", 0
				ops[i] = op
			}
			if diff := cmp.Diff(tt.want, ops); diff != "" {
				t.Errorf("queued ops (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("EventIDIsKept", func(t *testing.T) {
		for _, q := range b.tasks(t) {
			if q.op.Name == "purchase" {
				require.Equal(t, eventULID, q.op.ID)
				require.Equal(t, eventULID, q.payload.OpID, "the event id is the op's idempotency key")
			}
		}
	})
}

// Rejected requests answer as Customer.io does and queue nothing.
func TestRejections_AnswerAsTheTrackAPIAndQueueNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const identify = "/api/v1/customers/u1"
	bigV1 := `{"name":"big","data":{"pad":"` + strings.Repeat("x", track.MaxV1BodyBytes) + `"}}`
	bigEntity := `{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"a":"` + strings.Repeat("x", track.MaxOpBytes) + `"}}`
	bigOp := `{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"a":"` + strings.Repeat("x", 900) + `"}}`
	bigBatch := `{"batch":[` + strings.Repeat(bigOp+",", track.MaxBatchBytes/len(bigOp)) + bigOp + `]}`
	// A v1 event that v1 takes but no v2 op can hold: cioq delivers in v2.
	overV2 := `{"name":"big","data":{"pad":"` + strings.Repeat("x", track.MaxOpBytes) + `"}}`
	tests := []struct {
		name, method, path, site, key, body string
		header                              http.Header
		wantStatus                          int
		wantMsg                             string
	}{
		{"NoAuth", http.MethodPut, identify, "", "", `{}`, nil, http.StatusUnauthorized, "unauthorized"},
		{"WrongKey", http.MethodPut, identify, siteID, "wrong", `{}`, nil, http.StatusUnauthorized, "unauthorized"},
		{"UnknownSite", http.MethodPut, identify, "other", apiKey, `{}`, nil, http.StatusUnauthorized, "unauthorized"},
		{"UnknownPath", http.MethodPost, "/api/v1/nope", siteID, apiKey, `{}`, nil, http.StatusNotFound, "not found"},
		{"WrongMethod", http.MethodGet, identify, siteID, apiKey, ``, nil, http.StatusMethodNotAllowed, "method not allowed"},
		{"WrongMethodV2", http.MethodGet, "/api/v2/batch", siteID, apiKey, ``, nil, http.StatusMethodNotAllowed, "method not allowed"},
		{"OversizeV1", http.MethodPost, "/api/v1/customers/u1/events", siteID, apiKey, bigV1, nil, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("v1 body must be at most %d bytes", track.MaxV1BodyBytes)},
		{"OversizeEntity", http.MethodPost, "/api/v2/entity", siteID, apiKey, bigEntity, nil, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("entity body must be at most %d bytes", track.MaxOpBytes)},
		{"OversizeBatch", http.MethodPost, "/api/v2/batch", siteID, apiKey, bigBatch, nil, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("batch body must be smaller than %d bytes", track.MaxBatchBytes)},
		{"V1EventOverV2OpLimit", http.MethodPost, "/api/v1/customers/u1/events", siteID, apiKey, overV2, nil, http.StatusBadRequest, "limit 32768"},
		{"InvalidJSONV1", http.MethodPut, identify, siteID, apiKey, `{"plan":`, nil, http.StatusBadRequest, "JSON object"},
		{"InvalidJSONEvent", http.MethodPost, "/api/v1/customers/u1/events", siteID, apiKey, `{"name":`, nil, http.StatusBadRequest, "malformed event"},
		{"InvalidJSONEntity", http.MethodPost, "/api/v2/entity", siteID, apiKey, `{"type":`, nil, http.StatusBadRequest, "malformed JSON"},
		{"InvalidJSONBatch", http.MethodPost, "/api/v2/batch", siteID, apiKey, `{"batch":[`, nil, http.StatusBadRequest, "malformed JSON"},
		{"EmptyBatch", http.MethodPost, "/api/v2/batch", siteID, apiKey, `{"batch":[]}`, nil, http.StatusBadRequest, "at least one op"},
		{"InvalidUTF8V1", http.MethodPut, identify, siteID, apiKey, "{\"a\":\"\xff\"}", nil, http.StatusBadRequest, "UTF-8"},
		{"InvalidUTF8Batch", http.MethodPost, "/api/v2/batch", siteID, apiKey,
			"{\"batch\":[{\"type\":\"person\",\"identifiers\":{\"id\":\"u\xff\"},\"action\":\"identify\"}]}", nil, http.StatusBadRequest, "UTF-8"},
		{"InvalidOpV1", http.MethodPost, "/api/v1/customers/u1/events", siteID, apiKey, `{"data":{}}`, nil, http.StatusBadRequest, "name"},
		{"InvalidOpEntity", http.MethodPost, "/api/v2/entity", siteID, apiKey, `{"type":"person","action":"identify"}`, nil,
			http.StatusBadRequest, "identifiers"},
		{"IdempotencyKeyTooLong", http.MethodPut, identify, siteID, apiKey, `{}`,
			http.Header{ingest.IdempotencyKeyHeader: {strings.Repeat("k", ingest.MaxIdempotencyKeyBytes+1)}}, http.StatusBadRequest, "Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := b.do(t, tt.method, tt.path, tt.site, tt.key, []byte(tt.body), tt.header)
			require.Equal(t, tt.wantStatus, status, "body %.300s", body)
			require.Contains(t, track.ErrorMessage(body), tt.wantMsg, "a Track API error body: %.300s", body)
			if status == http.StatusUnauthorized {
				require.NotEmpty(t, hdr.Get("WWW-Authenticate"))
			}
			if status == http.StatusMethodNotAllowed {
				require.NotEmpty(t, hdr.Get("Allow"))
			}
		})
	}
	t.Run("BatchAllInvalid", func(t *testing.T) {
		status, _, body := b.do(t, http.MethodPost, "/api/v2/batch", siteID, apiKey,
			[]byte(`{"batch":[{"type":"person","action":"identify"},{"type":"person","identifiers":{"id":"u"},"action":"nope"}]}`), nil)
		require.Equal(t, http.StatusBadRequest, status)
		var br track.BatchResponse
		require.NoError(t, json.Unmarshal(body, &br))
		require.Equal(t, []int{0, 1}, []int{br.Errors[0].Index, br.Errors[1].Index})
	})
	t.Run("TrackClientSeesUnauthorized", func(t *testing.T) {
		err := b.client(t, siteID, "wrong", nil).Identify(context.Background(), "u1", nil)
		require.ErrorIs(t, err, track.ErrUnauthorized)
	})
	t.Run("NothingWasQueued", func(t *testing.T) {
		require.Empty(t, b.tasks(t))
	})
}

// A batch with some invalid ops queues the valid ones and reports the
// others by batch_index (207), as the Track API does.
func TestBatch_PartialFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	c := b.client(t, siteID, apiKey, nil)
	ops := [][]byte{
		[]byte(`{"type":"person","identifiers":{"id":"p1"},"action":"identify","attributes":{"a":1}}`),
		[]byte(`{"type":"person","action":"identify"}`),
		[]byte(`{"type":"person","identifiers":{"id":"p2"},"action":"event","name":"` + strings.Repeat("n", 101) + `"}`),
		[]byte(`{"type":"person","identifiers":{"id":"p3"},"action":"delete"}`),
	}
	err := c.BatchEncoded(context.Background(), ops)
	var be *track.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, http.StatusMultiStatus, be.StatusCode)
	want := []track.ItemError{
		{Index: 1, Reason: track.ReasonInvalid, Field: "identifiers", Message: "are required"},
		{Index: 2, Reason: track.ReasonTooLarge, Field: "name", Message: "name is 101 bytes, limit 100"},
	}
	if diff := cmp.Diff(want, be.Items); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	got := map[string]track.Action{}
	for _, q := range b.tasks(t) {
		got[q.op.Person().Key()] = q.op.Action
	}
	require.Equal(t, map[string]track.Action{"id:p1": track.ActionIdentify, "id:p3": track.ActionDelete}, got)
}

// A retry with the same Idempotency-Key (or the same event id) queues
// nothing new and still answers 200.
func TestIdempotency_RepeatQueuesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	keyed := b.client(t, siteID, apiKey, http.Header{ingest.IdempotencyKeyHeader: {"req-1"}})
	for range 3 {
		require.NoError(t, keyed.Identify(ctx, "i1", map[string]any{"plan": "pro"}))
	}
	require.Len(t, b.tasks(t), 1)

	batchKeyed := b.client(t, siteID, apiKey, http.Header{ingest.IdempotencyKeyHeader: {"req-2"}})
	batch := []*track.Op{
		{Identifiers: &track.Identifiers{ID: "i2"}, Action: track.ActionEvent, Name: "a"},
		{Identifiers: &track.Identifiers{ID: "i2"}, Action: track.ActionEvent, Name: "b"},
	}
	for range 2 {
		require.NoError(t, batchKeyed.Batch(ctx, batch))
	}
	tasks := b.tasks(t)
	require.Len(t, tasks, 3)
	var keys []string
	eventIDs := map[string]bool{}
	for _, q := range tasks {
		keys = append(keys, q.payload.OpID)
		if q.op.Action.IsEvent() {
			eventIDs[q.op.ID] = true
		}
	}
	require.ElementsMatch(t, []string{"req-1", "req-2:0", "req-2:1"}, keys)
	require.Len(t, eventIDs, 2, "each batch op has its own event id")

	plain := b.client(t, siteID, apiKey, nil)
	for range 2 {
		require.NoError(t, plain.Track(ctx, "i3", track.Event{Name: "once", ID: "01JD0000000000000000000009"}))
		require.NoError(t, plain.Track(ctx, "i3", track.Event{Name: "once-too", ID: "not-a-ulid"}))
	}
	tasks = b.tasks(t)
	require.Len(t, tasks, 5, "an event's id is its key")
	for _, q := range tasks {
		if q.op.Name == "once-too" {
			require.Equal(t, "not-a-ulid", q.payload.OpID)
			_, err := ulid.ParseStrict(q.op.ID)
			require.NoError(t, err, "a non-ULID id is replaced by a ULID derived from it")
		}
	}
}

// One client may hold at most MaxConcurrentPerClient requests; more are
// answered 429 with a Track API body, and the client's retry succeeds.
func TestPerClientConcurrencyCap(t *testing.T) {
	t.Parallel()
	stub := &stubEnqueuer{entered: make(chan struct{}, 8), release: make(chan struct{})}
	h, err := ingest.New(ingest.Config{Producer: stub, MaxConcurrentPerClient: 2,
		Workspaces: []ingest.Workspace{{Name: wsName, SiteID: siteID, APIKey: apiKey}, {Name: "ws2", SiteID: "site-2", APIKey: "k2"}}})
	require.NoError(t, err)
	b := &bundle{h: h, srv: newServer(t, h)}
	var wg sync.WaitGroup
	statuses := make(chan int, 2)
	for i := range 2 {
		wg.Go(func() {
			status, _, _ := b.do(t, http.MethodPut, fmt.Sprintf("/api/v1/customers/c%d", i), siteID, apiKey, []byte(`{}`), nil)
			statuses <- status
		})
	}
	<-stub.entered
	<-stub.entered // both requests are in flight, held in Enqueue

	status, hdr, body := b.do(t, http.MethodPut, "/api/v1/customers/c3", siteID, apiKey, []byte(`{}`), nil)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Contains(t, track.ErrorMessage(body), "too many concurrent requests")
	require.Equal(t, "1", hdr.Get("Retry-After"))

	other := make(chan int, 1)
	go func() {
		s, _, _ := b.do(t, http.MethodPut, "/api/v1/customers/c4", "site-2", "k2", []byte(`{}`), nil)
		other <- s
	}()
	<-stub.entered // another client is not capped by the first one's requests
	close(stub.release)
	wg.Wait()
	require.Equal(t, http.StatusOK, <-statuses)
	require.Equal(t, http.StatusOK, <-statuses)
	require.Equal(t, http.StatusOK, <-other)
	status, _, _ = b.do(t, http.MethodPut, "/api/v1/customers/c3", siteID, apiKey, []byte(`{}`), nil)
	require.Equal(t, http.StatusOK, status, "slots are given back")
}

// When the queue does not take an op, the client gets a retryable 503.
func TestQueueUnavailable_Answers503(t *testing.T) {
	t.Parallel()
	t.Run("ProducerFails", func(t *testing.T) {
		t.Parallel()
		stub := &stubEnqueuer{err: fmt.Errorf("boom: %w", producer.ErrUnavailable)}
		h, err := ingest.New(ingest.Config{Producer: stub, Workspaces: []ingest.Workspace{{Name: wsName, SiteID: siteID, APIKey: apiKey}}})
		require.NoError(t, err)
		b := &bundle{h: h, srv: newServer(t, h)}
		status, hdr, body := b.do(t, http.MethodPost, "/api/v2/batch", siteID, apiKey,
			[]byte(`{"batch":[{"type":"person","identifiers":{"id":"a"},"action":"delete"},{"type":"person","identifiers":{"id":"b"},"action":"delete"}]}`), nil)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, "1", hdr.Get("Retry-After"))
		require.Contains(t, track.ErrorMessage(body), "queue unavailable")
		err = b.client(t, siteID, apiKey, nil).Suppress(context.Background(), "x")
		require.True(t, track.IsRetryable(err), "the track client retries it: %v", err)
	})
	t.Run("ProducerClosed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		require.NoError(t, b.prod.Close(context.Background()))
		err := b.client(t, siteID, apiKey, nil).Identify(context.Background(), "u1", nil)
		require.ErrorIs(t, err, track.ErrServer)
		require.Empty(t, b.tasks(t))
	})
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	ready := errors.New("redis: connection refused")
	var mu sync.Mutex
	h, err := ingest.New(ingest.Config{Producer: &stubEnqueuer{},
		Workspaces: []ingest.Workspace{{Name: wsName, SiteID: siteID, APIKey: apiKey}},
		Ready: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return ready
		}})
	require.NoError(t, err)
	b := &bundle{h: h, srv: newServer(t, h)}
	status, _, _ := b.do(t, http.MethodGet, "/healthz", "", "", nil, nil)
	require.Equal(t, http.StatusOK, status)
	status, _, body := b.do(t, http.MethodGet, "/readyz", "", "", nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, string(body), "connection refused")
	mu.Lock()
	ready = nil
	mu.Unlock()
	status, _, _ = b.do(t, http.MethodGet, "/readyz", "", "", nil, nil)
	require.Equal(t, http.StatusOK, status)

	require.NoError(t, b.client(t, siteID, apiKey, nil).Suppress(context.Background(), "m1"))
	status, _, _ = b.do(t, http.MethodPut, "/api/v1/customers/m1", siteID, "bad", []byte(`{}`), nil)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, body = b.do(t, http.MethodGet, "/metrics", "", "", nil, nil)
	require.Equal(t, http.StatusOK, status)
	for _, want := range []string{
		`cioq_ingest_requests_total{path="/api/v1/customers/{id}/suppress",status="200"} 1`,
		`cioq_ingest_requests_total{path="/api/v1/customers/{id}",status="401"} 1`,
		`cioq_ingest_ops_total{action="suppress",api="track",outcome="queued",workspace="ws1"} 1`,
		`cioq_ingest_request_duration_seconds_count{path="/api/v1/customers/{id}/suppress"} 1`,
	} {
		require.Contains(t, string(body), want)
	}
	require.NotContains(t, string(body), apiKey)
}

func TestNew_Config(t *testing.T) {
	t.Parallel()
	_, err := ingest.New(ingest.Config{})
	require.ErrorIs(t, err, ingest.ErrInvalidConfig)
	_, err = ingest.New(ingest.Config{Producer: &stubEnqueuer{}, Workspaces: []ingest.Workspace{
		{Name: "a", SiteID: "s", APIKey: "k1"}, {Name: "b", SiteID: "s", APIKey: "k2"}}})
	require.ErrorIs(t, err, ingest.ErrInvalidConfig)
	require.ErrorContains(t, err, "used twice")
	_, err = ingest.New(ingest.Config{Producer: &stubEnqueuer{}, MaxConcurrentPerClient: -1,
		Workspaces: []ingest.Workspace{{Name: "a", SiteID: "s", APIKey: "k1"}}})
	require.ErrorIs(t, err, ingest.ErrInvalidConfig)
	w := ingest.Workspace{Name: "a", SiteID: "s", APIKey: "topsecret"}
	require.NotContains(t, fmt.Sprintf("%v %+v %#v %s", w, w, w, w), "topsecret")
}

// TestRequestIsAllOrNothing: a request whose enqueue fails queues none of
// its ops, so the client's retry (same body, no ids) queues each op once.
func TestRequestIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	body := []byte(`{"batch":[` +
		`{"type":"person","identifiers":{"id":"a"},"action":"identify","attributes":{"plan":"pro"}},` +
		`{"type":"person","identifiers":{"id":"b"},"action":"event","name":"signup"},` +
		`{"type":"person","identifiers":{"id":"c"},"action":"suppress"}]}`)
	// A stamp key of the wrong type makes the enqueue script fail, as a
	// Redis that refuses writes would.
	breakRedis := func(t *testing.T, b *bundle) (fix func()) {
		idem := idempotency.New(b.db.Client, idempotency.Config{Prefix: b.prefix})
		require.NoError(t, b.db.Client.RPush(ctx, idem.StampKey(wsName), "x").Err())
		return func() { require.NoError(t, b.db.Client.Del(ctx, idem.StampKey(wsName)).Err()) }
	}

	t.Run("FailedRequestQueuesNothingAndItsRetryQueuesEachOpOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *ingest.Config) { c.EnqueueTimeout = 300 * time.Millisecond })
		fix := breakRedis(t, b)
		status, _, _ := b.do(t, http.MethodPost, "/api/v2/batch", siteID, apiKey, body, nil)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Empty(t, b.tasks(t), "nothing of the failed request is queued")
		fix()
		status, _, _ = b.do(t, http.MethodPost, "/api/v2/batch", siteID, apiKey, body, nil)
		require.Equal(t, http.StatusOK, status)
		require.Len(t, b.tasks(t), 3, "the retry queues each op once")
	})
	t.Run("RedisBackWithinTheRequestAnswers200", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		fix := breakRedis(t, b)
		go func() { time.Sleep(300 * time.Millisecond); fix() }()
		status, _, _ := b.do(t, http.MethodPost, "/api/v2/batch", siteID, apiKey, body, nil)
		require.Equal(t, http.StatusOK, status, "ingest tried again with the same op ids")
		require.Len(t, b.tasks(t), 3)
	})
}

// TestLargeBatchIsOneEnqueue: a batch of thousands of small ops is queued in
// one step and answered (it used to take a round trip per op).
func TestLargeBatchIsOneEnqueue(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var sb strings.Builder
	sb.WriteString(`{"batch":[`)
	const n = 6918
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"type":"person","identifiers":{"id":"%d"},"action":"event","name":"e"}`, i)
	}
	sb.WriteString(`]}`)
	require.Less(t, sb.Len(), track.MaxBatchBytes)
	start := time.Now()
	status, _, body := b.do(t, http.MethodPost, "/api/v2/batch", siteID, apiKey, []byte(sb.String()), nil)
	t.Logf("%d ops answered in %s", n, time.Since(start))
	require.Equal(t, http.StatusOK, status, string(body))
	require.Len(t, b.tasks(t), n)
}
