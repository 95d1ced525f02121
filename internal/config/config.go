package config

import (
	"cmp"
	"strings"
	"time"
)

// Defaults. A zero field in a Config means the matching default.
const (
	// DefaultRedisURL is the Redis used when no flag, env var or file sets one.
	DefaultRedisURL = "redis://127.0.0.1:6379"
	// DefaultKeyPrefix starts every Redis key cioq writes.
	DefaultKeyPrefix = "cioq:"
	// DefaultHTTPAddr is the listen address of the server commands.
	DefaultHTTPAddr = ":8080"

	// DefaultWorkspaceName names the workspace built from the environment.
	DefaultWorkspaceName = "default"
	// RegionUS and RegionEU are the Customer.io regions.
	RegionUS = "us"
	// RegionEU is Customer.io's EU region.
	RegionEU = "eu"
	// DefaultRegion is the region of a workspace that names none.
	DefaultRegion = RegionUS
	// TrackURLUS is the Track API base URL of the US region.
	TrackURLUS = "https://track.customer.io"
	// TrackURLEU is the Track API base URL of the EU region.
	TrackURLEU = "https://track-eu.customer.io"
	// CDPURLUS is the Pipelines API base URL of the US region.
	CDPURLUS = "https://cdp.customer.io"
	// CDPURLEU is the Pipelines API base URL of the EU region.
	CDPURLEU = "https://cdp-eu.customer.io"
	// DefaultRateLimit is a workspace's request budget in requests/s, shared
	// by every replica (Customer.io's fair use is 100/s).
	DefaultRateLimit = 80.0
	// DefaultCriticalShare is the part of a workspace's budget reserved for
	// the critical lane (suppress, unsuppress, delete).
	DefaultCriticalShare = 0.2

	// DefaultWorkerConcurrency is the handler concurrency of each default-lane
	// server. It is high because handlers mostly wait on their batch.
	DefaultWorkerConcurrency = 1000
	// DefaultWorkerServers is the number of asynq servers on the default lane.
	DefaultWorkerServers = 2
	// DefaultCriticalConcurrency is the concurrency of the critical-lane server.
	DefaultCriticalConcurrency = 50
	// DefaultMaxRetry is how many failed deliveries a task gets before it is
	// dead-lettered.
	DefaultMaxRetry = 25
	// DefaultRetryBase is the first backoff step (full jitter, doubling).
	DefaultRetryBase = time.Second
	// DefaultRetryCap bounds one backoff delay.
	DefaultRetryCap = 10 * time.Minute
	// DefaultShutdownTimeout bounds a graceful worker shutdown.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds one HTTP request to the Track API.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultUnauthorizedPause is how long a workspace pauses after
	// Customer.io answered 401/403, before one batch probes again.
	DefaultUnauthorizedPause = time.Minute

	// DefaultBatchMaxOps is the most ops in one v2 batch request.
	DefaultBatchMaxOps = 500
	// DefaultBatchMaxBytes is the largest v2 batch body cioq builds (450 KiB).
	DefaultBatchMaxBytes = 450 * 1024
	// BatchBytesLimit is Customer.io's bound on a v2 batch request ("< 500 KB",
	// read as 500,000 bytes to be safe): Batch.MaxBytes must stay below it.
	BatchBytesLimit = 500_000
	// DefaultBatchMaxWait is how long a batch waits for more ops.
	DefaultBatchMaxWait = 50 * time.Millisecond

	// DefaultDoneTTL is how long a delivered op's done-marker is kept.
	DefaultDoneTTL = 24 * time.Hour
	// DefaultClaimTTL is how long a claim on an op being sent lasts.
	DefaultClaimTTL = 30 * time.Second
	// DefaultTombstoneTTL is how long a delete/suppress tombstone is kept.
	DefaultTombstoneTTL = 168 * time.Hour

	// DefaultBreakerFailures is how many consecutive failures open a breaker.
	DefaultBreakerFailures uint32 = 5
	// DefaultBreakerSuccesses is how many successes in half-open close it.
	DefaultBreakerSuccesses uint32 = 3
	// DefaultBreakerOpenTimeout is how long a breaker stays open.
	DefaultBreakerOpenTimeout = 30 * time.Second

	// DefaultDLQMaxEntries bounds the dead-letter store of one workspace.
	DefaultDLQMaxEntries = 100_000

	// DefaultLogLevel is the log level: debug, info, warn or error.
	DefaultLogLevel = "info"
	// LogFormatText and LogFormatJSON are the log formats.
	LogFormatText = "text"
	// LogFormatJSON writes one JSON object per line.
	LogFormatJSON = "json"
	// DefaultLogFormat is the log format.
	DefaultLogFormat = LogFormatText
)

