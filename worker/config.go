package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// Sender delivers pre-encoded ops in one batch request: *track.Client (v2
// ops, Track API) and *cdp.Client (calls, Pipelines API /v1/batch) are
// Senders. It returns nil when every op was accepted, a *track.BatchError
// when some were rejected (the others were accepted; the Track API only),
// or another track or cdp error (cdp's error classes are track's).
type Sender interface {
	BatchEncoded(ctx context.Context, ops [][]byte) error
}

var (
	_ Sender = (*track.Client)(nil)
	_ Sender = (*cdp.Client)(nil)
)

// Batching defaults, tuned by the benchmark (docs/BENCHMARKS.md).
const (
	DefaultBatchMaxOps      = 500
	DefaultBatchMaxBytes    = 450 * 1024
	DefaultBatchMaxWait     = 50 * time.Millisecond
	DefaultBatchMaxInFlight = 8
	DefaultMaxPending       = 20000
	// DefaultCriticalInFlight caps concurrent critical-lane requests per
	// workspace in a process.
	DefaultCriticalInFlight = 2
)

// BatchConfig bounds the v2 batch requests of one workspace.
type BatchConfig struct {
	// MaxOps is the most ops in one request. Zero means DefaultBatchMaxOps (500).
	MaxOps int
	// MaxBytes bounds the request body; it must be below cdp.MaxBatchBytes
	// (500,000 bytes): Customer.io documents "500 KB" for a batch of either
	// API and cioq takes the smaller reading for both, so what it sends fits
	// either. Zero means DefaultBatchMaxBytes (450 KiB).
	MaxBytes int
	// MaxWait is how long the first op of a batch waits for company. Zero
	// means DefaultBatchMaxWait (50 ms); critical ops never wait.
	MaxWait time.Duration
	// MaxInFlight is the most concurrent requests per workspace and lane in
	// this process. Zero means DefaultBatchMaxInFlight (8).
	MaxInFlight int
	// MaxPending caps the ops this process holds for the workspace and lane;
	// beyond it tasks go back to the queue (no failure counted), so one slow
	// workspace never holds every handler slot. Zero means DefaultMaxPending.
	MaxPending int
}

// WithDefaults returns c with every zero field set to its default.
func (c BatchConfig) WithDefaults() BatchConfig { return c.withDefaults() }

func (c BatchConfig) withDefaults() BatchConfig {
	c.MaxOps = cmp.Or(c.MaxOps, DefaultBatchMaxOps)
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultBatchMaxBytes)
	c.MaxWait = cmp.Or(c.MaxWait, DefaultBatchMaxWait)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, DefaultBatchMaxInFlight)
	c.MaxPending = cmp.Or(c.MaxPending, DefaultMaxPending)
	return c
}

func (c BatchConfig) validate() error {
	var errs []error
	if c.MaxOps < 1 {
		errs = append(errs, fmt.Errorf("batch max ops %d < 1", c.MaxOps))
	}
	if c.MaxBytes >= cdp.MaxBatchBytes || c.MaxBytes < track.MaxOpBytes+batchOverhead {
		errs = append(errs, fmt.Errorf("batch max bytes %d outside [%d, %d)", c.MaxBytes, track.MaxOpBytes+batchOverhead, cdp.MaxBatchBytes))
	}
	if c.MaxWait < 0 || c.MaxInFlight < 1 || c.MaxPending < 1 {
		errs = append(errs, errors.New("batch max wait, max in flight and max pending must be positive"))
	}
	return errors.Join(errs...)
}

