package track_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
)

func TestParseRegion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    track.Region
		wantErr bool
	}{
		{"", track.RegionUS, false},
		{"us", track.RegionUS, false},
		{" EU ", track.RegionEU, false},
		{"Us", track.RegionUS, false},
		{"apac", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := track.ParseRegion(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, track.USBaseURL, track.Region("").BaseURL())
	require.Equal(t, track.EUBaseURL, track.RegionEU.BaseURL())
	require.Empty(t, track.Region("mars").BaseURL())
}

func TestNewClient_BaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		region  track.Region
		baseURL string
		want    string
	}{
		{"ZeroIsUS", "", "", "https://track.customer.io"},
		{"EURegion", track.RegionEU, "", "https://track-eu.customer.io"},
		{"BaseURLOverridesRegion", track.RegionEU, "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"TrailingSlashStripped", "", "http://fake:1/", "http://fake:1"},
		{"APIV1Stripped", "", "https://proxy.example/api/v1", "https://proxy.example"},
		{"APIV1SlashStripped", "", "https://proxy.example/cio/api/v1/", "https://proxy.example/cio"},
		{"PrefixKept", "", "https://proxy.example/cio", "https://proxy.example/cio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := track.NewClient(track.Config{SiteID: "s", APIKey: "k", Region: tt.region, BaseURL: tt.baseURL})
			require.NoError(t, err)
			require.Equal(t, tt.want, c.BaseURL())
			require.Equal(t, "s", c.SiteID())
		})
	}
}

func TestNewClient_RejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  track.Config
		want string
	}{
		{"NoSiteID", track.Config{APIKey: testKey}, "site id is required"},
		{"NoKey", track.Config{SiteID: testSite}, "api key is required"},
		{"BlankKey", track.Config{SiteID: testSite, APIKey: "  "}, "api key is required"},
		{"UnknownRegion", track.Config{SiteID: testSite, APIKey: testKey, Region: "mars"}, `unknown region "mars"`},
		{"NegativeTimeout", track.Config{SiteID: testSite, APIKey: testKey, Timeout: -time.Second}, "timeout -1s is negative"},
		{"BadScheme", track.Config{SiteID: testSite, APIKey: testKey, BaseURL: "ftp://x"}, `scheme "ftp"`},
		{"NoHost", track.Config{SiteID: testSite, APIKey: testKey, BaseURL: "http://"}, "no host"},
		{"Unparsable", track.Config{SiteID: testSite, APIKey: testKey, BaseURL: "http://[::1"}, "does not parse"},
		{"CredentialsInURL", track.Config{SiteID: testSite, APIKey: testKey, BaseURL: "https://u:" + testKey + "@x"}, "must not carry credentials"},
		{"Query", track.Config{SiteID: testSite, APIKey: testKey, BaseURL: "https://x/?a=1"}, "query or fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := track.NewClient(tt.cfg)
			require.Nil(t, c)
			require.ErrorIs(t, err, track.ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.want)
			requireNoSecret(t, err.Error())
		})
	}
	t.Run("ListsEveryProblem", func(t *testing.T) {
		t.Parallel()
		_, err := track.NewClient(track.Config{BaseURL: "ftp://x"})
		for _, want := range []string{"site id is required", "api key is required", "scheme"} {
			require.Contains(t, err.Error(), want)
		}
	})
}

// requireNoSecret fails when s holds the key, its base64 or the Basic
// credentials.
func requireNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{
		testKey,
		base64.StdEncoding.EncodeToString([]byte(testKey)),
		base64.StdEncoding.EncodeToString([]byte(testSite + ":" + testKey)),
		testAuth,
	} {
		require.NotContains(t, s, secret)
	}
}

func TestClient_NeverRevealsTheKey(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := setup(t, reply(http.StatusUnauthorized, `{"meta":{"error":"unauthorized"}}`), track.Config{Logger: logger})
	c := b.client

	want := fmt.Sprintf("track.Client{site=%s, base=%s, key=REDACTED}", testSite, b.srv.URL)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		require.Equal(t, want, fmt.Sprintf(verb, c), verb)
	}
	require.Equal(t, fmt.Sprintf("%q", want), fmt.Sprintf("%q", c))
	require.Equal(t, want, c.String())
	require.Equal(t, want, c.GoString())
	require.Contains(t, fmt.Sprintf("%+v", struct{ C *track.Client }{c}), "key=REDACTED")

	cfg := track.Config{SiteID: testSite, APIKey: testKey}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, cfg)
		require.Contains(t, out, "APIKey:REDACTED", verb)
		requireNoSecret(t, out)
		requireNoSecret(t, fmt.Sprintf(verb, &cfg))
	}

	err := c.Identify(t.Context(), "u1", map[string]any{"a": 1})
	require.ErrorIs(t, err, track.ErrUnauthorized)
	requireNoSecret(t, err.Error())
	requireNoSecret(t, fmt.Sprintf("%+v %#v", err, err))

	// A transport error (the server is gone) neither.
	b.srv.Close()
	err = c.Suppress(t.Context(), "u1")
	require.ErrorIs(t, err, track.ErrTransport)
	requireNoSecret(t, err.Error())
	requireNoSecret(t, fmt.Sprintf("%+v %#v", err, err))

	require.Contains(t, logs.String(), "track request")
	require.Contains(t, logs.String(), "site_id="+testSite)
	requireNoSecret(t, logs.String())
}

