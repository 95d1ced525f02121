package fake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp/fake"
)

// control makes one control API request and decodes a 2xx JSON answer
// into out (nil: ignore the body).
func control(t *testing.T, srv *fake.Server, method, path, body string, out any) int {
	t.Helper()
	hr, err := http.NewRequest(method, srv.URL+fake.ControlPrefix+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode/100 == 2 {
		require.NoError(t, json.Unmarshal(b, out), string(b))
	}
	return resp.StatusCode
}

func TestControl_DrivesARunningFakeOverHTTP(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: batch(
		`{"type":"identify","userId":"u1","traits":{"plan":"pro"}}`, trackCall("u1", "e", "m1"))}).Status)

	var l fake.Ledger
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodGet, "ledger", "", &l))
	require.Equal(t, int64(2), l.PerWorkspace[testWS].UniqueCalls)

	var reqs []fake.Request
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodGet, "requests?limit=5", "", &reqs))
	require.Len(t, reqs, 1)
	require.Equal(t, "m1", reqs[0].Calls[1].MessageID)
	require.Equal(t, http.StatusBadRequest, control(t, srv, http.MethodGet, "requests?limit=x", "", nil))

	var users map[string]fake.UserState
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodGet, "users?workspace="+testWS, "", &users))
	require.Equal(t, "pro", users["id:u1"].Traits["plan"])
	var u fake.UserState
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodGet, "users?workspace="+testWS+"&key="+url.QueryEscape("id:u1"), "", &u))
	require.Equal(t, int64(1), u.Events)
	require.Equal(t, http.StatusNotFound, control(t, srv, http.MethodGet, "users?workspace="+testWS+"&key=id:nobody", "", nil))

	var f fake.Faults
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodPut, "faults", `{"fail_next":1,"latency":"1ms"}`, &f))
	require.Equal(t, fake.Faults{FailNext: 1, Latency: time.Millisecond}, f)
	require.Equal(t, http.StatusServiceUnavailable, send(t, srv, req{path: "/v1/batch", body: okBody}).Status)
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodGet, "faults", "", &f))
	require.Zero(t, f.FailNext)
	require.Equal(t, http.StatusBadRequest, control(t, srv, http.MethodPut, "faults", `{"error_rate":2}`, nil))
	require.Equal(t, http.StatusBadRequest, control(t, srv, http.MethodPut, "faults", `{"bogus":1}`, nil))
	require.Equal(t, http.StatusMethodNotAllowed, control(t, srv, http.MethodDelete, "faults", "", nil))

	require.Equal(t, http.StatusNoContent, control(t, srv, http.MethodPost, "reset", "", nil))
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodGet, "ledger", "", &l))
	require.Zero(t, l.Requests)
	require.Empty(t, srv.Requests())
	require.Equal(t, http.StatusOK, control(t, srv, http.MethodGet, "faults", "", &f))
	require.Equal(t, time.Millisecond, f.Latency, "reset keeps the faults")

	require.Equal(t, http.StatusMethodNotAllowed, control(t, srv, http.MethodPost, "ledger", "", nil))
	require.Equal(t, http.StatusMethodNotAllowed, control(t, srv, http.MethodGet, "reset", "", nil))
	require.Equal(t, http.StatusNotFound, control(t, srv, http.MethodGet, "nope", "", nil))
	require.Zero(t, srv.Ledger().Requests, "control calls are not counted")
}

func TestRequestLog_IsBounded(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{RequestLog: 3, RequestLogCalls: 4})
	for _, m := range []string{"a", "b", "c", "d"} {
		require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", m, m))}).Status)
	}
	reqs := srv.Requests()
	require.Len(t, reqs, 3)
	require.Equal(t, "b", reqs[0].Calls[0].MessageID)
	require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/batch", body: batch(trackCall("u1", "x", "x"), trackCall("u1", "y", "y"), trackCall("u1", "z", "z"))}).Status)
	reqs = srv.Requests()
	require.Len(t, reqs, 2, "the oldest requests go to keep at most 4 calls")

	none := start(t, fake.Options{RequestLog: -1})
	require.Equal(t, http.StatusOK, send(t, none, req{path: "/v1/batch", body: okBody}).Status)
	require.Empty(t, none.Requests())
	require.Equal(t, int64(1), none.Ledger().CallsAccepted)
}
