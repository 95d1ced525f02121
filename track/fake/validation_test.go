package fake_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// paddedEvent returns an event op whose JSON is exactly size bytes.
func paddedEvent(t testing.TB, person string, size int) track.Op {
	t.Helper()
	op := event(person, "padded", "", map[string]any{"pad": ""})
	n := len(mustJSON(t, op))
	require.LessOrEqual(t, n, size)
	op.Attributes["pad"] = strings.Repeat("x", size-n)
	require.Len(t, mustJSON(t, op), size)
	return op
}

// sizedBatch returns a batch body of exactly size bytes, of ops ≤ 30 KB.
func sizedBatch(t testing.TB, size int) []byte {
	t.Helper()
	const opSize = 30 * 1024
	var ops []any
	for i := 0; len(batch(t, ops...))+opSize+1 < size; i++ {
		ops = append(ops, paddedEvent(t, fmt.Sprintf("u%d", i), opSize))
	}
	rest := size - len(batch(t, ops...)) - 1 // the comma before the last op
	if len(ops) == 0 {
		rest++
	}
	ops = append(ops, paddedEvent(t, "last", rest))
	b := batch(t, ops...)
	require.Len(t, b, size)
	return b
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	for _, tc := range []struct {
		name       string
		path       string
		body       func(t testing.TB) []byte
		wantStatus int
		wantOps    int64
	}{
		{name: "EntityAtOpLimitIsAccepted", path: "/api/v2/entity", wantStatus: http.StatusOK, wantOps: 1,
			body: func(t testing.TB) []byte { return mustJSON(t, paddedEvent(t, "u1", track.MaxOpBytes)) }},
		{name: "EntityOverOpLimitIs413", path: "/api/v2/entity", wantStatus: http.StatusRequestEntityTooLarge,
			body: func(t testing.TB) []byte { return mustJSON(t, paddedEvent(t, "u1", track.MaxOpBytes+1)) }},
		{name: "BatchJustUnderLimitIsAccepted", path: "/api/v2/batch", wantStatus: http.StatusOK, wantOps: 17,
			body: func(t testing.TB) []byte { return sizedBatch(t, track.MaxBatchBytes-1) }},
		{name: "BatchAtLimitIs413", path: "/api/v2/batch", wantStatus: http.StatusRequestEntityTooLarge,
			body: func(t testing.TB) []byte { return sizedBatch(t, track.MaxBatchBytes) }},
		{name: "V1EventOverV2OpLimitIsAccepted", path: "/api/v1/customers/u1/events", wantStatus: http.StatusOK, wantOps: 1,
			body: func(t testing.TB) []byte {
				return mustJSON(t, map[string]any{"name": "big", "data": map[string]any{"pad": strings.Repeat("x", 50*1024)}})
			}},
		{name: "V1BodyOverLimitIs413", path: "/api/v1/customers/u1/events", wantStatus: http.StatusRequestEntityTooLarge,
			body: func(t testing.TB) []byte {
				return mustJSON(t, map[string]any{"name": "big", "data": map[string]any{"pad": strings.Repeat("x", fake.V1BodyLimit)}})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			got := send(t, srv, good, http.MethodPost, tc.path, tc.body(t))
			require.Equal(t, tc.wantStatus, got.Status, "body %.200s", got.Body)
			if tc.wantStatus != http.StatusOK {
				require.Contains(t, errorMessage(t, got.Body), "bytes")
			}
			require.Equal(t, tc.wantOps, srv.Ledger().OpsAccepted)
		})
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	badUTF8 := []byte("{\"batch\":[{\"type\":\"person\",\"identifiers\":{\"id\":\"u\xff\"},\"action\":\"identify\"}]}")
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		wantMsg            string
	}{
		{name: "BatchInvalidUTF8", method: http.MethodPost, path: "/api/v2/batch", body: badUTF8, wantMsg: "UTF-8"},
		{name: "EntityInvalidUTF8", method: http.MethodPost, path: "/api/v2/entity", body: []byte("{\"name\":\"\xc3\x28\"}"), wantMsg: "UTF-8"},
		{name: "V1IdentifyInvalidUTF8", method: http.MethodPut, path: "/api/v1/customers/u1", body: []byte("{\"a\":\"\xff\"}"), wantMsg: "UTF-8"},
		{name: "BatchBadJSON", method: http.MethodPost, path: "/api/v2/batch", body: []byte(`{"batch":[`), wantMsg: "malformed JSON"},
		{name: "BatchUnknownEnvelopeField", method: http.MethodPost, path: "/api/v2/batch", body: []byte(`{"batch":[],"extra":1}`), wantMsg: "malformed JSON"},
		{name: "BatchTrailingData", method: http.MethodPost, path: "/api/v2/batch", body: []byte(`{"batch":[]} {}`), wantMsg: "trailing"},
		{name: "BatchEmpty", method: http.MethodPost, path: "/api/v2/batch", body: []byte(`{"batch":[]}`), wantMsg: "at least one op"},
		{name: "BatchMissing", method: http.MethodPost, path: "/api/v2/batch", body: []byte(`{}`), wantMsg: "at least one op"},
		{name: "EntityBadJSON", method: http.MethodPost, path: "/api/v2/entity", body: []byte(`{"type":`), wantMsg: "malformed JSON"},
		{name: "EntityMissingIdentifiers", method: http.MethodPost, path: "/api/v2/entity",
			body: []byte(`{"type":"person","action":"identify"}`), wantMsg: "identifiers"},
		{name: "EntityUnknownAction", method: http.MethodPost, path: "/api/v2/entity",
			body: []byte(`{"type":"person","identifiers":{"id":"u1"},"action":"explode"}`), wantMsg: "action"},
		{name: "V1IdentifyNotAnObject", method: http.MethodPut, path: "/api/v1/customers/u1", body: []byte(`[1]`), wantMsg: "JSON object"},
		{name: "V1IdentifyFractionalTimestamp", method: http.MethodPut, path: "/api/v1/customers/u1", body: []byte(`{"_timestamp":1.5}`), wantMsg: "_timestamp"},
		{name: "V1IdentifyIdentifierTooLong", method: http.MethodPut, path: "/api/v1/customers/" + strings.Repeat("u", 151), body: []byte(`{}`), wantMsg: "identifiers.id"},
		{name: "V1EventBadJSON", method: http.MethodPost, path: "/api/v1/customers/u1/events", body: []byte(`{"name":`), wantMsg: "malformed event"},
		{name: "V1EventUnknownField", method: http.MethodPost, path: "/api/v1/customers/u1/events", body: []byte(`{"name":"x","amount":1}`), wantMsg: "malformed event"},
		{name: "V1EventMissingName", method: http.MethodPost, path: "/api/v1/customers/u1/events", body: []byte(`{"data":{}}`), wantMsg: "name"},
		{name: "V1EventUnknownType", method: http.MethodPost, path: "/api/v1/customers/u1/events", body: []byte(`{"name":"x","type":"click"}`), wantMsg: "type"},
		{name: "V1EventDataTooLarge", method: http.MethodPost, path: "/api/v1/customers/u1/events",
			body: []byte(`{"name":"x","data":{"pad":"` + strings.Repeat("x", track.MaxEventDataBytes) + `"}}`), wantMsg: "event data"},
		{name: "V1PersonEventWithAnonymousID", method: http.MethodPost, path: "/api/v1/customers/u1/events", body: []byte(`{"name":"x","anonymous_id":"a"}`), wantMsg: "anonymous_id"},
		{name: "V1AnonymousEventWithoutAnonymousID", method: http.MethodPost, path: "/api/v1/events", body: []byte(`{"name":"x"}`), wantMsg: "identifiers"},
		{name: "V1DeviceWithoutID", method: http.MethodPut, path: "/api/v1/customers/u1/devices", body: []byte(`{"device":{"platform":"ios"}}`), wantMsg: "device.token"},
		{name: "V1DeviceTokenField", method: http.MethodPut, path: "/api/v1/customers/u1/devices", body: []byte(`{"device":{"token":"t"}}`), wantMsg: "malformed device"},
		{name: "V1MergeMissingSecondary", method: http.MethodPost, path: "/api/v1/merge_customers", body: []byte(`{"primary":{"id":"a"}}`), wantMsg: "secondary"},
		{name: "V1MergeBadJSON", method: http.MethodPost, path: "/api/v1/merge_customers", body: []byte(`{`), wantMsg: "malformed merge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			got := send(t, srv, good, tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusBadRequest, got.Status, "body %.300s", got.Body)
			require.Contains(t, errorMessage(t, got.Body), tc.wantMsg)
			l := srv.Ledger()
			require.EqualValues(t, 1, l.ClientErrors)
			require.Zero(t, l.OpsAccepted)
		})
	}
}