// Config is cioq's whole configuration. Load builds it from file, env and
// flags; a Config built in code gets its defaults from WithDefaults.
type Config struct {
	// Redis is where the queue, limiter, markers and dead letters live.
	Redis Redis `mapstructure:"redis" yaml:"redis"`
	// KeyPrefix starts every Redis key cioq writes (not asynq's own keys).
	// Env CIOQ_KEY_PREFIX. Empty means DefaultKeyPrefix ("cioq:").
	KeyPrefix string `mapstructure:"key_prefix" yaml:"key_prefix"`
	// HTTPAddr is the listen address of worker, ingest, fakecio and
	// dashboard. Flag --addr, env CIOQ_HTTP_ADDR. Empty means
	// DefaultHTTPAddr (":8080").
	HTTPAddr string `mapstructure:"http_addr" yaml:"http_addr"`
	// Workspaces are the Customer.io workspaces cioq delivers to. From the
	// file; when it lists none, one workspace named "default" from the
	// CUSTOMERIO_* env vars.
	Workspaces []Workspace `mapstructure:"workspaces" yaml:"workspaces"`
	// EnvWorkspace reports that Workspaces holds the one workspace built
	// from the environment (the file listed none). Set by Load.
	EnvWorkspace bool `mapstructure:"-" yaml:"-"`
	// Worker sizes the asynq servers and the retry policy.
	Worker Worker `mapstructure:"worker" yaml:"worker"`
	// Batch is the v2 batching policy of every workspace without its own.
	Batch Batch `mapstructure:"batch" yaml:"batch"`
	// Idempotency sets the TTLs of done-markers, claims and tombstones.
	Idempotency Idempotency `mapstructure:"idempotency" yaml:"idempotency"`
	// Breaker sets each workspace's circuit breaker.
	Breaker Breaker `mapstructure:"breaker" yaml:"breaker"`
	// DLQ bounds the dead-letter store.
	DLQ DLQ `mapstructure:"dlq" yaml:"dlq"`
	// Log sets the process logger.
	Log Log `mapstructure:"log" yaml:"log"`
	// Spool is the producer's on-disk spool for Redis outages (ingest,
	// import).
	Spool Spool `mapstructure:"spool" yaml:"spool"`
	// Monitoring protects the worker's dashboard (/monitoring/) and op
	// lookups (/ops/) with HTTP basic auth.
	Monitoring Monitoring `mapstructure:"monitoring" yaml:"monitoring"`
}

// DefaultSpoolMaxBytes bounds the producer's on-disk spool.
const DefaultSpoolMaxBytes = 256 << 20

// Spool configures the producer's on-disk spool: while Redis is unreachable,
// `cioq ingest` and `cioq import` append ops here (bounded) and replay them in
// order when Redis is back (docs/spool.md).
type Spool struct {
	// Dir is the spool directory, one per process (it is locked). Env
	// CIOQ_SPOOL_DIR. Empty means no spool: with Redis down, ingest answers
	// 503 and import stops.
	Dir string `mapstructure:"dir" yaml:"dir"`
	// MaxBytes bounds the spool on disk. Env CIOQ_SPOOL_MAX_BYTES. Zero
	// means DefaultSpoolMaxBytes (256 MiB).
	MaxBytes int `mapstructure:"max_bytes" yaml:"max_bytes"`
}

