package fake_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// emptyOpsBatch returns a batch body of empty ops ({}), each invalid, as
// close below limit bytes as the ops allow, and how many ops it holds.
func emptyOpsBatch(limit int) ([]byte, int) {
	n := (limit - len(`{"batch":[]}`) + 1) / 3 // "{}" plus a comma each, less the last comma
	body := append([]byte(`{"batch":[`), bytes.Repeat([]byte(`{},`), n)...)
	body = append(body[:len(body)-1], `]}`...)
	return body, n
}

// A batch just under 500 KB of 170K empty ops draws a small answer: the
// first track.MaxItemErrors errors and the count of the others, never one
// error per op (which was a 13.9 MB body).
func TestBatch_ManyBadOpsGetACappedErrorList(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	body, n := emptyOpsBatch(track.MaxBatchBytes - 1)
	require.Less(t, len(body), track.MaxBatchBytes)
	require.Greater(t, n, 170_000)

	a := send(t, srv, auth{testSite, testKey}, http.MethodPost, "/api/v2/batch", body)
	require.Equal(t, http.StatusBadRequest, a.Status)
	require.Less(t, len(a.Body), 16*1024, "answer of %d bytes to a %d-byte request", len(a.Body), len(body))
	var br track.BatchResponse
	require.NoError(t, json.Unmarshal(a.Body, &br))
	require.Len(t, br.Errors, track.MaxItemErrors)
	for i, e := range br.Errors {
		require.Equal(t, i, e.Index, "the first errors, in index order")
		require.Equal(t, "action", e.Field)
	}
	require.Equal(t, n-track.MaxItemErrors, br.Omitted)
	require.EqualValues(t, n, srv.Ledger().OpsRejected, "every op is still counted")
}

// Up to the cap every failed op is listed and nothing is said omitted.
func TestBatch_ErrorListUpToTheCapIsWhole(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	ops := []any{identify("ok", map[string]any{"a": 1})}
	for range track.MaxItemErrors {
		ops = append(ops, map[string]any{})
	}
	a := send(t, srv, auth{testSite, testKey}, http.MethodPost, "/api/v2/batch", batch(t, ops...))
	require.Equal(t, http.StatusMultiStatus, a.Status)
	require.NotContains(t, string(a.Body), "errors_omitted")
	require.Len(t, batchErrors(t, a.Body), track.MaxItemErrors)
}
