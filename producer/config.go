package producer

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/task"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for Config fields left zero.
const (
	// DefaultWorkspace is the workspace of ops that name none.
	DefaultWorkspace = task.DefaultWorkspace
	// DefaultKeyPrefix starts every cioq key (stamps, order registrations,
	// tombstones here), as CIOQ_KEY_PREFIX does.
	DefaultKeyPrefix = "cioq:"
	// DefaultMaxRetry is how many times an op is retried after a counted
	// failure before the worker dead-letters it into cioq's store.
	DefaultMaxRetry = 25
	// DefaultTimeout bounds one Enqueue when the caller's context has no
	// earlier deadline.
	DefaultTimeout = 2 * time.Second
)

// MaxKeyBytes bounds an idempotency key (Op.Key). A key names the op in task
// ids, done-markers and dead letters, so it stays short.
const MaxKeyBytes = 200

// Errors. Match them with errors.Is.
var (
	// ErrUnavailable: Redis did not take the op (unreachable, failed, or no
	// answer within Config.Timeout or the caller's deadline). The op may or
	// may not be queued: enqueue it again with the same Op.Key, which is
	// safe (a repeat is reported as Result.Duplicate).
	ErrUnavailable = errors.New("producer: redis unavailable")
	// ErrClosed: the Producer was closed; nothing was queued.
	ErrClosed = errors.New("producer: closed")
	// ErrInvalidConfig: New was given a Config it cannot use.
	ErrInvalidConfig = errors.New("producer: invalid config")
)

// Config configures a Producer. Redis or Client is required; every other
// field has a default.
type Config struct {
	// Redis says how to reach Redis, e.g. asynq.RedisClientOpt{Addr:
	// "127.0.0.1:6379"} or the result of asynq.ParseRedisURI. The Producer
	// owns the connection it makes and closes it in Close. Required unless
	// Client is set.
	Redis asynq.RedisConnOpt
	// Client is an existing go-redis client to share (tasks go through
	// asynq.NewClientFromRedisClient). Close leaves it open. When both are
	// set, Client wins.
	Client redis.UniversalClient
	// Workspace is the workspace of ops that name none. Empty means
	// DefaultWorkspace ("default"). A workspace name must not contain ':',
	// '{' or '}'.
	Workspace string
	// Route picks the workspace of an op that names none (Op.Workspace
	// empty), e.g. HashRouter to shard people across workspaces, or a
	// function of the person's region. It returns "" for Workspace. Nil
	// means every such op goes to Workspace.
	Route func(op *Op) string
	// Workspaces, when set, lists the workspaces workers serve: an op for
	// any other workspace is refused with a validation error instead of
	// waiting in a queue no worker reads. Nil accepts any valid name.
	Workspaces []string
	// PipelinesWorkspaces lists the workspaces with a Pipelines API key:
	// a Pipelines call (Op.Call) for any other is refused with a
	// *NoPipelinesError (ErrNoPipelines) instead of waiting for a worker
	// that cannot send it. Nil accepts calls for every workspace; a non-nil
	// empty slice refuses them all.
	PipelinesWorkspaces []string
	// KeyPrefix starts every cioq key the producer writes (stamps, order registrations, tombstones). Empty
	// means DefaultKeyPrefix ("cioq:"). It must match the workers'.
	KeyPrefix string
	// MaxRetry is each op's retry budget: how many counted failures (5xx,
	// timeouts, network) it may have before the worker dead-letters it into
	// cioq's store (delays such as a 429 or an open breaker never count).
	// The task carries one asynq retry more (task.MaxRetry), so asynq never
	// archives it. Zero means DefaultMaxRetry (25); negative means no
	// retries.
	MaxRetry int
	// Timeout bounds one Enqueue when the caller's context has no earlier
	// deadline; past it Enqueue returns ErrUnavailable. With a spool,
	// Spool.Budget bounds the wait on Redis instead and Timeout bounds one
	// replay attempt. Zero means DefaultTimeout (2 s).
	Timeout time.Duration
	// Spool configures the on-disk spool that takes ops while Redis is
	// unreachable or slow. The zero value (no Spool.Dir) means no spool.
	Spool SpoolConfig
	// Registerer receives the producer's metrics (spool depth, bytes,
	// replayed, dropped, rejected; names in internal/metrics). Nil registers
	// nothing.
	Registerer prometheus.Registerer
	// History configures the op history (history.go): each op queued gets
	// its enqueued event and a place in its person's index, one more round
	// trip per Enqueue. The zero value records it (history.DefaultTTL, 24 h);
	// History.Disabled turns it off. Its Prefix is KeyPrefix.
	History history.Config
	// TracerProvider creates a span per Enqueue (SpanEnqueue) whose context
	// travels in the task headers to the worker. Nil means no tracing, at no
	// cost.
	TracerProvider trace.TracerProvider
	// Logger receives a warning per failed enqueue (never payloads). Nil
	// means no logging.
	Logger *slog.Logger
	// Now is the clock for op ids, default timestamps and enqueued_at. Nil
	// means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.Workspace = cmp.Or(c.Workspace, DefaultWorkspace)
	c.KeyPrefix = cmp.Or(c.KeyPrefix, DefaultKeyPrefix)
	c.MaxRetry = cmp.Or(c.MaxRetry, DefaultMaxRetry)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	if c.Spool.Dir != "" {
		c.Spool = c.Spool.withDefaults()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Redis == nil && c.Client == nil {
		errs = append(errs, errors.New("config needs Redis or Client"))
	}
	if err := checkWorkspace(c.Workspace); err != nil {
		errs = append(errs, fmt.Errorf("workspace: %s", err.Reason))
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("key prefix %q contains a brace", c.KeyPrefix))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout))
	}
	for _, ws := range c.Workspaces {
		if err := checkWorkspace(ws); err != nil {
			errs = append(errs, fmt.Errorf("workspaces: %q: %s", ws, err.Reason))
		}
	}
	for _, ws := range c.PipelinesWorkspaces {
		if len(c.Workspaces) > 0 && !slices.Contains(c.Workspaces, ws) {
			errs = append(errs, fmt.Errorf("pipelines workspaces: %q is not in workspaces", ws))
		}
	}
	if len(c.Workspaces) > 0 && !slices.Contains(c.Workspaces, c.Workspace) {
		errs = append(errs, fmt.Errorf("workspace %q is not in workspaces", c.Workspace))
	}
	if c.Spool.Dir != "" {
		errs = append(errs, c.Spool.validate()...)
	}
	if err := history.New(nil, c.historyConfig()).Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
