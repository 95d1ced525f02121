package cdp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/track"
)

const testKey = "cdp-s3cr3t-key-0123456789"

// recorded is one request the test server saw.
type recorded struct {
	Method, Path, Auth, Strict, ContentType, UserAgent, Body string
}

type testBundle struct {
	client *cdp.Client
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []recorded
}

func (b *testBundle) requests() []recorded {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]recorded(nil), b.reqs...)
}

// setup starts a server that records each request and then runs handler
// (nil: 200 "{}"), and a client for it configured by cfg (APIKey and
// BaseURL filled in when empty).
func setup(t testing.TB, handler http.HandlerFunc, cfg cdp.Config) *testBundle {
	t.Helper()
	if handler == nil {
		handler = reply(http.StatusOK, "{}")
	}
	b := &testBundle{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, recorded{
			Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"),
			Strict: r.Header.Get(cdp.StrictModeHeader), ContentType: r.Header.Get("Content-Type"),
			UserAgent: r.Header.Get("User-Agent"), Body: string(body),
		})
		b.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(b.srv.Close)
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = b.srv.URL
	}
	c, err := cdp.NewClient(cfg)
	require.NoError(t, err)
	b.client = c
	return b
}

func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func encode(t testing.TB, calls ...*cdp.Call) [][]byte {
	t.Helper()
	out := make([][]byte, len(calls))
	for i, c := range calls {
		b, err := cdp.EncodeCall(c)
		require.NoError(t, err)
		out[i] = b
	}
	return out
}

var (
	identify = &cdp.Call{Type: cdp.TypeIdentify, MessageID: "m1", UserID: "u1", Traits: map[string]any{"plan": "pro"}}
	purchase = &cdp.Call{Type: cdp.TypeTrack, MessageID: "m2", UserID: "u1", Event: "purchase"}
)

func TestClient_BatchEncodedPostsStrictBatchWithBasicAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cdp.Config{})
	require.NoError(t, b.client.BatchEncoded(context.Background(), encode(t, identify, purchase)))
	reqs := b.requests()
	require.Len(t, reqs, 1)
	want := recorded{
		Method: http.MethodPost, Path: "/v1/batch",
		Auth:   "Basic " + base64.StdEncoding.EncodeToString([]byte(testKey+":")),
		Strict: "1", ContentType: "application/json", UserAgent: cdp.DefaultUserAgent,
		Body: `{"batch":[{"type":"identify","messageId":"m1","userId":"u1","traits":{"plan":"pro"}},` +
			`{"type":"track","messageId":"m2","userId":"u1","event":"purchase"}]}`,
	}
	require.Equal(t, want, reqs[0])
	require.NoError(t, b.client.BatchEncoded(context.Background(), nil), "no calls: nothing to send")
	require.Len(t, b.requests(), 1)
}

func TestClient_SendUsesTheSingleCallPath(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cdp.Config{UserAgent: "ua/1"})
	for _, c := range []*cdp.Call{identify, purchase, {Type: cdp.TypeAlias, UserID: "u1", PreviousID: "a1"}} {
		require.NoError(t, b.client.Send(context.Background(), c))
	}
	var paths []string
	for _, r := range b.requests() {
		paths = append(paths, r.Path)
		require.Equal(t, "1", r.Strict)
		require.Equal(t, "ua/1", r.UserAgent)
	}
	require.Equal(t, []string{"/v1/identify", "/v1/track", "/v1/alias"}, paths)
	require.Equal(t, `{"type":"alias","userId":"u1","previousId":"a1"}`, b.requests()[2].Body)
}

func TestClient_BaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		region  cdp.Region
		baseURL string
		want    string
	}{
		{"ZeroIsUS", "", "", "https://cdp.customer.io"},
		{"EURegion", cdp.RegionEU, "", "https://cdp-eu.customer.io"},
		{"BaseURLOverridesRegion", cdp.RegionEU, "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"V1Stripped", "", "https://cdp.customer.io/v1", "https://cdp.customer.io"},
		{"V1SlashStripped", "", "https://proxy.example/cdp/v1/", "https://proxy.example/cdp"},
		{"PrefixKept", "", "https://proxy.example/cdp", "https://proxy.example/cdp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := cdp.NewClient(cdp.Config{APIKey: "k", Region: tt.region, BaseURL: tt.baseURL})
			require.NoError(t, err)
			require.Equal(t, tt.want, c.BaseURL())
		})
	}
	require.Empty(t, cdp.BaseURL("mars"))
}

