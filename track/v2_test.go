package track_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
)

func mustEncode(t *testing.T, op *track.Op) []byte {
	t.Helper()
	b, err := track.EncodeOp(op)
	require.NoError(t, err)
	return b
}

func TestClient_Entity(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, track.Config{})
	op := &track.Op{Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionSuppress}
	require.NoError(t, b.client.Entity(t.Context(), op))
	want := []recorded{{Method: "POST", Path: "/api/v2/entity", Auth: testAuth, ContentType: "application/json",
		UserAgent: track.DefaultUserAgent, Body: `{"type":"person","identifiers":{"email":"a@b.c"},"action":"suppress"}`}}
	if diff := cmp.Diff(want, b.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	t.Run("InvalidOpSendsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil, track.Config{})
		err := b.client.Entity(t.Context(), &track.Op{Action: track.ActionIdentify})
		require.ErrorIs(t, err, track.ErrInvalidOp)
		require.Empty(t, b.requests())
	})
	t.Run("ErrorIsAPIError", func(t *testing.T) {
		t.Parallel()
		b := setup(t, reply(http.StatusBadRequest, `{"meta":{"error":"bad op"}}`), track.Config{})
		err := b.client.Entity(t.Context(), op)
		require.ErrorIs(t, err, track.ErrInvalidRequest)
		require.EqualError(t, err, "track: POST /api/v2/entity: 400: bad op")
	})
}

func TestClient_Batch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, track.Config{})
	ops := []*track.Op{
		{Identifiers: &track.Identifiers{ID: "u1"}, Action: track.ActionIdentify, Attributes: map[string]any{"plan": "pro"}, Timestamp: 1700000000},
		{Identifiers: &track.Identifiers{ID: "u1"}, Action: track.ActionEvent, Name: "purchase", ID: "01J", Attributes: map[string]any{"amount": 10}},
		{Action: track.ActionMerge, Primary: &track.Identifiers{ID: "a"}, Secondary: &track.Identifiers{ID: "b"}},
	}
	require.NoError(t, b.client.Batch(t.Context(), ops))
	want := `{"batch":[` +
		`{"type":"person","identifiers":{"id":"u1"},"action":"identify","timestamp":1700000000,"attributes":{"plan":"pro"}},` +
		`{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"purchase","id":"01J","attributes":{"amount":10}},` +
		`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"id":"b"}}]}`
	wantReqs := []recorded{{Method: "POST", Path: "/api/v2/batch", Auth: testAuth, ContentType: "application/json", UserAgent: track.DefaultUserAgent, Body: want}}
	if diff := cmp.Diff(wantReqs, b.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	t.Run("InvalidOpNamesItsIndexAndSendsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil, track.Config{})
		err := b.client.Batch(t.Context(), []*track.Op{ops[0], {Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: "u"}}})
		require.ErrorIs(t, err, track.ErrInvalidOp)
		require.EqualError(t, err, "track: batch op 1: track: invalid op: name: is required for event")
		require.Empty(t, b.requests())
	})
	t.Run("NoOpsSendsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil, track.Config{})
		require.NoError(t, b.client.Batch(t.Context(), nil))
		require.NoError(t, b.client.BatchEncoded(t.Context(), nil))
		require.Empty(t, b.requests())
	})
}

func TestClient_BatchEncoded_Body(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, track.Config{})
	ops := [][]byte{[]byte(`{"a":1}`), []byte(`{"b":"<&>"}`), []byte(`{}`)}
	require.NoError(t, b.client.BatchEncoded(t.Context(), ops))
	reqs := b.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, `{"batch":[{"a":1},{"b":"<&>"},{}]}`, reqs[0].Body)
	require.Equal(t, len(reqs[0].Body), track.EncodedBatchSize(ops))
	require.Equal(t, len(`{"batch":[{}]}`), track.EncodedBatchSize([][]byte{[]byte(`{}`)}))
	require.Equal(t, len(`{"batch":[]}`), track.EncodedBatchSize(nil))
}

