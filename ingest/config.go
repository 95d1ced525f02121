package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// Defaults for Config fields left zero.
const (
	// DefaultMaxV1BodyBytes bounds a v1 body, as the Track API (and
	// track/fake) does: event data plus room for the rest.
	DefaultMaxV1BodyBytes = track.MaxV1BodyBytes
	// DefaultMaxEntityBodyBytes bounds a v2 entity body (track.MaxOpBytes).
	DefaultMaxEntityBodyBytes = track.MaxOpBytes
	// DefaultMaxBatchBodyBytes bounds a v2 batch body: it must be smaller
	// than track.MaxBatchBytes.
	DefaultMaxBatchBodyBytes = track.MaxBatchBytes - 1
	// DefaultMaxConcurrentPerClient is how many requests one client (one
	// Basic-auth site id) may have in flight; more are answered 429.
	DefaultMaxConcurrentPerClient = 64
	// DefaultEnqueueTimeout bounds how long a request tries to make its ops
	// durable before it is answered 503.
	DefaultEnqueueTimeout = 5 * time.Second
)

// IdempotencyKeyHeader is the request header whose value becomes the
// idempotency key (producer.Op.Key) of the request's op, or, for a v2
// batch, "<value>:<index>" for the op at that index.
const IdempotencyKeyHeader = "Idempotency-Key"

// MaxIdempotencyKeyBytes bounds the Idempotency-Key header, leaving room in
// producer.MaxKeyBytes for the ":<index>" of a batch op.
const MaxIdempotencyKeyBytes = producer.MaxKeyBytes - 8

// ErrInvalidConfig is returned by New for a Config it cannot use.
var ErrInvalidConfig = errors.New("ingest: invalid config")

// Enqueuer takes the ops of one request durably, all or none:
// *producer.Producer is one. EnqueueAll returns nil only once every op is
// stored (in Redis, or the producer's spool); an error matching
// track.ErrInvalidOp (a *producer.InvalidOpsError) means ops were refused and
// nothing was stored; any other error means none was stored, or, when Redis
// gave no answer in time, that the outcome is unknown.
type Enqueuer interface {
	EnqueueAll(ctx context.Context, ops []producer.Op) ([]producer.Result, error)
}

// Workspace maps Basic-auth credentials to a workspace. It prints with the
// API key redacted.
type Workspace struct {
	// Name is the workspace ops are enqueued for (producer.Op.Workspace).
	// Required.
	Name string
	// SiteID is the Basic-auth user name clients send (the Track API site
	// id). Required, unique.
	SiteID string
	// APIKey is the Basic-auth password. Required. Never logged or printed.
	APIKey string
	// PipelinesKey is the workspace's Pipelines API key: a Pipelines API
	// request (/v1/identify, ..., /v1/batch) whose Basic-auth user name it
	// is goes to this workspace. Empty means the workspace takes no
	// Pipelines calls (401). Unique. Never logged or printed.
	PipelinesKey string
}

// String renders the workspace with the API keys redacted.
func (w Workspace) String() string {
	pk := ""
	if w.PipelinesKey != "" {
		pk = " PipelinesKey:REDACTED"
	}
	return fmt.Sprintf("ingest.Workspace{Name:%s SiteID:%s APIKey:REDACTED%s}", w.Name, w.SiteID, pk)
}

// GoString renders String: the key never prints.
func (w Workspace) GoString() string { return w.String() }

