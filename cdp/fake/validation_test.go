package fake_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
)

// bigTrack is a track call of exactly n bytes.
func bigTrack(t testing.TB, m string, n int) string {
	t.Helper()
	c := `{"type":"track","userId":"u1","event":"e","messageId":"` + m + `","properties":{"p":"`
	tail := `"}}`
	require.GreaterOrEqual(t, n, len(c)+len(tail))
	return c + strings.Repeat("x", n-len(c)-len(tail)) + tail
}

func TestLimits_StrictAnswers400WithTheRealShape(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	single := bigTrack(t, "m", cdp.MaxCallBytes+1)
	var calls []string
	for i := range 16 {
		calls = append(calls, bigTrack(t, fmt.Sprint("m", i), 31_500))
	}
	overBatch := batch(calls...)
	require.Greater(t, len(overBatch), cdp.MaxBatchBytes)
	tests := []struct {
		name string
		r    req
		want []string
	}{
		{"SingleCallOver32KB", req{path: "/v1/track", body: single}, []string{"request body is larger than 32768 bytes"}},
		{"BatchOver500KB", req{path: "/v1/batch", body: overBatch}, []string{"request body is larger than 500000 bytes"}},
		{"CallInBatchOver32KB", req{path: "/v1/batch", body: batch(trackCall("u1", "ok", "m1"), bigTrack(t, "m2", cdp.MaxCallBytes+1))},
			[]string{"batch[1]: call is 32769 bytes, limit 32768"}},
		{"MalformedJSON", req{path: "/v1/batch", body: `{"batch":[`}, []string{"malformed JSON: unexpected end of JSON"}},
		{"InvalidSingleCall", req{path: "/v1/group", body: `{"userId":"u1"}`}, []string{"groupId: is required for group"}},
		{"EveryInvalidCallOfABatch", req{path: "/v1/batch", body: batch(`{"type":"track","userId":"u1"}`, trackCall("u1", "ok", "m3"), `{"type":"alias","userId":"u1"}`)},
			[]string{"batch[0].event: is required for track", "batch[2].previousId: is required for alias"}},
	}
	for _, tt := range tests {
		a := send(t, srv, tt.r)
		require.Equal(t, http.StatusBadRequest, a.Status, tt.name)
		require.Equal(t, tt.want, errorsOf(t, a.Body), tt.name)
	}
	l := ws(srv)
	require.Zero(t, l.CallsAccepted, "a refused request accepts nothing, not even its valid calls")
	require.Equal(t, int64(1+1+2+1+1+3), l.CallsRejected)
	require.Equal(t, int64(6), l.ClientErrors)
}

func TestLimits_AtTheLimitIsAccepted(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	a := send(t, srv, req{path: "/v1/track", body: bigTrack(t, "m", cdp.MaxCallBytes)})
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	var calls []string
	for i := range 15 {
		calls = append(calls, bigTrack(t, fmt.Sprint("b", i), 32_000))
	}
	body := batch(calls...)
	last := cdp.MaxBatchBytes - len(body) - 1
	calls = append(calls, bigTrack(t, "last", last))
	body = batch(calls...)
	require.Len(t, body, cdp.MaxBatchBytes)
	a = send(t, srv, req{path: "/v1/batch", body: body})
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Equal(t, int64(17), srv.Ledger().CallsAccepted)
}

func TestLimits_PermissiveDropsBehindA200(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	a := send(t, srv, req{path: "/v1/track", body: bigTrack(t, "m", cdp.MaxCallBytes+1), permissive: true})
	require.Equal(t, http.StatusOK, a.Status)
	a = send(t, srv, req{path: "/v1/batch", permissive: true,
		body: batch(trackCall("u1", "kept", "m1"), `{"type":"track","userId":"u1"}`, trackCall("u2", "kept", "m2"))})
	require.Equal(t, http.StatusOK, a.Status)
	require.Equal(t, "{}", a.Body)
	l := ws(srv)
	require.Equal(t, int64(2), l.Permissive)
	require.Equal(t, int64(2), l.Dropped, "both requests lost something")
	require.Equal(t, int64(2), l.CallsDropped)
	require.Equal(t, int64(2), l.CallsAccepted, "the valid calls of a permissive batch go through")
	r := srv.Requests()[1]
	require.Equal(t, []string{"batch[1].event: is required for track"}, r.Errors, "the fake keeps what the real API would only log")
	require.False(t, r.Strict)
}

func TestLimits_AcceptValidOnRejectAcceptsTheValidCallsOfA400(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Faults: fake.Faults{AcceptValidOnReject: true}})
	a := send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", "kept", "m1"), `{"type":"track","userId":"u1"}`)})
	require.Equal(t, http.StatusBadRequest, a.Status)
	l := srv.Ledger()
	require.Equal(t, int64(1), l.CallsAccepted)
	require.Equal(t, int64(1), l.CallsRejected)
	// A sender that splits and resends is right either way: the resend of
	// the accepted call is dropped by its messageId.
	a = send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", "kept", "m1"))})
	require.Equal(t, http.StatusOK, a.Status)
	l = srv.Ledger()
	require.Equal(t, int64(1), l.UniqueCalls)
	require.Equal(t, int64(1), l.ResentCalls)
	require.Zero(t, l.DuplicateCalls)
}

func TestBodies_GzipIsDecodedAndOtherEncodingsRefused(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	a := send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", "e", "m1")), gzip: true})
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	r := srv.Requests()[0]
	require.True(t, r.Gzip)
	require.Equal(t, "m1", r.Calls[0].MessageID)

	// The limit applies to the decoded body.
	a = send(t, srv, req{path: "/v1/track", body: bigTrack(t, "m", cdp.MaxCallBytes+1), gzip: true})
	require.Equal(t, http.StatusBadRequest, a.Status)
	require.Equal(t, []string{"request body is larger than 32768 bytes"}, errorsOf(t, a.Body))

	hr, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/track", strings.NewReader(`{"userId":"u1","event":"e"}`))
	require.NoError(t, err)
	hr.SetBasicAuth(testKey, "")
	hr.Header.Set(cdp.StrictModeHeader, "1")
	hr.Header.Set("Content-Encoding", "br")
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	hr, err = http.NewRequest(http.MethodPost, srv.URL+"/v1/track", strings.NewReader(`not gzip`))
	require.NoError(t, err)
	hr.SetBasicAuth(testKey, "")
	hr.Header.Set(cdp.StrictModeHeader, "1")
	hr.Header.Set("Content-Encoding", "gzip")
	resp, err = http.DefaultClient.Do(hr)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, []string{`content encoding "br" is not supported`}, srv.Requests()[2].Errors)
	require.Equal(t, []string{"body is not valid gzip"}, srv.Requests()[3].Errors)
}

func TestBatch_TopLevelContextReachesEveryCall(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	body := `{"batch":[` + trackCall("u1", "e", "m1") + `],"context":{"library":{"name":"analytics-go"}},"messageId":"env","sentAt":"2024-01-02T03:04:05Z"}`
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: body}).Status)
	c := srv.Requests()[0].Calls[0]
	require.Equal(t, map[string]any{"name": "analytics-go"}, c.Context["library"])
	require.Equal(t, "m1", c.MessageID)
}
