package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// key is one scalar setting: its YAML path (also its viper key), the env vars
// that set it (the first one set wins) and its flag. Every key is bound
// explicitly: viper's AutomaticEnv alone ignores keys it was not told about.
type key struct {
	path string
	envs []string
	flag string
	// def is the default internal/config owns, else the zero value: zero
	// means the owning package's default. Its type is the setting's: string,
	// int, uint32, float64 or time.Duration.
	def any
}

// keys lists every scalar setting outside the workspaces list.
func keys() []key {
	return []key{
		{path: "redis.url", envs: []string{"CIOQ_REDIS_URL", "REDIS_URL", "REDIS_ADDR"}, flag: "redis", def: DefaultRedisURL},
		{path: "key_prefix", envs: []string{"CIOQ_KEY_PREFIX"}, def: DefaultKeyPrefix},
		{path: "http_addr", envs: []string{"CIOQ_HTTP_ADDR"}, flag: "addr", def: DefaultHTTPAddr},

		{path: "worker.concurrency", envs: []string{"CIOQ_WORKER_CONCURRENCY"}, def: 0},
		{path: "worker.default_servers", envs: []string{"CIOQ_WORKER_DEFAULT_SERVERS"}, def: 0},
		{path: "worker.critical_concurrency", envs: []string{"CIOQ_WORKER_CRITICAL_CONCURRENCY"}, def: 0},
		{path: "worker.max_retry", envs: []string{"CIOQ_WORKER_MAX_RETRY"}, def: 0},
		{path: "worker.retry_base", envs: []string{"CIOQ_WORKER_RETRY_BASE"}, def: time.Duration(0)},
		{path: "worker.retry_cap", envs: []string{"CIOQ_WORKER_RETRY_CAP"}, def: time.Duration(0)},
		{path: "worker.shutdown_timeout", envs: []string{"CIOQ_WORKER_SHUTDOWN_TIMEOUT"}, def: time.Duration(0)},
		{path: "worker.request_timeout", envs: []string{"CIOQ_WORKER_REQUEST_TIMEOUT"}, def: time.Duration(0)},
		{path: "worker.unauthorized_pause", envs: []string{"CIOQ_WORKER_UNAUTHORIZED_PAUSE"}, def: time.Duration(0)},

		{path: "batch.max_ops", envs: []string{"CIOQ_BATCH_MAX_OPS"}, def: 0},
		{path: "batch.max_bytes", envs: []string{"CIOQ_BATCH_MAX_BYTES"}, def: 0},
		{path: "batch.max_wait", envs: []string{"CIOQ_BATCH_MAX_WAIT"}, def: time.Duration(0)},

		{path: "idempotency.done_ttl", envs: []string{"CIOQ_IDEMPOTENCY_DONE_TTL"}, def: time.Duration(0)},
		{path: "idempotency.claim_ttl", envs: []string{"CIOQ_IDEMPOTENCY_CLAIM_TTL"}, def: time.Duration(0)},
		{path: "idempotency.tombstone_ttl", envs: []string{"CIOQ_IDEMPOTENCY_TOMBSTONE_TTL"}, def: time.Duration(0)},

		{path: "breaker.failures", envs: []string{"CIOQ_BREAKER_FAILURES"}, def: uint32(0)},
		{path: "breaker.successes", envs: []string{"CIOQ_BREAKER_SUCCESSES"}, def: uint32(0)},
		{path: "breaker.open_timeout", envs: []string{"CIOQ_BREAKER_OPEN_TIMEOUT"}, def: time.Duration(0)},

		{path: "dlq.max_entries", envs: []string{"CIOQ_DLQ_MAX_ENTRIES"}, def: 0},

		{path: "log.level", envs: []string{"CIOQ_LOG_LEVEL"}, flag: "log-level", def: DefaultLogLevel},
		{path: "log.format", envs: []string{"CIOQ_LOG_FORMAT"}, flag: "log-format", def: LogFormatText},

		{path: "spool.dir", envs: []string{"CIOQ_SPOOL_DIR"}, def: ""},
		{path: "spool.max_bytes", envs: []string{"CIOQ_SPOOL_MAX_BYTES"}, def: 0},

		{path: "monitoring.username", envs: []string{"CIOQ_MONITORING_USERNAME"}, def: ""},
		{path: "monitoring.password", envs: []string{"CIOQ_MONITORING_PASSWORD"}, def: ""},
		{path: "monitoring.admin_addr", envs: []string{"CIOQ_ADMIN_ADDR"}, def: ""},
	}
}

// Env vars of the workspace built from the environment (when the file lists
// no workspaces). The CUSTOMERIO_* names are the seed services' own.
const (
	// EnvSiteID sets Workspace.SiteID.
	EnvSiteID = "CUSTOMERIO_SITE_ID"
	// EnvAPIKey sets Workspace.APIKey.
	EnvAPIKey = "CUSTOMERIO_TRACK_API_KEY"
	// EnvRegion sets Workspace.Region (us|eu).
	EnvRegion = "CUSTOMERIO_REGION"
	// EnvTrackURL sets Workspace.TrackURL.
	EnvTrackURL = "CUSTOMERIO_TRACK_URL"
	// EnvRateLimit sets Workspace.RateLimit (requests/s).
	EnvRateLimit = "CIOQ_RATE_LIMIT"
	// EnvRateBurst sets Workspace.RateBurst.
	EnvRateBurst = "CIOQ_RATE_BURST"
	// EnvCriticalShare sets Workspace.CriticalShare.
	EnvCriticalShare = "CIOQ_CRITICAL_SHARE"
	// EnvCDPAPIKey sets Workspace.CDPAPIKey, the Pipelines API key.
	EnvCDPAPIKey = "CUSTOMERIO_CDP_API_KEY"
	// EnvCDPURL sets Workspace.CDPURL.
	EnvCDPURL = "CUSTOMERIO_CDP_URL"
	// EnvCDPRateLimit sets Workspace.CDPRateLimit (requests/s; 0: share
	// the Track budget).
	EnvCDPRateLimit = "CIOQ_CDP_RATE_LIMIT"
	// EnvConfigFile names the YAML config file when --config is not given.
	EnvConfigFile = "CIOQ_CONFIG"
)

// parseAs parses s as the type of def.
func parseAs(def any, s string) (any, error) {
	s = strings.TrimSpace(s)
	switch def.(type) {
	case string:
		return s, nil
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("want a whole number")
		}
		return n, nil
	case uint32:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("want a whole number >= 0")
		}
		return uint32(n), nil
	case float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("want a number")
		}
		return f, nil
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("want a duration with a unit, like 500ms, 30s or 24h")
		}
		return d, nil
	}
	return nil, fmt.Errorf("config: no parser for %T", def)
}

// isNonPositive reports whether a parsed number is zero or less.
func isNonPositive(v any) bool {
	switch n := v.(type) {
	case int:
		return n <= 0
	case uint32:
		return n == 0
	case float64:
		return n <= 0
	case time.Duration:
		return n <= 0
	}
	return false
}