// Workspace is one Customer.io workspace the worker delivers to.
type Workspace struct {
	// Name is the workspace name ops carry ("default" for a single workspace).
	Name string
	// Sender delivers its batches (a *track.Client for the workspace).
	Sender Sender
	// Limit is its request budget shared by every replica.
	Limit ratelimit.Limit
	// Pipelines delivers its Pipelines API calls (a *cdp.Client for the
	// workspace's Pipelines API key), in requests of their own: batchers,
	// breaker and 401 pause of their own, the same claims, done-markers,
	// order, tombstones and dead letters. Nil means the worker sends no
	// calls for the workspace: a call waits in its queue
	// (ReasonNoPipelines, no failure counted) until a worker that has a
	// Pipelines sender for it takes it.
	Pipelines Sender
	// PipelinesLimit gives Pipelines requests a budget of their own. The
	// zero value (Rate 0), the default, makes them share Limit with Track
	// requests: Customer.io documents one soft limit of 3,000 requests per
	// 3 seconds for its Track and Pipelines APIs together
	// (docs/pipelines.md, "Rate limit").
	PipelinesLimit ratelimit.Limit
	// Batch bounds its requests; zero fields take the defaults. A zero
	// Batch.MaxPending means: with one workspace DefaultMaxPending, with
	// several a fair share of the handler slots (slots ÷ workspaces), so a
	// throttled or failing workspace cannot hold the slots another needs.
	Batch BatchConfig
	// Weight is the workspace's share when the servers pick which queue to
	// dequeue from next (asynq's weighted, non-strict priority). Zero means 1.
	Weight int
}

// Worker defaults.
const (
	DefaultConcurrency         = 1000
	DefaultServers             = 2
	DefaultCriticalConcurrency = 50
	DefaultShutdownTimeout     = 30 * time.Second
	DefaultRequestTimeout      = 10 * time.Second
	DefaultMaxLimiterWait      = 2 * time.Second
	DefaultUnauthorizedPause   = time.Minute
	DefaultTaskCheckInterval   = 50 * time.Millisecond
	DefaultDelayedCheck        = 500 * time.Millisecond
)