// Monitoring guards the worker's admin paths: the asynqmon dashboard
// (/monitoring/, which shows payloads and Redis INFO) and op lookups
// (/ops/{id}, which show person ids, often emails). On the main listener
// they need HTTP basic auth with Username and Password; with neither set
// they are refused (403). AdminAddr serves them on a listener of their
// own, bound to loopback unless credentials are set. Set both Username and
// Password or neither.
type Monitoring struct {
	// Username. Env CIOQ_MONITORING_USERNAME.
	Username string `mapstructure:"username" yaml:"username"`
	// Password, printed as REDACTED. Env CIOQ_MONITORING_PASSWORD.
	Password Secret `mapstructure:"password" yaml:"password"`
	// AdminAddr is a second listen address of the worker serving the admin
	// paths (and the health and metrics endpoints): without credentials
	// only a loopback address (127.0.0.1:9091, [::1]:9091, localhost:9091)
	// is allowed, reached by kubectl port-forward or an SSH tunnel. Flag
	// --admin-addr of cioq worker, env CIOQ_ADMIN_ADDR. Empty means none.
	AdminAddr string `mapstructure:"admin_addr" yaml:"admin_addr"`
}

// HasCredentials reports whether basic-auth credentials are configured.
func (m Monitoring) HasCredentials() bool { return m.Username != "" && m.Password != "" }

// Workspace is one Customer.io workspace: its credentials, region and budget.
type Workspace struct {
	// Name identifies the workspace in keys, metrics, logs and ops
	// ([A-Za-z0-9_.-], unique). The env workspace is "default".
	Name string `mapstructure:"name" yaml:"name"`
	// SiteID is the Track API site id. Env CUSTOMERIO_SITE_ID. Required.
	SiteID string `mapstructure:"site_id" yaml:"site_id"`
	// APIKey is the Track API key. Env CUSTOMERIO_TRACK_API_KEY. Required.
	// It prints as "REDACTED".
	APIKey Secret `mapstructure:"api_key" yaml:"api_key"`
	// APIKeyEnv names an env var that holds the API key, so a config file
	// can stay free of secrets. Used only when APIKey is empty.
	APIKeyEnv string `mapstructure:"api_key_env" yaml:"api_key_env,omitempty"`
	// Region is "us" or "eu". Env CUSTOMERIO_REGION. Empty means "us".
	Region string `mapstructure:"region" yaml:"region"`
	// TrackURL is the Track API base URL; a trailing "/", "/api/v1" or
	// "/api/v2" is stripped. Env CUSTOMERIO_TRACK_URL. Empty means the
	// region's URL (TrackURLUS or TrackURLEU).
	TrackURL string `mapstructure:"track_url" yaml:"track_url" redact:"url"`
	// CDPAPIKey is the workspace's Pipelines API key: `cioq ingest`
	// authenticates Pipelines calls by it (the Basic-auth user name) and the
	// worker sends them with it. Env CUSTOMERIO_CDP_API_KEY. Empty means the
	// workspace takes no Pipelines calls. It prints as "REDACTED".
	CDPAPIKey Secret `mapstructure:"cdp_api_key" yaml:"cdp_api_key,omitempty"`
	// CDPAPIKeyEnv names an env var that holds the Pipelines API key, used
	// only when CDPAPIKey is empty. File only.
	CDPAPIKeyEnv string `mapstructure:"cdp_api_key_env" yaml:"cdp_api_key_env,omitempty"`
	// CDPURL is the Pipelines API base URL; a trailing "/" or "/v1" is
	// stripped. Env CUSTOMERIO_CDP_URL. Empty means the region's URL
	// (CDPURLUS or CDPURLEU).
	CDPURL string `mapstructure:"cdp_url" yaml:"cdp_url" redact:"url"`
	// CDPRateLimit gives the workspace's Pipelines requests a budget of
	// their own, in requests/s across all replicas. Env CIOQ_CDP_RATE_LIMIT.
	// Zero, the default, means Track and Pipelines requests share RateLimit:
	// Customer.io documents one soft limit for both APIs
	// (docs/pipelines.md, "Rate limit").
	CDPRateLimit float64 `mapstructure:"cdp_rate_limit" yaml:"cdp_rate_limit,omitempty"`
	// RateLimit is the request budget in requests/s across all replicas.
	// Env CIOQ_RATE_LIMIT. Zero means DefaultRateLimit (80).
	RateLimit float64 `mapstructure:"rate_limit" yaml:"rate_limit"`
	// RateBurst is the limiter burst. Env CIOQ_RATE_BURST. Zero means the
	// limiter's own default.
	RateBurst int `mapstructure:"rate_burst" yaml:"rate_burst"`
	// CriticalShare is the part of RateLimit reserved for the critical lane,
	// between 0 and 1 exclusive. Env CIOQ_CRITICAL_SHARE. Zero means
	// DefaultCriticalShare (0.2).
	CriticalShare float64 `mapstructure:"critical_share" yaml:"critical_share"`
	// Weight is the workspace's share of the workers' dequeues (asynq's
	// weighted queue priority) when several workspaces have a backlog. File
	// only. Zero means 1.
	Weight int `mapstructure:"weight" yaml:"weight"`
	// Batch overrides Config.Batch for this workspace; its zero fields take
	// Config.Batch's. After WithDefaults it is never nil and holds the
	// effective values.
	Batch *Batch `mapstructure:"batch" yaml:"batch,omitempty"`
}

