package config

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

func TestNormalizeTrackURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"https://track.customer.io", "https://track.customer.io"},
		{"https://track.customer.io/", "https://track.customer.io"},
		{"https://track.customer.io/api/v1", "https://track.customer.io"},
		{"https://track.customer.io/api/v1/", "https://track.customer.io"},
		{"http://127.0.0.1:9000/api/v2/", "http://127.0.0.1:9000"},
		{" http://fake:1/base/api/v1 ", "http://fake:1/base"},
		{"http://fake:1/api/v1x", "http://fake:1/api/v1x"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, NormalizeTrackURL(tt.in))
		})
	}
}

// WithDefaults fills the defaults internal/config knows: its own and those
// of the core packages it nests or names. The worker's and producer's
// settings stay zero (cmd/cioq fills them through LoadOptions.Defaults; its
// settings_test.go checks that).
func TestWithDefaults_FillsEveryZeroField(t *testing.T) {
	t.Parallel()
	in := &Config{Workspaces: []Workspace{{Name: "w", SiteID: "s", APIKey: "k", Batch: &Batch{MaxOps: 10}}}}
	got := in.WithDefaults()
	want := &Config{
		Redis:     Redis{URL: DefaultRedisURL},
		KeyPrefix: DefaultKeyPrefix,
		HTTPAddr:  DefaultHTTPAddr,
		Workspaces: []Workspace{{
			Name: "w", SiteID: "s", APIKey: "k", Region: "us", TrackURL: track.USBaseURL, CDPURL: cdp.USBaseURL,
			RateLimit: ratelimit.DefaultRate, CriticalShare: ratelimit.DefaultCriticalShare, Weight: 1,
			Batch: &Batch{MaxOps: 10},
		}},
		Idempotency: idempotency.Config{Prefix: DefaultKeyPrefix, DoneTTL: idempotency.DefaultDoneTTL,
			ClaimTTL: idempotency.DefaultClaimTTL, TombstoneTTL: idempotency.DefaultTombstoneTTL},
		Breaker: breaker.Config{Prefix: DefaultKeyPrefix, Failures: breaker.DefaultFailures, Successes: breaker.DefaultSuccesses,
			OpenTimeout: breaker.DefaultOpenTimeout, SharedCheckInterval: breaker.DefaultSharedCheckInterval},
		Log: Log{Level: DefaultLogLevel, Format: LogFormatText},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("WithDefaults (-want +got):\n%s", diff)
	}
	require.Equal(t, 10, in.Workspaces[0].Batch.MaxOps, "the input is not modified")
	require.Nil(t, got.Validate())
}

func TestValidate_ListsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg := &Config{
		Redis:     Redis{URL: "http://not-redis"},
		KeyPrefix: "{bad}",
		HTTPAddr:  "no-port",
		Workspaces: []Workspace{{
			Name: "w", SiteID: "s", APIKey: "key-s3cr3t", Region: "ap",
			RateLimit: -1, RateBurst: -2, CriticalShare: 1.5,
			Batch: &Batch{MaxBytes: 512 * 1024},
		}},
		Worker:      Worker{Concurrency: -1, RetryBase: 20 * time.Minute, RetryCap: 10 * time.Minute, RequestTimeout: time.Minute},
		Idempotency: idempotency.Config{TombstoneTTL: -time.Hour},
		Log:         Log{Level: "loud"},
	}
	err := cfg.Validate()
	var ve *ValidationError
	require.True(t, errors.As(err, &ve))
	require.ErrorIs(t, err, ErrInvalid)
	want := []string{
		`redis url http://not-redis: asynq: unsupported uri scheme: "http" (set --redis, CIOQ_REDIS_URL, REDIS_URL or REDIS_ADDR)`,
		`key_prefix "{bad}": must not contain braces or spaces (cioq adds a {workspace} hash tag itself)`,
		`http_addr "no-port": want host:port or :port (set --addr or CIOQ_HTTP_ADDR)`,
		`workspace "w": region "ap": want us or eu (CUSTOMERIO_REGION)`,
		`workspace "w": rate_limit -1: must be > 0 requests/s (CIOQ_RATE_LIMIT)`,
		`workspace "w": rate_burst -2: must be >= 0 (CIOQ_RATE_BURST)`,
		`workspace "w": critical_share 1.5: must be between 0 and 1 exclusive`,
		`workspace "w": batch.max_bytes 524288: must be below 500000 (Customer.io rejects a v2 batch of 500 KB)`,
		`worker.concurrency -1: must be > 0`,
		`worker.retry_base 20m0s is above worker.retry_cap 10m0s`,
		`idempotency.tombstone_ttl -1h0m0s: must be > 0`,
		`idempotency.claim_ttl 30s must exceed worker.request_timeout 1m0s (a claim must outlive the request it guards)`,
		`log.level "loud": want debug, info, warn or error (--log-level, CIOQ_LOG_LEVEL)`,
	}
	cfg.EnvWorkspace = true
	ve = nil
	require.ErrorAs(t, cfg.Validate(), &ve)
	if diff := cmp.Diff(want, ve.Problems); diff != "" {
		t.Fatalf("problems (-want +got):\n%s", diff)
	}
	require.NotContains(t, ve.Error(), "key-s3cr3t")
}

func TestValidate_Credentials(t *testing.T) {
	t.Parallel()
	cfg := &Config{Workspaces: []Workspace{{Name: "default"}}, EnvWorkspace: true}
	var ve *ValidationError
	require.ErrorAs(t, cfg.Validate(), &ve)
	require.Equal(t, []string{
		`workspace "default": site id is missing: set CUSTOMERIO_SITE_ID`,
		`workspace "default": API key is missing: set CUSTOMERIO_TRACK_API_KEY`,
	}, ve.Problems)
	require.NoError(t, cfg.ValidateWithoutCredentials())

	require.ErrorContains(t, (&Config{}).ValidateWithoutCredentials(), "no workspace")
}

// The admin listener serves personal data: without credentials it may only
// listen on loopback.
func TestValidate_AdminAddr(t *testing.T) {
	t.Parallel()
	creds := Monitoring{Username: "ops", Password: "pw"}
	for _, tt := range []struct {
		name    string
		m       Monitoring
		wantErr string
	}{
		{"LoopbackV4WithoutCredentials", Monitoring{AdminAddr: "127.0.0.1:9091"}, ""},
		{"LoopbackV6WithoutCredentials", Monitoring{AdminAddr: "[::1]:9091"}, ""},
		{"LocalhostWithoutCredentials", Monitoring{AdminAddr: "localhost:9091"}, ""},
		{"EveryInterfaceWithoutCredentials", Monitoring{AdminAddr: ":9091"}, "must be on loopback"},
		{"PodIPWithoutCredentials", Monitoring{AdminAddr: "10.1.2.3:9091"}, "must be on loopback"},
		{"EveryInterfaceWithCredentials", Monitoring{Username: creds.Username, Password: creds.Password, AdminAddr: ":9091"}, ""},
		{"NotHostPort", Monitoring{AdminAddr: "9091"}, "want host:port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := (&Config{Workspaces: []Workspace{{Name: "default", SiteID: "s", APIKey: "k"}}, Monitoring: tt.m}).WithDefaults()
			err := cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
