package ingest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/ingest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
)

// cdpKey is the test workspace's Pipelines API key.
const cdpKey = "cdp-key-1-secret"

// withPipelines gives the test workspace a Pipelines API key.
func withPipelines(c *ingest.Config) { c.Workspaces[0].PipelinesKey = cdpKey }

var strict = http.Header{cdp.StrictModeHeader: {"1"}}

// post sends a Pipelines request with key as the Basic-auth user and a
// blank password ("" sends no auth).
func (b *bundle) post(t *testing.T, path, key string, body []byte, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	return b.do(t, http.MethodPost, path, key, "", body, header)
}

// pending returns every pending task of the test workspace's lanes, by
// task id, whatever its API (the payload only).
func (b *bundle) pending(t *testing.T) map[string]queued {
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
			out[info.ID] = queued{queue: q, payload: p}
		}
	}
	return out
}

// calls returns the queued Pipelines calls by messageId, with their payload.
func (b *bundle) calls(t *testing.T) map[string]queued {
	t.Helper()
	out := map[string]queued{}
	for _, q := range b.pending(t) {
		if q.payload.API != task.APIPipelines {
			continue
		}
		c, err := cdp.ValidateRawCall(q.payload.Op, "")
		require.NoError(t, err, "a queued Pipelines op is a valid call")
		out[c.MessageID] = q
	}
	return out
}

// errorsOf decodes a Pipelines error body.
func errorsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var eb cdp.ErrorBody
	require.NoError(t, json.Unmarshal(body, &eb), string(body))
	return eb.Meta.Errors
}

// Every single-call path queues its call with the type the path sets, the
// messageId and timestamp as sent, as the Track action and person it means.
func TestPipelines_EverySingleCallPathQueuesItsCall(t *testing.T) {
	t.Parallel()
	b := setup(t, withPipelines)
	critLane, defLane := task.Lanes(wsName)
	tests := []struct {
		path       string
		body       string
		wantAction string
		wantQueue  string
		wantPerson string
	}{
		{"/v1/identify", `{"userId":"u1","traits":{"plan":"pro"}}`, "identify", defLane, "id:u1"},
		{"/v1/track", `{"userId":"a@b.c","event":"Purchase","properties":{"amount":10}}`, "event", defLane, "email:a@b.c"},
		{"/v1/track", `{"userId":"u2","event":"User Suppressed"}`, "suppress", critLane, "id:u2"},
		{"/v1/page", `{"anonymousId":"anon-1","name":"Pricing"}`, "page", defLane, "anonymous_id:anon-1"},
		{"/v1/screen", `{"userId":"cio_3","name":"Cart"}`, "screen", defLane, "cio_id:3"},
		{"/v1/group", `{"userId":"u1","groupId":"acme","traits":{"object_type_id":"1"}}`, "add_relationships", defLane, "id:u1"},
		{"/v1/alias", `{"userId":"u1","previousId":"anon-1"}`, "merge", defLane, "id:u1"},
	}
	for i, tt := range tests {
		msgID := fmt.Sprintf("single-%d", i)
		body := `{"type":"track","messageId":"` + msgID + `","timestamp":"2024-01-02T03:04:05.678Z",` + tt.body[1:]
		status, _, got := b.post(t, tt.path, cdpKey, []byte(body), nil)
		require.Equal(t, http.StatusOK, status, "%s: %s", tt.path, got)
		require.Equal(t, "{}", string(got))
		q, ok := b.calls(t)[msgID]
		require.True(t, ok, "%s queued its call", tt.path)
		require.Equal(t, tt.wantQueue, q.queue, tt.path)
		require.Equal(t, tt.wantAction, string(q.payload.Action), tt.path)
		require.Equal(t, tt.wantPerson, q.payload.Person, tt.path)
		require.Equal(t, msgID, q.payload.OpID, "the messageId is the op id")
		c, err := cdp.ValidateRawCall(q.payload.Op, "")
		require.NoError(t, err)
		require.Equal(t, cdp.TypeFromPath(tt.path), c.Type, "the path sets the type")
		require.Equal(t, "2024-01-02T03:04:05.678Z", c.Timestamp)
	}
}

