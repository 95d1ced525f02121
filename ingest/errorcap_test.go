package ingest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/ingest"
	"github.com/cioq/cioq/track"
)

// A batch just under the body limit holding 170K empty ops is answered 400
// with a small body: the first track.MaxItemErrors errors and the count of
// the others (it was a 13.9 MB body, one error per op). Nothing is queued.
func TestBatch_ManyBadOpsGetASmallCappedBody(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	limit := ingest.DefaultMaxBatchBodyBytes
	n := (limit - len(`{"batch":[]}`) + 1) / 3
	body := append([]byte(`{"batch":[`), bytes.Repeat([]byte(`{},`), n)...)
	body = append(body[:len(body)-1], `]}`...)
	require.LessOrEqual(t, len(body), limit)
	require.Greater(t, n, 170_000)

	status, _, got := b.do(t, http.MethodPost, "/api/v2/batch", siteID, apiKey, body, nil)
	require.Equal(t, http.StatusBadRequest, status)
	t.Logf("%d ops in a %d-byte request: %d-byte answer", n, len(body), len(got))
	require.Less(t, len(got), 16*1024, "an answer of %d bytes to a %d-byte request", len(got), len(body))
	var br track.BatchResponse
	require.NoError(t, json.Unmarshal(got, &br))
	require.Len(t, br.Errors, track.MaxItemErrors)
	for i, e := range br.Errors {
		require.Equal(t, i, e.Index, "the first errors, in index order")
	}
	require.Equal(t, n-track.MaxItemErrors, br.Omitted)
	require.Empty(t, b.tasks(t), "nothing queued")
}