// Worker sizes the asynq servers and the retry policy.
type Worker struct {
	// Concurrency is the handler concurrency of each default-lane server.
	// Env CIOQ_WORKER_CONCURRENCY. Zero means DefaultWorkerConcurrency (1000).
	Concurrency int `mapstructure:"concurrency" yaml:"concurrency"`
	// DefaultServers is the number of asynq servers on the default lane.
	// Env CIOQ_WORKER_DEFAULT_SERVERS. Zero means DefaultWorkerServers (2).
	DefaultServers int `mapstructure:"default_servers" yaml:"default_servers"`
	// CriticalConcurrency is the critical-lane server's concurrency.
	// Env CIOQ_WORKER_CRITICAL_CONCURRENCY. Zero means
	// DefaultCriticalConcurrency (50).
	CriticalConcurrency int `mapstructure:"critical_concurrency" yaml:"critical_concurrency"`
	// MaxRetry is how many failed deliveries a task gets before its ops are
	// dead-lettered. Env CIOQ_WORKER_MAX_RETRY. Zero means DefaultMaxRetry (25).
	MaxRetry int `mapstructure:"max_retry" yaml:"max_retry"`
	// RetryBase is the first backoff step. Env CIOQ_WORKER_RETRY_BASE.
	// Zero means DefaultRetryBase (1s).
	RetryBase time.Duration `mapstructure:"retry_base" yaml:"retry_base"`
	// RetryCap bounds one backoff delay. Env CIOQ_WORKER_RETRY_CAP.
	// Zero means DefaultRetryCap (10m).
	RetryCap time.Duration `mapstructure:"retry_cap" yaml:"retry_cap"`
	// ShutdownTimeout bounds a graceful shutdown. Env
	// CIOQ_WORKER_SHUTDOWN_TIMEOUT. Zero means DefaultShutdownTimeout (30s).
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" yaml:"shutdown_timeout"`
	// RequestTimeout bounds one Track API request. Env
	// CIOQ_WORKER_REQUEST_TIMEOUT. Zero means DefaultRequestTimeout (10s).
	RequestTimeout time.Duration `mapstructure:"request_timeout" yaml:"request_timeout"`
	// UnauthorizedPause is how long a workspace stops sending after a
	// 401/403 (its ops wait, no failure counted) before one batch probes
	// again. Env CIOQ_WORKER_UNAUTHORIZED_PAUSE. Zero means
	// DefaultUnauthorizedPause (1m).
	UnauthorizedPause time.Duration `mapstructure:"unauthorized_pause" yaml:"unauthorized_pause"`
}

// Batch is the v2 batching policy: a batch is sent at MaxOps, MaxBytes or
// MaxWait, whichever comes first.
type Batch struct {
	// MaxOps is the most ops in one request. Env CIOQ_BATCH_MAX_OPS.
	// Zero means DefaultBatchMaxOps (500).
	MaxOps int `mapstructure:"max_ops" yaml:"max_ops"`
	// MaxBytes is the largest request body, below BatchBytesLimit. Env
	// CIOQ_BATCH_MAX_BYTES. Zero means DefaultBatchMaxBytes (450 KiB).
	MaxBytes int `mapstructure:"max_bytes" yaml:"max_bytes"`
	// MaxWait is how long the first op of a batch waits for others. Env
	// CIOQ_BATCH_MAX_WAIT. Zero means DefaultBatchMaxWait (50ms).
	MaxWait time.Duration `mapstructure:"max_wait" yaml:"max_wait"`
}