// A batch's calls are queued together, with the batch's context and
// integrations folded into each; the Go SDK's top-level messageId and
// sentAt are not calls.
func TestPipelines_BatchFoldsTheBatchContextIntoEveryCall(t *testing.T) {
	t.Parallel()
	b := setup(t, withPipelines)
	body := `{"batch":[
	  {"type":"identify","messageId":"b-1","userId":"u1","traits":{"plan":"pro"},"context":{"ip":"10.0.0.1"}},
	  {"type":"track","messageId":"b-2","userId":"u1","event":"E","_metadata":{"nodeVersion":"20"}}
	],"context":{"library":{"name":"cdp-analytics-go"},"ip":"10.0.0.9"},"integrations":{"All":true},
	"messageId":"batch-1","sentAt":"2024-01-02T03:04:05Z"}`
	status, _, got := b.post(t, cdp.BatchPath, cdpKey, []byte(body), nil)
	require.Equal(t, http.StatusOK, status, string(got))
	calls := b.calls(t)
	require.Len(t, calls, 2)
	first, err := cdp.ValidateRawCall(calls["b-1"].payload.Op, "")
	require.NoError(t, err)
	require.Equal(t, "10.0.0.1", first.Context["ip"], "the call's own context wins")
	require.Equal(t, map[string]any{"name": "cdp-analytics-go"}, first.Context["library"])
	require.Equal(t, map[string]any{"All": true}, first.Integrations)
	second, err := cdp.ValidateRawCall(calls["b-2"].payload.Op, "")
	require.NoError(t, err)
	require.Equal(t, "10.0.0.9", second.Context["ip"])
	require.Contains(t, second.Extra, "_metadata", "fields cdp does not name travel on")
	_, err = cdp.ParseTimestamp(second.Timestamp)
	require.NoError(t, err, "a call without a timestamp gets one at enqueue")
}

// A wrong, missing or Track key gets 401 with the Pipelines error body and
// queues nothing, strict or not; so does a workspace without a Pipelines
// key.
func TestPipelines_AWrongKeyGets401AndQueuesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, withPipelines)
	noKey := setup(t, nil)
	body := []byte(`{"userId":"u1","traits":{}}`)
	for _, tt := range []struct {
		name string
		b    *bundle
		key  string
		h    http.Header
	}{
		{"WrongKey", b, "not-the-key", nil},
		{"WrongKeyStrict", b, "not-the-key", strict},
		{"NoAuth", b, "", nil},
		{"TheTrackKey", b, apiKey, nil},
		{"TheSiteID", b, siteID, nil},
		{"WorkspaceWithoutAPipelinesKey", noKey, cdpKey, nil},
	} {
		status, h, got := tt.b.post(t, "/v1/identify", tt.key, body, tt.h)
		require.Equal(t, http.StatusUnauthorized, status, tt.name)
		require.Equal(t, []string{"unauthorized: check your Pipelines API key"}, errorsOf(t, got), tt.name)
		require.Contains(t, h.Get("WWW-Authenticate"), "Pipelines", tt.name)
		require.NotContains(t, string(got), "not-the-key")
	}
	require.Empty(t, b.pending(t))
	require.Empty(t, noKey.pending(t))
}