func TestClient_ErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		body      string
		wantClass error
		wantMsg   string
	}{
		{400, `{"meta":{"error":"bad attribute"}}`, track.ErrInvalidRequest, "track: PUT /api/v1/customers/u1: 400: bad attribute"},
		{401, `{"meta":{"error":"unauthorized"}}`, track.ErrUnauthorized, "track: PUT /api/v1/customers/u1: 401: unauthorized"},
		{403, ``, track.ErrUnauthorized, "track: PUT /api/v1/customers/u1: 403: Forbidden"},
		{404, `not found`, track.ErrInvalidRequest, "track: PUT /api/v1/customers/u1: 404: not found"},
		{408, ``, track.ErrServer, "track: PUT /api/v1/customers/u1: 408: Request Timeout"},
		{413, `{"meta":{"errors":["too big","really"]}}`, track.ErrInvalidRequest, "track: PUT /api/v1/customers/u1: 413: too big; really"},
		{422, ``, track.ErrInvalidRequest, "track: PUT /api/v1/customers/u1: 422: Unprocessable Entity"},
		{429, ``, track.ErrRateLimited, "track: PUT /api/v1/customers/u1: 429: Too Many Requests"},
		{500, ``, track.ErrServer, "track: PUT /api/v1/customers/u1: 500: Internal Server Error"},
		{502, ``, track.ErrServer, "track: PUT /api/v1/customers/u1: 502: Bad Gateway"},
		{503, ``, track.ErrServer, "track: PUT /api/v1/customers/u1: 503: Service Unavailable"},
		{504, ``, track.ErrServer, "track: PUT /api/v1/customers/u1: 504: Gateway Timeout"},
		{522, ``, track.ErrServer, "track: PUT /api/v1/customers/u1: 522: no message"},
		{524, ``, track.ErrServer, "track: PUT /api/v1/customers/u1: 524: no message"},
	}
	classes := []error{track.ErrInvalidRequest, track.ErrUnauthorized, track.ErrRateLimited, track.ErrServer, track.ErrTransport, track.ErrInvalidOp}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()
			b := setup(t, reply(tt.status, tt.body), track.Config{})
			err := b.client.Identify(t.Context(), "u1", nil)
			var ae *track.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tt.status, ae.StatusCode)
			require.Equal(t, tt.body, string(ae.Body))
			require.Equal(t, tt.wantMsg, strings.TrimSpace(err.Error()))
			for _, class := range classes {
				require.Equal(t, class == tt.wantClass, errors.Is(err, class), "%v", class)
			}
			retryable := tt.wantClass == track.ErrServer || tt.wantClass == track.ErrRateLimited
			require.Equal(t, retryable, track.IsRetryable(err))
			require.Equal(t, !retryable, track.IsPermanent(err))
		})
	}
}

func TestClient_2xxIsSuccessWhateverTheBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
	}{{200, ""}, {200, "{}"}, {201, "not json"}, {204, ""}, {202, `{"errors":[{"batch_index":0}]}`}} {
		b := setup(t, reply(tc.status, tc.body), track.Config{})
		require.NoError(t, b.client.Delete(t.Context(), "u1"), "%d %s", tc.status, tc.body)
	}
}