func TestNewClient_RejectsBadConfigWithoutShowingTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  cdp.Config
		want string
	}{
		{"NoKey", cdp.Config{}, "api key is required"},
		{"UnknownRegion", cdp.Config{APIKey: testKey, Region: "ap"}, `unknown region "ap"`},
		{"NegativeTimeout", cdp.Config{APIKey: testKey, Timeout: -time.Second}, "timeout -1s is negative"},
		{"BadScheme", cdp.Config{APIKey: testKey, BaseURL: "ftp://x"}, `scheme "ftp"`},
		{"NoHost", cdp.Config{APIKey: testKey, BaseURL: "http://"}, "no host"},
		{"Credentials", cdp.Config{APIKey: testKey, BaseURL: "https://user:" + testKey + "@cdp.customer.io"}, "must not carry credentials"},
		{"Unparsable", cdp.Config{APIKey: testKey, BaseURL: "http://" + testKey + ":%zz@x"}, "does not parse"},
		{"Query", cdp.Config{APIKey: testKey, BaseURL: "https://x/?a=1"}, "query or fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cdp.NewClient(tt.cfg)
			require.ErrorIs(t, err, cdp.ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.want)
			require.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestClient_MapsAnswersToTypedErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		body        string
		header      map[string]string
		wantClass   error
		wantMsg     string
		wantRetry   bool
		wantAfter   time.Duration
		wantPermErr bool
	}{
		{"StrictInvalid", 400, `{"meta":{"errors":["batch[0].event: is required for track"]}}`, nil, cdp.ErrInvalidRequest,
			"cdp: POST /v1/batch: 400: batch[0].event: is required for track", false, 0, true},
		{"Unauthorized", 401, ``, nil, cdp.ErrUnauthorized, "cdp: POST /v1/batch: 401: Unauthorized", false, 0, true},
		{"Forbidden", 403, `{"meta":{"error":"forbidden"}}`, nil, cdp.ErrUnauthorized, "cdp: POST /v1/batch: 403: forbidden", false, 0, true},
		{"NotFound", 404, `not here`, nil, cdp.ErrInvalidRequest, "cdp: POST /v1/batch: 404: not here", false, 0, true},
		{"SegmentStyleBody", 413, `{"code":"too_large","message":"payload too large"}`, nil, cdp.ErrInvalidRequest,
			"cdp: POST /v1/batch: 413: payload too large", false, 0, true},
		{"Timeout408", 408, ``, nil, cdp.ErrServer, "cdp: POST /v1/batch: 408: Request Timeout", true, 0, false},
		{"RateLimited", 429, ``, map[string]string{"Retry-After": "7"}, cdp.ErrRateLimited, "cdp: POST /v1/batch: 429: Too Many Requests", true, 7 * time.Second, false},
		{"Server", 500, `oops`, nil, cdp.ErrServer, "cdp: POST /v1/batch: 500: oops", true, 0, false},
		{"Unavailable", 503, ``, nil, cdp.ErrServer, "cdp: POST /v1/batch: 503: Service Unavailable", true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}, cdp.Config{})
			err := b.client.BatchEncoded(context.Background(), encode(t, purchase))
			var ae *cdp.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tt.status, ae.StatusCode)
			require.ErrorIs(t, err, tt.wantClass)
			require.Equal(t, tt.wantMsg, err.Error())
			require.Equal(t, tt.wantRetry, cdp.IsRetryable(err))
			require.Equal(t, tt.wantRetry, track.IsRetryable(err), "track's helpers classify cdp errors too")
			require.Equal(t, tt.wantPermErr, cdp.IsPermanent(err))
			after, ok := cdp.RetryAfter(err)
			require.Equal(t, tt.wantAfter, after)
			require.Equal(t, tt.wantAfter > 0, ok)
		})
	}
}

func TestClient_ErrorBodyIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, reply(500, strings.Repeat("x", 10_000)), cdp.Config{})
	err := b.client.BatchEncoded(context.Background(), encode(t, purchase))
	var ae *cdp.APIError
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Body, 2048)
}

