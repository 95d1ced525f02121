package fake_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
)

func TestPaths_EverySingleCallPathAcceptsItsCall(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	bodies := map[string]string{
		"/v1/identify": `{"userId":"u1","traits":{"plan":"pro"}}`,
		"/v1/track":    `{"userId":"u1","event":"purchase"}`,
		"/v1/page":     `{"userId":"u1","name":"Home"}`,
		"/v1/screen":   `{"anonymousId":"a1","name":"Cart"}`,
		"/v1/group":    `{"userId":"u1","groupId":"acme"}`,
		"/v1/alias":    `{"userId":"u1","previousId":"a1"}`,
	}
	for path, body := range bodies {
		a := send(t, srv, req{path: path, body: body})
		require.Equal(t, http.StatusOK, a.Status, path+": "+a.Body)
		require.Equal(t, "{}", a.Body)
	}
	reqs := srv.Requests()
	require.Len(t, reqs, len(bodies))
	for _, r := range reqs {
		require.Len(t, r.Calls, 1)
		require.Equal(t, cdp.TypeFromPath(r.Path), r.Calls[0].Type, "the path sets the type")
		require.True(t, r.Strict)
		require.Equal(t, testWS, r.Workspace)
	}
	l := ws(srv)
	require.Equal(t, int64(6), l.UniqueCalls)
	require.Equal(t, map[string]int64{"identify": 1, "track": 1, "page": 1, "screen": 1, "group": 1, "alias": 1}, l.CallsByKind)
}

func TestPaths_PathTypeWinsOverTheBody(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	a := send(t, srv, req{path: "/v1/identify", body: `{"type":"track","userId":"u1","traits":{"a":1}}`})
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Equal(t, cdp.TypeIdentify, srv.Requests()[0].Calls[0].Type)
}

func TestPaths_UnknownPathsAndMethods(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	tests := []struct {
		name       string
		r          req
		wantStatus int
		wantAllow  string
	}{
		{"UnknownPath", req{path: "/v1/people", body: `{}`}, http.StatusNotFound, ""},
		{"TrackAPIPath", req{path: "/api/v2/batch", body: `{}`}, http.StatusNotFound, ""},
		{"GetBatch", req{path: "/v1/batch", method: http.MethodGet}, http.StatusMethodNotAllowed, "POST"},
		{"PutIdentify", req{path: "/v1/identify", method: http.MethodPut, body: `{}`}, http.StatusMethodNotAllowed, "POST"},
	}
	for _, tt := range tests {
		a := send(t, srv, tt.r)
		require.Equal(t, tt.wantStatus, a.Status, tt.name)
		require.Equal(t, tt.wantAllow, a.Header.Get("Allow"), tt.name)
	}
	require.Equal(t, int64(len(tests)), srv.Ledger().ClientErrors)
}