func TestClient_RetryAfter(t *testing.T) {
	t.Parallel()
	t.Run("Seconds", func(t *testing.T) {
		t.Parallel()
		b := setup(t, reply(http.StatusTooManyRequests, "", "Retry-After", "7"), track.Config{})
		err := b.client.Suppress(t.Context(), "u1")
		require.ErrorIs(t, err, track.ErrRateLimited)
		require.True(t, track.IsRetryable(err))
		d, ok := track.RetryAfter(err)
		require.True(t, ok)
		require.Equal(t, 7*time.Second, d)
	})
	t.Run("HTTPDate", func(t *testing.T) {
		t.Parallel()
		at := time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat)
		b := setup(t, reply(http.StatusTooManyRequests, "", "Retry-After", at), track.Config{})
		d, ok := track.RetryAfter(b.client.Suppress(t.Context(), "u1"))
		require.True(t, ok)
		require.Greater(t, d, time.Hour)
		require.LessOrEqual(t, d, 2*time.Hour)
	})
	t.Run("Absent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, reply(http.StatusTooManyRequests, ""), track.Config{})
		err := b.client.Suppress(t.Context(), "u1")
		require.ErrorIs(t, err, track.ErrRateLimited)
		d, ok := track.RetryAfter(err)
		require.False(t, ok)
		require.Zero(t, d)
	})
	t.Run("OnServerError", func(t *testing.T) {
		t.Parallel()
		b := setup(t, reply(http.StatusServiceUnavailable, "", "Retry-After", "3"), track.Config{})
		err := b.client.Suppress(t.Context(), "u1")
		require.ErrorIs(t, err, track.ErrServer)
		d, _ := track.RetryAfter(err)
		require.Equal(t, 3*time.Second, d)
	})
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{" 30 ", 30 * time.Second},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999", track.MaxRetryAfter},
		{"Wed, 01 May 2024 12:01:30 GMT", 90 * time.Second},
		{"Wednesday, 01-May-24 12:00:10 GMT", 10 * time.Second},
		{"Wed, 01 May 2024 11:00:00 GMT", 0},
		{"Fri, 01 May 2099 11:00:00 GMT", track.MaxRetryAfter},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, track.ParseRetryAfter(tt.in, now), tt.in)
	}
}

func TestClient_PerRequestTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, track.Config{Timeout: 50 * time.Millisecond})
	defer close(release)
	err := b.client.Identify(t.Context(), "u1", nil)
	var te *track.TransportError
	require.ErrorAs(t, err, &te)
	require.True(t, te.Timeout)
	require.Equal(t, "PUT", te.Method)
	require.Equal(t, "/api/v1/customers/u1", te.Path)
	require.ErrorIs(t, err, track.ErrTransport)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, track.IsRetryable(err))
	require.False(t, track.IsPermanent(err))
}

func TestClient_CallerCancellation(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, track.Config{Timeout: time.Minute})
	defer close(release)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	err := b.client.Delete(ctx, "u1")
	var te *track.TransportError
	require.ErrorAs(t, err, &te)
	require.False(t, te.Timeout)
	require.ErrorIs(t, err, context.Canceled)
}

func TestClient_ConnectionReset(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, not FIN
			}
			_ = conn.Close()
		}
	}, track.Config{})
	for _, call := range []func() error{
		func() error { return b.client.Track(t.Context(), "u1", track.Event{Name: "e"}) },
		func() error { return b.client.BatchEncoded(t.Context(), [][]byte{[]byte(`{"a":1}`)}) },
	} {
		err := call()
		var te *track.TransportError
		require.ErrorAs(t, err, &te)
		require.False(t, te.Timeout)
		require.ErrorIs(t, err, track.ErrTransport)
		require.True(t, track.IsRetryable(err))
	}
}

func TestClient_UnreachableServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := track.NewClient(track.Config{SiteID: testSite, APIKey: testKey, BaseURL: url})
	require.NoError(t, err)
	err = c.Entity(t.Context(), &track.Op{Identifiers: &track.Identifiers{ID: "u"}, Action: track.ActionDelete})
	require.ErrorIs(t, err, track.ErrTransport)
	require.Contains(t, err.Error(), "track: POST /api/v2/entity: ")
}

func TestClient_ReusesConnections(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 64<<10)
	huge := strings.Repeat("y", track.MaxResponseBytes+1000)
	b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/customers/huge":
			reply(http.StatusBadRequest, huge)(w, r)
		default:
			reply(http.StatusOK, big)(w, r)
		}
	}, track.Config{})
	for range 5 {
		require.NoError(t, b.client.Delete(t.Context(), "u1"))
	}
	err := b.client.Delete(t.Context(), "huge")
	var ae *track.APIError
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Body, 2048)
	require.NoError(t, b.client.Delete(t.Context(), "u1"))
	require.Equal(t, int32(1), b.conns.Load(), "every response body was read and drained")
}

func TestClient_Defaults(t *testing.T) {
	t.Parallel()
	var got recorded
	b := setup(t, func(w http.ResponseWriter, r *http.Request) {
		got = recorded{UserAgent: r.Header.Get("User-Agent"), Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Accept")}
	}, track.Config{})
	require.NoError(t, b.client.Unsuppress(t.Context(), "u1"))
	if diff := cmp.Diff(recorded{UserAgent: track.DefaultUserAgent, Auth: testAuth, ContentType: "application/json"}, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}
