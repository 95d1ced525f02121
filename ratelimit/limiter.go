package ratelimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Defaults for Config fields left zero.
const (
	// DefaultPrefix is the key prefix used when Config.Prefix is empty.
	DefaultPrefix = "cioq:"
	// DefaultCoolDownBase is the first cool-down after a 429.
	DefaultCoolDownBase = time.Second
	// DefaultCoolDownMax caps the cool-down a 429 streak grows to.
	DefaultCoolDownMax = 60 * time.Second
	// DefaultStreakTTL is how long a 429 streak is remembered.
	DefaultStreakTTL = 60 * time.Second
)

// ErrInvalidConfig is matched (errors.Is) by every error caused by an
// invalid Config or argument; nothing was sent to Redis.
var ErrInvalidConfig = errors.New("ratelimit: invalid config")

// scripter is the part of a Redis client the limiter uses. *redis.Client,
// *redis.ClusterClient, *redis.Ring and redis.UniversalClient satisfy it.
type scripter interface {
	redis.Scripter
	Del(ctx context.Context, keys ...string) *redis.IntCmd
	PTTL(ctx context.Context, key string) *redis.DurationCmd
}

var (
	_ scripter = (*redis.Client)(nil)
	_ scripter = (*redis.ClusterClient)(nil)
	_ scripter = redis.UniversalClient(nil)
)

// Config configures a Limiter. The zero value is ready to use.
type Config struct {
	// Prefix starts every key. Empty means DefaultPrefix ("cioq:"). It must
	// not contain '{' or '}', which would break the per-workspace hash tag.
	Prefix string
	// Logger receives cool-down events. Nil means no logging.
	Logger *slog.Logger
	// CoolDownBase is the cool-down after the first 429 of a streak; each
	// further 429 doubles it. Zero means DefaultCoolDownBase (1 s).
	CoolDownBase time.Duration
	// CoolDownMax caps the doubled cool-down (a longer Retry-After from the
	// server is still honoured). Zero means DefaultCoolDownMax (60 s).
	CoolDownMax time.Duration
	// StreakTTL is how long after the last 429 a streak is forgotten. Zero
	// means DefaultStreakTTL (60 s).
	StreakTTL time.Duration
}

func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.CoolDownBase = cmp.Or(c.CoolDownBase, DefaultCoolDownBase)
	c.CoolDownMax = cmp.Or(c.CoolDownMax, DefaultCoolDownMax)
	c.StreakTTL = cmp.Or(c.StreakTTL, DefaultStreakTTL)
	return c
}

func (c Config) validate() error {
	switch {
	case strings.ContainsAny(c.Prefix, "{}"):
		return fmt.Errorf("%w: prefix %q contains a brace", ErrInvalidConfig, c.Prefix)
	case c.CoolDownBase < time.Millisecond:
		return fmt.Errorf("%w: CoolDownBase %s below 1ms", ErrInvalidConfig, c.CoolDownBase)
	case c.CoolDownMax < c.CoolDownBase:
		return fmt.Errorf("%w: CoolDownMax %s below CoolDownBase %s", ErrInvalidConfig, c.CoolDownMax, c.CoolDownBase)
	case c.StreakTTL < time.Millisecond:
		return fmt.Errorf("%w: StreakTTL %s below 1ms", ErrInvalidConfig, c.StreakTTL)
	}
	return nil
}

// Limiter enforces per-workspace budgets shared by every replica through
// Redis, and a shared cool-down after 429 answers. It is safe for concurrent
// use; make one per process.
type Limiter struct {
	rdb scripter
	cfg Config
	err error // configuration error, returned by every call

	mu      sync.Mutex
	pacers  map[string]*rate.Limiter // per workspace, paces Wait's attempts
	last429 map[string]time.Time     // per workspace, when this process last saw a 429
}

// New returns a Limiter on rdb. An invalid cfg makes every call return an
// error matching ErrInvalidConfig.
func New(rdb scripter, cfg Config) *Limiter {
	cfg = cfg.withDefaults()
	return &Limiter{
		rdb: rdb, cfg: cfg, err: cfg.validate(),
		pacers: map[string]*rate.Limiter{}, last429: map[string]time.Time{},
	}
}

// Result is the outcome of Allow.
type Result struct {
	// Allowed is true when the request took a token and may be sent.
	Allowed bool
	// RetryAfter is how long until the next token may be free; zero when
	// Allowed.
	RetryAfter time.Duration
	// CoolingDown is true when the request was denied by a 429 cool-down.
	CoolingDown bool
}

func (l *Limiter) key(ws, name string) string {
	return l.cfg.Prefix + "{" + ws + "}:ratelimit:" + name
}