// Idempotency sets the TTLs of the Redis keys that keep delivery single.
type Idempotency struct {
	// DoneTTL is how long a delivered op's done-marker lives. Env
	// CIOQ_IDEMPOTENCY_DONE_TTL. Zero means DefaultDoneTTL (24h).
	DoneTTL time.Duration `mapstructure:"done_ttl" yaml:"done_ttl"`
	// ClaimTTL is how long a claim on an op in flight lives; it must exceed
	// Worker.RequestTimeout. Env CIOQ_IDEMPOTENCY_CLAIM_TTL. Zero means
	// DefaultClaimTTL (30s).
	ClaimTTL time.Duration `mapstructure:"claim_ttl" yaml:"claim_ttl"`
	// TombstoneTTL is how long a delete/suppress tombstone lives. Env
	// CIOQ_IDEMPOTENCY_TOMBSTONE_TTL. Zero means DefaultTombstoneTTL (168h).
	TombstoneTTL time.Duration `mapstructure:"tombstone_ttl" yaml:"tombstone_ttl"`
}

// Breaker sets each workspace's circuit breaker.
type Breaker struct {
	// Failures is how many consecutive failures open it. Env
	// CIOQ_BREAKER_FAILURES. Zero means DefaultBreakerFailures (5).
	Failures uint32 `mapstructure:"failures" yaml:"failures"`
	// Successes is how many half-open successes close it. Env
	// CIOQ_BREAKER_SUCCESSES. Zero means DefaultBreakerSuccesses (3).
	Successes uint32 `mapstructure:"successes" yaml:"successes"`
	// OpenTimeout is how long it stays open before a trial. Env
	// CIOQ_BREAKER_OPEN_TIMEOUT. Zero means DefaultBreakerOpenTimeout (30s).
	OpenTimeout time.Duration `mapstructure:"open_timeout" yaml:"open_timeout"`
}

// DLQ bounds the dead-letter store.
type DLQ struct {
	// MaxEntries is the most dead letters kept per workspace. Env
	// CIOQ_DLQ_MAX_ENTRIES. Zero means DefaultDLQMaxEntries (100000).
	MaxEntries int `mapstructure:"max_entries" yaml:"max_entries"`
}

// Log sets the process logger.
type Log struct {
	// Level is debug, info, warn or error. Flag --log-level, env
	// CIOQ_LOG_LEVEL. Empty means DefaultLogLevel (info).
	Level string `mapstructure:"level" yaml:"level"`
	// Format is "text" or "json". Flag --log-format, env CIOQ_LOG_FORMAT.
	// Empty means DefaultLogFormat (text).
	Format string `mapstructure:"format" yaml:"format"`
}

// WithDefaults returns a copy of c with every zero field set to its default
// and every workspace's TrackURL normalized and Batch filled in. It does not
// validate.
func (c *Config) WithDefaults() *Config {
	out := *c
	out.Redis.URL = cmp.Or(out.Redis.URL, DefaultRedisURL)
	out.KeyPrefix = cmp.Or(out.KeyPrefix, DefaultKeyPrefix)
	out.HTTPAddr = cmp.Or(out.HTTPAddr, DefaultHTTPAddr)
	out.Worker = out.Worker.withDefaults()
	out.Batch = out.Batch.withDefaults()
	out.Idempotency = out.Idempotency.withDefaults()
	out.Breaker = out.Breaker.withDefaults()
	out.DLQ.MaxEntries = cmp.Or(out.DLQ.MaxEntries, DefaultDLQMaxEntries)
	out.Spool.MaxBytes = cmp.Or(out.Spool.MaxBytes, DefaultSpoolMaxBytes)
	out.Log.Level = cmp.Or(strings.ToLower(strings.TrimSpace(out.Log.Level)), DefaultLogLevel)
	out.Log.Format = cmp.Or(strings.ToLower(strings.TrimSpace(out.Log.Format)), DefaultLogFormat)
	out.Workspaces = make([]Workspace, len(c.Workspaces))
	for i, ws := range c.Workspaces {
		out.Workspaces[i] = ws.withDefaults(out.Batch)
	}
	return &out
}