func TestClient_BatchEncoded_Limits(t *testing.T) {
	t.Parallel()
	// opOfSize returns a JSON object of exactly n bytes.
	opOfSize := func(n int) []byte { return []byte(`{"p":"` + strings.Repeat("x", n-8) + `"}`) }
	// packed returns ops whose batch body is exactly size bytes.
	packed := func(size int) [][]byte {
		var ops [][]byte
		for track.EncodedBatchSize(ops)+track.MaxOpBytes+1 < size {
			ops = append(ops, opOfSize(track.MaxOpBytes))
		}
		rest := size - track.EncodedBatchSize(ops) - 1 // the comma
		return append(ops, opOfSize(rest))
	}
	t.Run("AcceptsBodyJustBelowTheLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil, track.Config{})
		ops := packed(track.MaxBatchBytes - 1)
		require.Equal(t, track.MaxBatchBytes-1, track.EncodedBatchSize(ops))
		require.NoError(t, b.client.BatchEncoded(t.Context(), ops))
		require.Len(t, b.requests()[0].Body, track.MaxBatchBytes-1)
	})
	tests := []struct {
		name string
		ops  [][]byte
		want track.ValidationError
	}{
		{"BodyAtTheLimit", packed(track.MaxBatchBytes),
			track.ValidationError{Field: "batch", Reason: "batch is 512000 bytes, must be below 512000", Limit: track.MaxBatchBytes, Got: track.MaxBatchBytes}},
		{"OversizedOp", [][]byte{[]byte(`{}`), opOfSize(track.MaxOpBytes + 1)},
			track.ValidationError{Field: "batch[1]", Reason: "op is 32769 bytes, limit 32768", Limit: track.MaxOpBytes, Got: track.MaxOpBytes + 1}},
		{"EmptyOp", [][]byte{nil},
			track.ValidationError{Field: "batch[0]", Reason: "is not an encoded op (a JSON object)"}},
		{"NotAnObject", [][]byte{[]byte(`[1]`)},
			track.ValidationError{Field: "batch[0]", Reason: "is not an encoded op (a JSON object)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil, track.Config{})
			err := b.client.BatchEncoded(t.Context(), tt.ops)
			require.ErrorIs(t, err, track.ErrInvalidOp)
			var ve *track.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tt.want, *ve)
			require.Empty(t, b.requests())
		})
	}
}

func TestClient_BatchOutcomes(t *testing.T) {
	t.Parallel()
	partial := `{"errors":[{"batch_index":1,"reason":"invalid","field":"attributes.plan","message":"too long"},{"batch_index":3,"reason":"bad"}]}`
	wantItems := []track.ItemError{{Index: 1, Reason: "invalid", Field: "attributes.plan", Message: "too long"}, {Index: 3, Reason: "bad"}}
	tests := []struct {
		name      string
		status    int
		body      string
		header    []string
		wantItems []track.ItemError // a *BatchError with these and status
		wantClass error             // else an *APIError of this class, else nil
	}{
		{"200WithoutErrors", 200, `{}`, nil, nil, nil},
		{"200EmptyBody", 200, ``, nil, nil, nil},
		{"200EmptyErrors", 200, `{"errors":[]}`, nil, nil, nil},
		{"200WithErrors", 200, partial, nil, wantItems, nil},
		{"207WithErrors", 207, partial, nil, wantItems, nil},
		{"400WithErrors", 400, partial, nil, wantItems, nil},
		{"422WithErrors", 422, partial, nil, wantItems, nil},
		{"400WithoutErrors", 400, `{"meta":{"error":"malformed"}}`, nil, nil, track.ErrInvalidRequest},
		{"400WithErrorsOutOfRange", 400, `{"errors":[{"batch_index":9},{"batch_index":-1},{"reason":"no index"}]}`, nil, nil, track.ErrInvalidRequest},
		{"200IgnoresErrorsOutOfRange", 200, `{"errors":[{"batch_index":4,"reason":"x"},{"batch_index":2,"reason":"y"}]}`, nil, []track.ItemError{{Index: 2, Reason: "y"}}, nil},
		{"400WithErrorsCutShortIsAPIError", 400, `{"errors":[{"batch_index":0,"reason":"invalid"}],"errors_omitted":3}`, nil, nil, track.ErrInvalidRequest},
		{"207WithErrorsCutShortIsAPIError", 207, `{"errors":[{"batch_index":1,"reason":"invalid"}],"errors_omitted":1}`, nil, nil, track.ErrInvalidRequest},
		{"401IsAPIErrorEvenWithErrors", 401, partial, nil, nil, track.ErrUnauthorized},
		{"429IsAPIError", 429, partial, []string{"Retry-After", "2"}, nil, track.ErrRateLimited},
		{"500IsAPIError", 500, partial, nil, nil, track.ErrServer},
		{"503IsAPIError", 503, ``, nil, nil, track.ErrServer},
	}
	ops := make([][]byte, 4)
	for i := range ops {
		ops[i] = mustEncode(t, &track.Op{Identifiers: &track.Identifiers{ID: fmt.Sprint("u", i)}, Action: track.ActionDelete})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, reply(tt.status, tt.body, tt.header...), track.Config{})
			err := b.client.BatchEncoded(t.Context(), ops)
			switch {
			case tt.wantItems != nil:
				var be *track.BatchError
				require.ErrorAs(t, err, &be)
				if diff := cmp.Diff(tt.wantItems, be.Items); diff != "" {
					t.Errorf("items (-want +got):\n%s", diff)
				}
				require.Equal(t, tt.status, be.StatusCode)
				require.False(t, track.IsRetryable(err))
			case tt.wantClass != nil:
				var ae *track.APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, tt.status, ae.StatusCode)
				require.Equal(t, "/api/v2/batch", ae.Path)
				require.ErrorIs(t, err, tt.wantClass)
			default:
				require.NoError(t, err)
			}
		})
	}
}