func (l *Limiter) check(op, ws string) error {
	if l.err != nil {
		return fmt.Errorf("ratelimit: %s: %w", op, l.err)
	}
	if ws == "" {
		return fmt.Errorf("ratelimit: %s: %w: empty workspace", op, ErrInvalidConfig)
	}
	return nil
}

// Allow takes one token from workspace's budget, in one round trip (one
// EVALSHA run atomically with Redis's clock): it is denied while the
// workspace cools down after a 429; otherwise GCRA runs at lim's Rate and
// Burst and, for a non-critical request, also at the bulk lane's
// Rate×(1−CriticalShare), taking tokens only when both allow.
func (l *Limiter) Allow(ctx context.Context, workspace string, lim Limit, critical bool) (Result, error) {
	if err := l.check("allow", workspace); err != nil {
		return Result{}, err
	}
	lim = lim.withDefaults()
	if err := lim.validate(); err != nil {
		return Result{}, err
	}
	bulkRate, bulkBurst := lim.bulk()
	crit := "0"
	if critical {
		crit = "1"
	}
	keys := []string{l.key(workspace, "cooldown"), l.key(workspace, "all"), l.key(workspace, "bulk")}
	res, err := allowScript.Run(ctx, l.rdb, keys,
		micros(lim.Rate), lim.Burst, micros(bulkRate), bulkBurst, crit).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: allow %s: %w", workspace, err)
	}
	if len(res) != 3 {
		return Result{}, fmt.Errorf("ratelimit: allow %s: unexpected answer %v", workspace, res)
	}
	if res[0] == 1 {
		return Result{Allowed: true}, nil
	}
	return Result{RetryAfter: time.Duration(res[1]) * time.Microsecond, CoolingDown: res[2] == 1}, nil
}

// micros is the emission interval of rate in µs, as a script argument.
func micros(rate float64) string {
	return strconv.FormatFloat(1e6/rate, 'f', 3, 64)
}

// Throttled records a 429 from Customer.io for workspace: it lengthens the
// workspace's 429 streak and sets the shared cool-down to
// max(retryAfter, CoolDownBase×2^(streak−1) capped at CoolDownMax, less up
// to 20% jitter), keeping a longer one already in place. Every replica's
// Allow honours it. It returns the cool-down now in force.
func (l *Limiter) Throttled(ctx context.Context, workspace string, retryAfter time.Duration) (time.Duration, error) {
	if err := l.check("throttled", workspace); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.last429[workspace] = time.Now()
	l.mu.Unlock()
	jitter := 0.8 + 0.2*rand.Float64()
	keys := []string{l.key(workspace, "streak"), l.key(workspace, "cooldown")}
	res, err := throttleScript.Run(ctx, l.rdb, keys,
		max(retryAfter, 0).Milliseconds(), l.cfg.CoolDownBase.Milliseconds(), l.cfg.CoolDownMax.Milliseconds(),
		l.cfg.StreakTTL.Milliseconds(), strconv.FormatFloat(jitter, 'f', 4, 64)).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: throttled %s: %w", workspace, err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("ratelimit: throttled %s: unexpected answer %v", workspace, res)
	}
	cool := time.Duration(res[0]) * time.Millisecond
	l.cfg.Logger.WarnContext(ctx, "rate limited: cooling down",
		slog.String("workspace_id", workspace), slog.Duration("cool_down", cool),
		slog.Duration("retry_after", retryAfter), slog.Int64("streak", res[1]))
	return cool, nil
}

// Succeeded ends workspace's 429 streak after an accepted request. It costs
// no round trip unless this process saw a 429 for the workspace within the
// last StreakTTL.
func (l *Limiter) Succeeded(ctx context.Context, workspace string) error {
	if err := l.check("succeeded", workspace); err != nil {
		return err
	}
	l.mu.Lock()
	at, ok := l.last429[workspace]
	if ok && time.Since(at) >= l.cfg.StreakTTL {
		delete(l.last429, workspace) // the streak key has expired by itself
		ok = false
	}
	l.mu.Unlock()
	if !ok {
		return nil
	}
	if err := l.rdb.Del(ctx, l.key(workspace, "streak")).Err(); err != nil {
		return fmt.Errorf("ratelimit: succeeded %s: %w", workspace, err)
	}
	l.mu.Lock()
	if l.last429[workspace] == at { // no newer 429 meanwhile
		delete(l.last429, workspace)
	}
	l.mu.Unlock()
	return nil
}

// CoolDown returns how long workspace's shared 429 cool-down has left; zero
// when there is none.
func (l *Limiter) CoolDown(ctx context.Context, workspace string) (time.Duration, error) {
	if err := l.check("cool-down", workspace); err != nil {
		return 0, err
	}
	d, err := l.rdb.PTTL(ctx, l.key(workspace, "cooldown")).Result()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: cool-down %s: %w", workspace, err)
	}
	return max(d, 0), nil
}