func TestClient_NoAnswerIsATransportError(t *testing.T) {
	t.Parallel()
	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, err := cdp.NewClient(cdp.Config{APIKey: testKey, BaseURL: url})
		require.NoError(t, err)
		err = c.BatchEncoded(context.Background(), encode(t, purchase))
		var te *cdp.TransportError
		require.ErrorAs(t, err, &te)
		require.ErrorIs(t, err, cdp.ErrTransport)
		require.False(t, te.Timeout)
		require.True(t, cdp.IsRetryable(err))
		require.NotContains(t, err.Error(), testKey)
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, cdp.Config{Timeout: 50 * time.Millisecond})
		err := b.client.Send(context.Background(), purchase)
		var te *cdp.TransportError
		require.ErrorAs(t, err, &te)
		require.True(t, te.Timeout)
	})
	t.Run("TruncatedOKBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, _ *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}")
			_ = buf.Flush()
			_ = conn.Close()
		}, cdp.Config{})
		err := b.client.BatchEncoded(context.Background(), encode(t, purchase))
		require.ErrorIs(t, err, cdp.ErrTransport, "a 2xx cut short is no proof of acceptance")
	})
}

func TestClient_RefusesBadBatchesWithoutSending(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, cdp.Config{})
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), cdp.MaxCallBytes-1)
	oversized := append(append([]byte("{"), big...), '}') // MaxCallBytes+1
	tests := []struct {
		name  string
		calls [][]byte
		want  string
	}{
		{"Empty", [][]byte{{}}, "batch[0]: is not an encoded call (a JSON object)"},
		{"NotObject", [][]byte{[]byte(`[1]`)}, "batch[0]: is not an encoded call (a JSON object)"},
		{"OversizedCall", [][]byte{[]byte(`{}`), oversized}, "batch[1]: call is 32769 bytes, limit 32768"},
	}
	for _, tt := range tests {
		err := b.client.BatchEncoded(ctx, tt.calls)
		var ve *cdp.ValidationError
		require.ErrorAs(t, err, &ve, tt.name)
		require.Equal(t, tt.want, ve.Message(), tt.name)
	}
	var many [][]byte
	callOK := append(append([]byte("{"), bytes.Repeat([]byte("x"), 30_000)...), '}')
	for cdp.EncodedBatchSize(many) <= cdp.MaxBatchBytes {
		many = append(many, callOK)
	}
	err := b.client.BatchEncoded(ctx, many)
	var ve *cdp.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "batch", ve.Field)
	require.True(t, ve.TooLarge())

	err = b.client.Batch(ctx, []*cdp.Call{purchase, {Type: cdp.TypeTrack, UserID: "u"}})
	require.ErrorIs(t, err, cdp.ErrInvalidCall)
	require.Contains(t, err.Error(), "cdp: batch call 1: cdp: invalid call: event: is required for track")
	require.ErrorIs(t, b.client.Send(ctx, &cdp.Call{Type: cdp.TypeGroup, UserID: "u"}), cdp.ErrInvalidCall)
	require.Empty(t, b.requests(), "nothing was sent")
	require.NoError(t, b.client.Batch(ctx, []*cdp.Call{identify}))
	require.Len(t, b.requests(), 1)
}

func TestClient_NeverShowsItsKey(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := setup(t, reply(401, ``), cdp.Config{Logger: logger})
	err := b.client.BatchEncoded(context.Background(), encode(t, purchase))
	require.ErrorIs(t, err, cdp.ErrUnauthorized)
	cfg := cdp.Config{APIKey: testKey, BaseURL: b.srv.URL}
	var printed []string
	for _, v := range []any{b.client, *b.client, cfg, &cfg, err} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			printed = append(printed, fmt.Sprintf(verb, v))
		}
	}
	printed = append(printed, logs.String(), b.client.String(), cfg.String(), cfg.GoString(), b.client.GoString())
	for _, s := range printed {
		require.NotContains(t, s, testKey)
		require.NotContains(t, s, base64.StdEncoding.EncodeToString([]byte(testKey+":")))
	}
	require.Contains(t, logs.String(), "cdp request")
	require.Contains(t, fmt.Sprint(cfg), "APIKey:REDACTED")
	require.Equal(t, "cdp.Client{base="+b.srv.URL+", key=REDACTED}", fmt.Sprintf("%v", b.client))
	var nilClient *cdp.Client
	require.Equal(t, "<nil>", fmt.Sprint(nilClient))
}

func TestRetryAfter_ReadsBothAPIs(t *testing.T) {
	t.Parallel()
	te := &track.APIError{StatusCode: 429, RetryAfter: 3 * time.Second}
	d, ok := cdp.RetryAfter(fmt.Errorf("wrapped: %w", te))
	require.True(t, ok)
	require.Equal(t, 3*time.Second, d)
	_, ok = cdp.RetryAfter(errors.New("plain"))
	require.False(t, ok)
}