// Config configures a Handler. Producer and Workspaces are required; every
// other field has a default.
type Config struct {
	// Producer takes the ops. Required.
	Producer Enqueuer
	// Workspaces are the credentials ingest accepts. Required.
	Workspaces []Workspace
	// MaxV1BodyBytes bounds a v1 body; a longer one is answered 413. Zero
	// means DefaultMaxV1BodyBytes.
	MaxV1BodyBytes int64
	// MaxEntityBodyBytes bounds a v2 entity body. Zero means
	// DefaultMaxEntityBodyBytes (32 KiB).
	MaxEntityBodyBytes int64
	// MaxBatchBodyBytes bounds a v2 batch body. Zero means
	// DefaultMaxBatchBodyBytes (one byte below 500 KB).
	MaxBatchBodyBytes int64
	// MaxConcurrentPerClient bounds the requests in flight per site id;
	// more are answered 429 with a Track API error body and Retry-After: 1.
	// Zero means DefaultMaxConcurrentPerClient (64).
	MaxConcurrentPerClient int
	// EnqueueTimeout bounds how long one request tries to make its ops
	// durable (trying again, with the same op ids, while Redis fails)
	// before it is answered 503. Keep it below the server's write timeout,
	// so the client always gets its answer. Zero means
	// DefaultEnqueueTimeout (5 s).
	EnqueueTimeout time.Duration
	// Ready reports whether ops can be taken durably (Redis reachable, or
	// the spool writable); /readyz answers 503 while it returns an error.
	// Nil means always ready.
	Ready func(ctx context.Context) error
	// Logger receives warnings (failed enqueues; never keys or payloads).
	// Nil means no logging.
	Logger *slog.Logger
	// Registerer receives the metrics (internal/metrics.Ingest). Nil means
	// a registry of the Handler's own.
	Registerer prometheus.Registerer
	// Gatherer is served on /metrics. Nil means Registerer when it is a
	// Gatherer (a *prometheus.Registry), else no /metrics.
	Gatherer prometheus.Gatherer
}

func (c Config) withDefaults() Config {
	c.MaxV1BodyBytes = cmp.Or(c.MaxV1BodyBytes, DefaultMaxV1BodyBytes)
	c.MaxEntityBodyBytes = cmp.Or(c.MaxEntityBodyBytes, DefaultMaxEntityBodyBytes)
	c.MaxBatchBodyBytes = cmp.Or(c.MaxBatchBodyBytes, DefaultMaxBatchBodyBytes)
	c.MaxConcurrentPerClient = cmp.Or(c.MaxConcurrentPerClient, DefaultMaxConcurrentPerClient)
	c.EnqueueTimeout = cmp.Or(c.EnqueueTimeout, DefaultEnqueueTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Gatherer == nil {
		if g, ok := c.Registerer.(prometheus.Gatherer); ok {
			c.Gatherer = g
		}
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Producer == nil {
		errs = append(errs, errors.New("producer is required"))
	}
	if len(c.Workspaces) == 0 {
		errs = append(errs, errors.New("at least one workspace is required"))
	}
	seen := map[string]bool{}
	keys := map[string]string{} // Pipelines API key -> workspace
	for i, w := range c.Workspaces {
		if w.PipelinesKey != "" {
			if other, dup := keys[w.PipelinesKey]; dup {
				errs = append(errs, fmt.Errorf("workspace %q: its Pipelines API key is also workspace %q's", w.Name, other))
			}
			keys[w.PipelinesKey] = w.Name
		}
		switch {
		case strings.TrimSpace(w.Name) == "":
			errs = append(errs, fmt.Errorf("workspace %d: name is required", i))
		case strings.TrimSpace(w.SiteID) == "":
			errs = append(errs, fmt.Errorf("workspace %q: site id is required", w.Name))
		case w.APIKey == "":
			errs = append(errs, fmt.Errorf("workspace %q: api key is required", w.Name))
		case seen[w.SiteID]:
			errs = append(errs, fmt.Errorf("workspace %q: site id %q is used twice", w.Name, w.SiteID))
		}
		seen[w.SiteID] = true
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"max v1 body bytes", c.MaxV1BodyBytes}, {"max entity body bytes", c.MaxEntityBodyBytes},
		{"max batch body bytes", c.MaxBatchBodyBytes}, {"max concurrent per client", int64(c.MaxConcurrentPerClient)}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", f.name, f.v))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
