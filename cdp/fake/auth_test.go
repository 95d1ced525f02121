package fake_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp/fake"
)

func TestAuth_StrictAnswers401ToAWrongOrMissingKey(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	for _, key := range []string{"wrong", "-"} {
		a := send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", "e", "m1")), key: key})
		require.Equal(t, http.StatusUnauthorized, a.Status)
		require.Equal(t, []string{"unauthorized: check your Pipelines API key"}, errorsOf(t, a.Body))
		require.Contains(t, a.Header.Get("WWW-Authenticate"), "Basic")
	}
	l := srv.Ledger()
	require.Equal(t, int64(2), l.ClientErrors)
	require.Zero(t, l.CallsAccepted)
	require.Empty(t, l.PerWorkspace, "a wrong key names no workspace")
}

func TestAuth_PermissiveDropsAWrongKeyBehindA200(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	a := send(t, srv, req{path: "/v1/track", body: `{"userId":"u1","event":"e"}`, key: "wrong", permissive: true})
	require.Equal(t, http.StatusOK, a.Status, "the real API hides the error without X-Strict-Mode")
	require.Equal(t, "{}", a.Body)
	l := srv.Ledger()
	require.Equal(t, int64(1), l.Dropped)
	require.Equal(t, int64(1), l.Permissive)
	require.Zero(t, l.Accepted)
	require.Zero(t, l.CallsAccepted)
}

func TestAuth_EachKeyCountsInItsWorkspace(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", "e", "m1"))}).Status)
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", "e", "m1")), key: "cdp-key-2"}).Status)
	l := srv.Ledger()
	require.Equal(t, int64(1), l.PerWorkspace[testWS].UniqueCalls)
	require.Equal(t, int64(1), l.PerWorkspace["other"].UniqueCalls, "the same messageId in another workspace is another call")
	require.Zero(t, l.ResentCalls)
}

func TestAuth_NilKeysAcceptsAnyKeyUnderAHashedName(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	srv := start(t, fake.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	const key = "any-secret-key-123"
	a := send(t, srv, req{path: "/v1/track", body: `{"userId":"u1","event":"e"}`, key: key})
	require.Equal(t, http.StatusOK, a.Status)
	name := fake.KeyName(key)
	require.Regexp(t, `^key-[0-9a-f]{8}$`, name)
	require.Equal(t, int64(1), srv.Ledger().PerWorkspace[name].CallsAccepted)
	require.Equal(t, name, srv.Requests()[0].Workspace)
	b, err := json.Marshal(srv.Ledger())
	require.NoError(t, err)
	reqs, err := json.Marshal(srv.Requests())
	require.NoError(t, err)
	require.False(t, strings.Contains(string(b)+string(reqs), key), "the key never lands in the ledger or the request log")
	require.Contains(t, logs.String(), "fake pipelines api request")
	require.NotContains(t, logs.String(), key, "nor in the logs")
	require.Equal(t, http.StatusUnauthorized, send(t, srv, req{path: "/v1/track", body: `{}`, key: "-"}).Status)
}

func TestAuth_EmptyKeysAcceptsNobody(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: map[string]string{}})
	require.Equal(t, http.StatusUnauthorized, send(t, srv, req{path: "/v1/track", body: `{"userId":"u1","event":"e"}`}).Status)
	_, err := fake.New(fake.Options{Keys: map[string]string{"": "x"}})
	require.Error(t, err)
}

func TestStrictMode_OptionsOverrideTheHeader(t *testing.T) {
	t.Parallel()
	always := start(t, fake.Options{Strict: fake.StrictAlways})
	a := send(t, always, req{path: "/v1/track", body: `{"userId":"u1"}`, permissive: true})
	require.Equal(t, http.StatusBadRequest, a.Status)
	require.Equal(t, []string{"event: is required for track"}, errorsOf(t, a.Body))

	never := start(t, fake.Options{Strict: fake.StrictNever})
	a = send(t, never, req{path: "/v1/track", body: `{"userId":"u1"}`})
	require.Equal(t, http.StatusOK, a.Status)
	require.Equal(t, int64(1), never.Ledger().CallsDropped)

	_, err := fake.New(fake.Options{Strict: 7})
	require.Error(t, err)
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