// Sizes and validation, as the Pipelines API answers them: in strict mode
// a 400 listing the problems and nothing queued; without it a 200 that
// drops the invalid calls and queues the valid ones.
func TestPipelines_ValidationAndLimitsAnswerAsTheAPI(t *testing.T) {
	t.Parallel()
	big := `{"userId":"u1","traits":{"bio":"` + strings.Repeat("x", cdp.MaxCallBytes) + `"}}`
	bigInBatch := `{"type":"identify","messageId":"v-big","userId":"u1","traits":{"bio":"` + strings.Repeat("x", cdp.MaxCallBytes) + `"}}`
	ok := `{"type":"identify","messageId":"v-ok","userId":"u1"}`
	tests := []struct {
		name       string
		path, body string
		wantStrict []string // the 400's meta.errors in strict mode
		wantQueued []string // messageIds queued without strict mode
	}{
		{"OversizedCall", "/v1/identify", big, []string{fmt.Sprintf("request body is larger than %d bytes", cdp.MaxCallBytes)}, nil},
		{"OversizedBatch", cdp.BatchPath, `{"batch":[` + strings.Repeat(ok+",", cdp.MaxBatchBytes/len(ok)) + ok + `]}`,
			[]string{fmt.Sprintf("request body is larger than %d bytes", cdp.MaxBatchBytes)}, nil},
		{"OversizedCallInABatch", cdp.BatchPath, `{"batch":[` + ok + `,` + bigInBatch + `]}`,
			[]string{fmt.Sprintf("batch[1]: call is %d bytes, limit %d", len(bigInBatch), cdp.MaxCallBytes)}, []string{"v-ok"}},
		{"InvalidCall", "/v1/track", `{"userId":"u1"}`, []string{"event: is required for track"}, nil},
		{"InvalidCallInABatch", cdp.BatchPath, `{"batch":[` + ok + `,{"type":"alias","userId":"u1"}]}`,
			[]string{"batch[1].previousId: is required for alias"}, []string{"v-ok"}},
		{"MalformedJSON", cdp.BatchPath, `{"batch":[`, []string{"malformed JSON: unexpected end of JSON"}, nil},
		{"EmptyBatch", cdp.BatchPath, `{"batch":[]}`, []string{"batch: is empty"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, withPipelines)
			status, _, got := b.post(t, tt.path, cdpKey, []byte(tt.body), strict)
			require.Equal(t, http.StatusBadRequest, status, string(got))
			require.Equal(t, tt.wantStrict, errorsOf(t, got))
			require.Empty(t, b.pending(t), "strict: nothing of the request is queued")

			status, _, got = b.post(t, tt.path, cdpKey, []byte(tt.body), nil)
			require.Equal(t, http.StatusOK, status, "permissive: the API answers 200")
			require.Equal(t, "{}", string(got))
			var queued []string
			for id := range b.calls(t) {
				queued = append(queued, id)
			}
			require.ElementsMatch(t, tt.wantQueued, queued, "permissive: the valid calls are queued")

			_, _, metrics := b.do(t, http.MethodGet, "/metrics", "", "", nil, nil)
			require.Contains(t, string(metrics), `cioq_ingest_ops_total{action="unknown",api="pipelines",outcome="rejected",workspace="ws1"}`)
		})
	}
}

// A call the producer refuses after ingest accepted it (stamping a
// messageId and timestamp takes it over the size limit): strict mode
// refuses the whole request.
func TestPipelines_AProducerRefusalFailsAStrictRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, withPipelines)
	// A call of exactly MaxCallBytes once encoded, without a messageId.
	base, err := cdp.EncodeCall(&cdp.Call{Type: cdp.TypeIdentify, UserID: "u1", Traits: map[string]any{"bio": ""}})
	require.NoError(t, err)
	pad := strings.Repeat("x", cdp.MaxCallBytes-len(base))
	full, err := cdp.EncodeCall(&cdp.Call{Type: cdp.TypeIdentify, UserID: "u1", Traits: map[string]any{"bio": pad}})
	require.NoError(t, err)
	require.Len(t, full, cdp.MaxCallBytes)
	body := []byte(`{"batch":[{"type":"identify","messageId":"r-ok","userId":"u2"},` + string(full) + `]}`)

	status, _, got := b.post(t, cdp.BatchPath, cdpKey, body, strict)
	require.Equal(t, http.StatusBadRequest, status, string(got))
	msgs := errorsOf(t, got)
	require.Len(t, msgs, 1)
	require.Contains(t, msgs[0], "batch[1]: call is")
	require.Empty(t, b.pending(t), "all or nothing")

	status, _, _ = b.post(t, cdp.BatchPath, cdpKey, body, nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, b.calls(t), "r-ok")
	require.Len(t, b.calls(t), 1)
}