func TestBatchError_Message(t *testing.T) {
	t.Parallel()
	be := &track.BatchError{StatusCode: 207, Items: []track.ItemError{{Index: 1, Reason: "invalid", Field: "name"}, {Index: 2}, {Index: 3}, {Index: 4}}}
	require.Equal(t, "track: batch: 4 op(s) rejected (status 207); batch_index 1: invalid: name; batch_index 2: ; batch_index 3: ; and 1 more", be.Error())
	require.Equal(t, map[int]track.ItemError{1: be.Items[0], 2: be.Items[1], 3: be.Items[2], 4: be.Items[3]}, be.Failed())
}

func TestClient_BatchUnreadableAnswerIsTransportError(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusMultiStatus)
		_, _ = io.WriteString(w, `{"errors":[{"batch_`)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}, track.Config{})
	err := b.client.BatchEncoded(t.Context(), [][]byte{[]byte(`{}`)})
	require.ErrorIs(t, err, track.ErrTransport)
}

// TestClient_BatchEncoded_ConcurrentBodiesStayIntact sends many batches at
// once through pooled buffers and checks every body arrives as built.
func TestClient_BatchEncoded_ConcurrentBodiesStayIntact(t *testing.T) {
	t.Parallel()
	var bad sync.Map
	b := setup(t, func(w http.ResponseWriter, r *http.Request) {}, track.Config{})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				n := 1 + (g+i)%7
				ops := make([][]byte, n)
				for j := range ops {
					ops[j] = []byte(fmt.Sprintf(`{"g":%d,"i":%d,"pad":"%s"}`, g, i, strings.Repeat("p", 100*(g+1))))
				}
				if err := b.client.BatchEncoded(t.Context(), ops); err != nil {
					bad.Store(fmt.Sprint(g, i), err.Error())
				}
			}
		})
	}
	wg.Wait()
	bad.Range(func(k, v any) bool { t.Errorf("%v: %v", k, v); return true })
	reqs := b.requests()
	require.Len(t, reqs, 16*20)
	for _, r := range reqs {
		var body struct {
			Batch []struct {
				G, I int
				Pad  string
			}
		}
		require.NoError(t, json.Unmarshal([]byte(r.Body), &body), r.Body)
		first := body.Batch[0]
		for _, op := range body.Batch {
			require.Equal(t, first.G, op.G)
			require.Equal(t, first.I, op.I)
			require.Len(t, op.Pad, 100*(first.G+1))
		}
		require.Len(t, body.Batch, 1+(first.G+first.I)%7)
		require.True(t, bytes.HasPrefix([]byte(r.Body), []byte(`{"batch":[`)))
	}
}
