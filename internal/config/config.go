package config

import (
	"cmp"
	"strings"
	"time"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// Defaults internal/config owns. Every other setting's default belongs to
// the package that uses it (idempotency, breaker, ratelimit, track, cdp,
// worker, producer): a zero field means that package's default, which
// WithDefaults and LoadOptions.Defaults fill in.
const (
	// DefaultRedisURL is the Redis used when no flag, env var or file sets one.
	DefaultRedisURL = "redis://127.0.0.1:6379"
	// DefaultKeyPrefix starts every Redis key cioq writes.
	DefaultKeyPrefix = "cioq:"
	// DefaultHTTPAddr is the listen address of the server commands.
	DefaultHTTPAddr = ":8080"
	// DefaultWorkspaceName names the workspace built from the environment.
	DefaultWorkspaceName = "default"
	// DefaultLogLevel is the log level: debug, info, warn or error.
	DefaultLogLevel = "info"
	// LogFormatText writes logfmt-style text lines.
	LogFormatText = "text"
	// LogFormatJSON writes one JSON object per line.
	LogFormatJSON = "json"
)

// Config is cioq's whole configuration. Load builds it from file, env and
// flags; a Config built in code gets its defaults from WithDefaults. Only
// fields with a yaml tag are settings.
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
	// Idempotency sets the TTLs of done-markers, claims and tombstones
	// (env CIOQ_IDEMPOTENCY_DONE_TTL, _CLAIM_TTL, _TOMBSTONE_TTL). Its
	// ClaimTTL must exceed Worker.RequestTimeout. Prefix is KeyPrefix.
	Idempotency idempotency.Config `mapstructure:"idempotency" yaml:"idempotency"`
	// Breaker sets each workspace's circuit breaker: its settings are
	// Failures, Successes and OpenTimeout (env CIOQ_BREAKER_FAILURES,
	// _SUCCESSES, _OPEN_TIMEOUT); Prefix is KeyPrefix.
	Breaker breaker.Config `mapstructure:"breaker" yaml:"breaker"`
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

// Spool configures the producer's on-disk spool: while Redis is unreachable,
// `cioq ingest` and `cioq import` append ops here (bounded) and replay them in
// order when Redis is back (docs/spool.md).
type Spool struct {
	// Dir is the spool directory, one per process (it is locked). Env
	// CIOQ_SPOOL_DIR. Empty means no spool: with Redis down, ingest answers
	// 503 and import stops.
	Dir string `mapstructure:"dir" yaml:"dir"`
	// MaxBytes bounds the spool on disk. Env CIOQ_SPOOL_MAX_BYTES. Zero
	// means producer.DefaultSpoolMaxBytes (256 MiB).
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
	// Region is "us" or "eu" (track.RegionUS, track.RegionEU). Env
	// CUSTOMERIO_REGION. Empty means "us".
	Region string `mapstructure:"region" yaml:"region"`
	// TrackURL is the Track API base URL; a trailing "/", "/api/v1" or
	// "/api/v2" is stripped. Env CUSTOMERIO_TRACK_URL. Empty means the
	// region's URL (track.Region.BaseURL).
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
	// (cdp.BaseURL).
	CDPURL string `mapstructure:"cdp_url" yaml:"cdp_url" redact:"url"`
	// CDPRateLimit gives the workspace's Pipelines requests a budget of
	// their own, in requests/s across all replicas. Env CIOQ_CDP_RATE_LIMIT.
	// Zero, the default, means Track and Pipelines requests share RateLimit:
	// Customer.io documents one soft limit for both APIs
	// (docs/pipelines.md, "Rate limit").
	CDPRateLimit float64 `mapstructure:"cdp_rate_limit" yaml:"cdp_rate_limit,omitempty"`
	// RateLimit is the request budget in requests/s across all replicas.
	// Env CIOQ_RATE_LIMIT. Zero means ratelimit.DefaultRate (80).
	RateLimit float64 `mapstructure:"rate_limit" yaml:"rate_limit"`
	// RateBurst is the limiter burst. Env CIOQ_RATE_BURST. Zero means the
	// limiter's own default.
	RateBurst int `mapstructure:"rate_burst" yaml:"rate_burst"`
	// CriticalShare is the part of RateLimit reserved for the critical lane,
	// between 0 and 1 exclusive. Env CIOQ_CRITICAL_SHARE. Zero means
	// ratelimit.DefaultCriticalShare (0.2).
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

// Worker sizes the asynq servers and the retry policy. Each field sets the
// worker.Config field it names (MaxRetry sets producer.Config.MaxRetry);
// zero means that package's default. Env CIOQ_WORKER_<KEY>, such as
// CIOQ_WORKER_RETRY_BASE (keys.go).
type Worker struct {
	// Concurrency is the handler concurrency of each default-lane server
	// (worker.Config.Concurrency).
	Concurrency int `mapstructure:"concurrency" yaml:"concurrency"`
	// DefaultServers is the number of asynq servers on the default lane
	// (worker.Config.Servers).
	DefaultServers int `mapstructure:"default_servers" yaml:"default_servers"`
	// CriticalConcurrency is the critical-lane server's concurrency.
	CriticalConcurrency int `mapstructure:"critical_concurrency" yaml:"critical_concurrency"`
	// MaxRetry is how many failed deliveries a task gets before its ops are
	// dead-lettered.
	MaxRetry int `mapstructure:"max_retry" yaml:"max_retry"`
	// RetryBase is the first backoff step (worker.Config.Retry.Base).
	RetryBase time.Duration `mapstructure:"retry_base" yaml:"retry_base"`
	// RetryCap bounds one backoff delay (worker.Config.Retry.Cap); at least
	// RetryBase.
	RetryCap time.Duration `mapstructure:"retry_cap" yaml:"retry_cap"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" yaml:"shutdown_timeout"`
	// RequestTimeout bounds one Track API request.
	RequestTimeout time.Duration `mapstructure:"request_timeout" yaml:"request_timeout"`
	// UnauthorizedPause is how long a workspace stops sending after a
	// 401/403 (its ops wait, no failure counted) before one batch probes
	// again.
	UnauthorizedPause time.Duration `mapstructure:"unauthorized_pause" yaml:"unauthorized_pause"`
}

// Batch is the v2 batching policy: a batch is sent at MaxOps, MaxBytes or
// MaxWait, whichever comes first. Each field is the worker.BatchConfig
// setting of the same name; zero means the worker's default. Env
// CIOQ_BATCH_MAX_OPS, _MAX_BYTES, _MAX_WAIT.
type Batch struct {
	// MaxOps is the most ops in one request.
	MaxOps int `mapstructure:"max_ops" yaml:"max_ops"`
	// MaxBytes is the largest request body, below cdp.MaxBatchBytes.
	MaxBytes int `mapstructure:"max_bytes" yaml:"max_bytes"`
	// MaxWait is how long the first op of a batch waits for others.
	MaxWait time.Duration `mapstructure:"max_wait" yaml:"max_wait"`
}

// DLQ bounds the dead-letter store.
type DLQ struct {
	// MaxEntries is the most dead letters kept per workspace. Env
	// CIOQ_DLQ_MAX_ENTRIES. Zero means worker.DefaultDeadLetterMax.
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

// WithDefaults returns a copy of c with every zero field whose default
// internal/config knows (its own, and those of idempotency, breaker,
// ratelimit, track and cdp) set to it, every workspace's URLs normalized and
// its Batch filled in from c.Batch. The worker's and producer's settings
// stay zero unless set (zero means their default; LoadOptions.Defaults
// fills them). It does not validate.
func (c *Config) WithDefaults() *Config {
	out := *c
	out.Redis.URL = cmp.Or(out.Redis.URL, DefaultRedisURL)
	out.KeyPrefix = cmp.Or(out.KeyPrefix, DefaultKeyPrefix)
	out.HTTPAddr = cmp.Or(out.HTTPAddr, DefaultHTTPAddr)
	out.Idempotency = out.Idempotency.WithDefaults()
	out.Idempotency.Prefix = out.KeyPrefix
	out.Breaker = out.Breaker.WithDefaults()
	out.Breaker.Prefix = out.KeyPrefix
	out.Log.Level = cmp.Or(strings.ToLower(strings.TrimSpace(out.Log.Level)), DefaultLogLevel)
	out.Log.Format = cmp.Or(strings.ToLower(strings.TrimSpace(out.Log.Format)), LogFormatText)
	out.Workspaces = make([]Workspace, len(c.Workspaces))
	for i, ws := range c.Workspaces {
		out.Workspaces[i] = ws.withDefaults(out.Batch)
	}
	return &out
}

func (ws Workspace) withDefaults(global Batch) Workspace {
	ws.Region = cmp.Or(strings.ToLower(strings.TrimSpace(ws.Region)), string(track.RegionUS))
	ws.TrackURL = cmp.Or(NormalizeTrackURL(ws.TrackURL), track.Region(ws.Region).BaseURL())
	ws.CDPURL = cmp.Or(NormalizeCDPURL(ws.CDPURL), cdp.BaseURL(track.Region(ws.Region)))
	ws.RateLimit = cmp.Or(ws.RateLimit, ratelimit.DefaultRate)
	ws.CriticalShare = cmp.Or(ws.CriticalShare, ratelimit.DefaultCriticalShare)
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
func NormalizeCDPURL(u string) string { return cdp.NormalizeBaseURL(strings.TrimSpace(u)) }

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