// Config configures a Worker.
type Config struct {
	// Redis is where asynq keeps the queues. Required.
	Redis asynq.RedisConnOpt
	// Protocol is the RESP version of the connections the asynq servers
	// make from Redis. Zero means DefaultProtocol (2).
	Protocol int
	// Client is a go-redis client on the same Redis for cioq's own keys
	// (limiter, breaker, done-markers, tombstones, dead letters). Required.
	Client redis.UniversalClient
	// KeyPrefix prefixes every cioq key. Zero means "cioq:".
	KeyPrefix string
	// Workspaces to deliver to; at least one.
	Workspaces []Workspace
	// Concurrency is the handler slots of each default-lane server; handlers
	// mostly wait for their batch. Zero means DefaultConcurrency (1000).
	Concurrency int
	// Servers is how many asynq servers dequeue the default lane (asynq
	// dequeues from one goroutine per server). Zero means DefaultServers (2).
	Servers int
	// CriticalConcurrency is the handler slots of the critical-lane server.
	// Zero means DefaultCriticalConcurrency (50).
	CriticalConcurrency int
	// Retry is the backoff for failed sends.
	Retry RetryPolicy
	// ShutdownTimeout bounds a graceful stop. Zero means 30 s.
	ShutdownTimeout time.Duration
	// RequestTimeout bounds one batch request. Zero means 10 s.
	RequestTimeout time.Duration
	// MaxLimiterWait is how long a batch waits in-process for a rate token
	// before its ops go back to the queue. Zero means 2 s.
	MaxLimiterWait time.Duration
	// UnauthorizedPause is how long a workspace pauses after a 401/403. Zero
	// means 1 min.
	UnauthorizedPause time.Duration
	// DoneTTL, ClaimTTL, TombstoneTTL: zero means the idempotency defaults.
	DoneTTL, ClaimTTL, TombstoneTTL time.Duration
	// BreakerFailures, BreakerSuccesses, BreakerTimeout: zero means the
	// breaker defaults (5, 3, 30 s).
	BreakerFailures, BreakerSuccesses uint32
	BreakerTimeout                    time.Duration
	// DeadLetterMax bounds the dead-letter store per workspace. Zero means
	// DefaultDeadLetterMax.
	DeadLetterMax int
	// OrphanAfter is how old an order registration must be before a worker
	// whose op waits for it checks that its op is still queued (order.go).
	// Zero means DefaultOrphanAfter (2 min).
	OrphanAfter time.Duration
	// Bulk configures the bulk lane (bulk.go); zero fields take the defaults.
	Bulk BulkConfig
	// TaskCheckInterval and DelayedTaskCheckInterval are asynq's polls. Zero
	// means 50 ms and 500 ms.
	TaskCheckInterval, DelayedTaskCheckInterval time.Duration
	// History configures the per-op history (history.go): the zero value
	// records it with history.DefaultTTL (24 h) and history.DefaultMaxEvents;
	// History.Disabled turns it off. Its Prefix is KeyPrefix.
	History history.Config
	// TracerProvider creates the worker's spans (handler wait, batch
	// request). Nil means no tracing, at no cost.
	TracerProvider trace.TracerProvider
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer for metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every zero field set to its default, as New
// applies them; `cioq config check` prints the worker's settings from it.
func (c Config) WithDefaults() Config { return c.withDefaults() }

func (c Config) withDefaults() Config {
	c.KeyPrefix = cmp.Or(c.KeyPrefix, "cioq:")
	c.Protocol = cmp.Or(c.Protocol, DefaultProtocol)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Servers = cmp.Or(c.Servers, DefaultServers)
	c.CriticalConcurrency = cmp.Or(c.CriticalConcurrency, DefaultCriticalConcurrency)
	c.Retry.Base = cmp.Or(c.Retry.Base, DefaultRetryBase)
	c.Retry.Cap = cmp.Or(c.Retry.Cap, DefaultRetryCap)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.MaxLimiterWait = cmp.Or(c.MaxLimiterWait, DefaultMaxLimiterWait)
	c.UnauthorizedPause = cmp.Or(c.UnauthorizedPause, DefaultUnauthorizedPause)
	c.DeadLetterMax = cmp.Or(c.DeadLetterMax, DefaultDeadLetterMax)
	c.OrphanAfter = cmp.Or(c.OrphanAfter, DefaultOrphanAfter)
	c.Bulk = c.Bulk.withDefaults()
	c.TaskCheckInterval = cmp.Or(c.TaskCheckInterval, DefaultTaskCheckInterval)
	c.DelayedTaskCheckInterval = cmp.Or(c.DelayedTaskCheckInterval, DefaultDelayedCheck)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	ws := make([]Workspace, len(c.Workspaces))
	for i, w := range c.Workspaces {
		if w.Batch.MaxPending == 0 && len(c.Workspaces) > 1 {
			w.Batch.MaxPending = max(1, c.Concurrency*c.Servers/len(c.Workspaces))
		}
		w.Batch = w.Batch.withDefaults()
		w.Weight = cmp.Or(w.Weight, 1)
		ws[i] = w
	}
	c.Workspaces = ws
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("worker: Redis is required"))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("worker: Client (go-redis) is required"))
	}
	if len(c.Workspaces) == 0 {
		errs = append(errs, errors.New("worker: at least one workspace is required"))
	}
	seen := map[string]bool{}
	for _, w := range c.Workspaces {
		if w.Name == "" {
			errs = append(errs, errors.New("worker: a workspace has no name"))
		}
		if seen[w.Name] {
			errs = append(errs, fmt.Errorf("worker: workspace %q listed twice", w.Name))
		}
		seen[w.Name] = true
		if w.Sender == nil {
			errs = append(errs, fmt.Errorf("worker: workspace %q has no sender", w.Name))
		}
		if w.Weight < 0 {
			errs = append(errs, fmt.Errorf("worker: workspace %q: weight %d < 0", w.Name, w.Weight))
		}
		if w.Limit.Rate <= 0 {
			errs = append(errs, fmt.Errorf("worker: workspace %q: rate %v must be > 0", w.Name, w.Limit.Rate))
		}
		if w.PipelinesLimit.Rate < 0 {
			errs = append(errs, fmt.Errorf("worker: workspace %q: pipelines rate %v must be >= 0 (0: share the rate)", w.Name, w.PipelinesLimit.Rate))
		}
		if err := w.Batch.validate(); err != nil {
			errs = append(errs, fmt.Errorf("worker: workspace %q: %w", w.Name, err))
		}
	}
	if c.Concurrency < 1 || c.Servers < 1 || c.CriticalConcurrency < 1 {
		errs = append(errs, errors.New("worker: concurrency and servers must be positive"))
	}
	return errors.Join(errs...)
}