func (w Worker) withDefaults() Worker {
	w.Concurrency = cmp.Or(w.Concurrency, DefaultWorkerConcurrency)
	w.DefaultServers = cmp.Or(w.DefaultServers, DefaultWorkerServers)
	w.CriticalConcurrency = cmp.Or(w.CriticalConcurrency, DefaultCriticalConcurrency)
	w.MaxRetry = cmp.Or(w.MaxRetry, DefaultMaxRetry)
	w.RetryBase = cmp.Or(w.RetryBase, DefaultRetryBase)
	w.RetryCap = cmp.Or(w.RetryCap, DefaultRetryCap)
	w.ShutdownTimeout = cmp.Or(w.ShutdownTimeout, DefaultShutdownTimeout)
	w.RequestTimeout = cmp.Or(w.RequestTimeout, DefaultRequestTimeout)
	w.UnauthorizedPause = cmp.Or(w.UnauthorizedPause, DefaultUnauthorizedPause)
	return w
}

func (b Batch) withDefaults() Batch {
	b.MaxOps = cmp.Or(b.MaxOps, DefaultBatchMaxOps)
	b.MaxBytes = cmp.Or(b.MaxBytes, DefaultBatchMaxBytes)
	b.MaxWait = cmp.Or(b.MaxWait, DefaultBatchMaxWait)
	return b
}

func (i Idempotency) withDefaults() Idempotency {
	i.DoneTTL = cmp.Or(i.DoneTTL, DefaultDoneTTL)
	i.ClaimTTL = cmp.Or(i.ClaimTTL, DefaultClaimTTL)
	i.TombstoneTTL = cmp.Or(i.TombstoneTTL, DefaultTombstoneTTL)
	return i
}

func (b Breaker) withDefaults() Breaker {
	b.Failures = cmp.Or(b.Failures, DefaultBreakerFailures)
	b.Successes = cmp.Or(b.Successes, DefaultBreakerSuccesses)
	b.OpenTimeout = cmp.Or(b.OpenTimeout, DefaultBreakerOpenTimeout)
	return b
}

func (ws Workspace) withDefaults(global Batch) Workspace {
	ws.Region = cmp.Or(strings.ToLower(strings.TrimSpace(ws.Region)), DefaultRegion)
	ws.TrackURL = NormalizeTrackURL(ws.TrackURL)
	if ws.TrackURL == "" {
		switch ws.Region {
		case RegionUS:
			ws.TrackURL = TrackURLUS
		case RegionEU:
			ws.TrackURL = TrackURLEU
		}
	}
	ws.CDPURL = NormalizeCDPURL(ws.CDPURL)
	if ws.CDPURL == "" {
		switch ws.Region {
		case RegionUS:
			ws.CDPURL = CDPURLUS
		case RegionEU:
			ws.CDPURL = CDPURLEU
		}
	}
	ws.RateLimit = cmp.Or(ws.RateLimit, DefaultRateLimit)
	ws.CriticalShare = cmp.Or(ws.CriticalShare, DefaultCriticalShare)
	ws.Weight = cmp.Or(ws.Weight, 1)
	b := global
	if ws.Batch != nil {
		b.MaxOps = cmp.Or(ws.Batch.MaxOps, global.MaxOps)
		b.MaxBytes = cmp.Or(ws.Batch.MaxBytes, global.MaxBytes)
		b.MaxWait = cmp.Or(ws.Batch.MaxWait, global.MaxWait)
	}
	ws.Batch = &b
	return ws
}

// NormalizeCDPURL trims spaces and strips trailing "/" and a "/v1" from a
// Pipelines API base URL (Customer.io writes it both ways), so
// "https://cdp.customer.io/v1/" becomes "https://cdp.customer.io".
func NormalizeCDPURL(u string) string {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	return strings.TrimRight(strings.TrimSuffix(u, "/v1"), "/")
}

// NormalizeTrackURL trims spaces and strips a trailing "/", "/api/v1" or
// "/api/v2" from a Track API base URL, so "https://x/api/v1/" becomes
// "https://x".
func NormalizeTrackURL(u string) string {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	for _, suffix := range []string{"/api/v1", "/api/v2"} {
		if strings.HasSuffix(u, suffix) {
			u = strings.TrimRight(strings.TrimSuffix(u, suffix), "/")
			break
		}
	}
	return u
}