// A resent request (the SDK retrying after a lost answer) is answered 200
// and queues nothing twice: the messageId is the op id. With an
// Idempotency-Key the key names the calls instead.
func TestPipelines_ResendsQueueNothingTwice(t *testing.T) {
	t.Parallel()
	b := setup(t, withPipelines)
	body := []byte(`{"batch":[{"type":"track","messageId":"r-1","userId":"u1","event":"E"},{"type":"track","messageId":"r-2","userId":"u1","event":"E"}]}`)
	for range 3 {
		status, _, got := b.post(t, cdp.BatchPath, cdpKey, body, nil)
		require.Equal(t, http.StatusOK, status, string(got))
	}
	require.Len(t, b.pending(t), 2)

	noIDs := []byte(`{"batch":[{"type":"track","userId":"u9","event":"E"},{"type":"track","userId":"u9","event":"F"}]}`)
	keyed := http.Header{"Idempotency-Key": {"req-7"}}
	for range 2 {
		status, _, got := b.post(t, cdp.BatchPath, cdpKey, noIDs, keyed)
		require.Equal(t, http.StatusOK, status, string(got))
	}
	tasks := b.pending(t)
	require.Len(t, tasks, 4)
	require.Contains(t, tasks, task.TaskID(wsName, "req-7:0"))
	require.Contains(t, tasks, task.TaskID(wsName, "req-7:1"))
}

func TestPipelines_GzipBodyAndMethods(t *testing.T) {
	t.Parallel()
	b := setup(t, withPipelines)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, err := zw.Write([]byte(`{"batch":[{"type":"identify","messageId":"gz-1","userId":"u1"}]}`))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	status, _, got := b.post(t, cdp.BatchPath, cdpKey, zb.Bytes(), http.Header{"Content-Encoding": {"gzip"}})
	require.Equal(t, http.StatusOK, status, string(got))
	require.Contains(t, b.calls(t), "gz-1", "a gzip body (the Python SDK's gzip=True) is read")

	status, h, got := b.do(t, http.MethodGet, cdp.BatchPath, cdpKey, "", nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, status)
	require.Equal(t, http.MethodPost, h.Get("Allow"))
	require.Equal(t, []string{"method not allowed"}, errorsOf(t, got))
}

// When the queue does not take the calls the answer is a retryable 503 and
// the SDK retries.
func TestPipelines_QueueUnavailableIs503(t *testing.T) {
	t.Parallel()
	stub := &stubEnqueuer{err: fmt.Errorf("%w: redis down", producer.ErrUnavailable)}
	h, err := ingest.New(ingest.Config{Producer: stub,
		Workspaces: []ingest.Workspace{{Name: wsName, SiteID: siteID, APIKey: apiKey, PipelinesKey: cdpKey}}})
	require.NoError(t, err)
	srv := newServer(t, h)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/identify", strings.NewReader(`{"userId":"u1"}`))
	require.NoError(t, err)
	req.SetBasicAuth(cdpKey, "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	var eb cdp.ErrorBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb))
	require.Equal(t, []string{"queue unavailable: retry the request"}, eb.Meta.Errors)
}

func TestPipelines_ConfigRefusesAKeyOfTwoWorkspaces(t *testing.T) {
	t.Parallel()
	_, err := ingest.New(ingest.Config{Producer: &stubEnqueuer{}, Workspaces: []ingest.Workspace{
		{Name: "a", SiteID: "s1", APIKey: "k1", PipelinesKey: "same"},
		{Name: "b", SiteID: "s2", APIKey: "k2", PipelinesKey: "same"},
	}})
	require.ErrorIs(t, err, ingest.ErrInvalidConfig)
	require.NotContains(t, err.Error(), "same")
	require.True(t, errors.Is(err, ingest.ErrInvalidConfig))
	ws := ingest.Workspace{Name: "a", SiteID: "s", APIKey: "k", PipelinesKey: "pk-s3cr3t"}
	require.NotContains(t, fmt.Sprintf("%v %+v %#v %s", ws, ws, ws, ws), "s3cr3t")
}