func TestBatchPartialFailure(t *testing.T) {
	t.Parallel()
	valid := identify("u1", map[string]any{"plan": "pro"})
	noIDs := map[string]any{"type": "person", "action": "identify"}
	bigName := event("u2", strings.Repeat("n", track.MaxEventNameBytes+1), "", nil)
	unknownField := map[string]any{"type": "person", "identifiers": map[string]any{"id": "u3"}, "action": "identify", "colour": "red"}

	t.Run("SomeOpsFailAnswers207AndAcceptsTheRest", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", batch(t, noIDs, valid, bigName, unknownField, nil))
		require.Equal(t, http.StatusMultiStatus, got.Status)
		want := []track.ItemError{
			{Index: 0, Reason: fake.ReasonInvalid, Field: "identifiers", Message: "are required"},
			{Index: 2, Reason: fake.ReasonTooLarge, Field: "name", Message: "name is 101 bytes, limit 100"},
			{Index: 3, Reason: fake.ReasonInvalid},
			{Index: 4, Reason: fake.ReasonInvalid, Message: "body is not a JSON object"},
		}
		gotErrs := batchErrors(t, got.Body)
		require.Len(t, gotErrs, 4)
		require.Contains(t, gotErrs[2].Message, "colour")
		gotErrs[2].Message = ""
		if diff := cmp.Diff(want, gotErrs); diff != "" {
			t.Fatalf("errors (-want +got):\n%s", diff)
		}
		l := srv.Ledger()
		require.EqualValues(t, 1, l.Accepted)
		require.EqualValues(t, 1, l.OpsAccepted)
		require.EqualValues(t, 4, l.OpsRejected)
		require.Equal(t, 5, l.MaxOpsPerRequest)
		reqs := srv.Requests()
		require.Len(t, reqs, 1)
		require.Len(t, reqs[0].Ops, 1)
		require.Equal(t, "u1", reqs[0].Ops[0].Identifiers.ID)
		require.Len(t, reqs[0].Errors, 4)
	})
	t.Run("AllOpsFailAnswers400WithErrors", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", batch(t, noIDs, noIDs))
		require.Equal(t, http.StatusBadRequest, got.Status)
		errs := batchErrors(t, got.Body)
		require.Len(t, errs, 2)
		require.Equal(t, []int{0, 1}, []int{errs[0].Index, errs[1].Index})
		l := srv.Ledger()
		require.EqualValues(t, 1, l.ClientErrors)
		require.Zero(t, l.OpsAccepted)
		require.EqualValues(t, 2, l.OpsRejected)
	})
	t.Run("OversizeOpInBatchIsABatchIndexError", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		body := batch(t, valid, paddedEvent(t, "u9", track.MaxOpBytes+1))
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", body)
		require.Equal(t, http.StatusMultiStatus, got.Status)
		errs := batchErrors(t, got.Body)
		require.Len(t, errs, 1)
		require.Equal(t, 1, errs[0].Index)
		require.Equal(t, fake.ReasonTooLarge, errs[0].Reason)
	})
	t.Run("WholeBatchValidAnswers200EmptyObject", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		got := send(t, srv, good, http.MethodPost, "/api/v2/batch", batch(t, valid, valid))
		require.Equal(t, http.StatusOK, got.Status)
		require.True(t, bytes.Equal([]byte("{}"), got.Body), "body %s", got.Body)
	})
}
