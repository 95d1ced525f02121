package ratelimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// DefaultCoolDownBase is the cool-down after a decrease that could not
	// measure Customer.io's rate.
	DefaultCoolDownBase = time.Second
	// DefaultCoolDownMax caps the cool-down that decreases without any
	// accepted request between them grow to.
	DefaultCoolDownMax = 60 * time.Second
)

// ErrInvalidConfig is matched (errors.Is) by every error caused by an
// invalid Config or argument; nothing was sent to Redis.
var ErrInvalidConfig = errors.New("ratelimit: invalid config")

// scripter is the part of a Redis client the limiter uses. *redis.Client,
// *redis.ClusterClient, *redis.Ring and redis.UniversalClient satisfy it.
type scripter interface {
	redis.Scripter
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
	// Logger receives rate changes and cool-downs. Nil means no logging.
	Logger *slog.Logger
	// CoolDownBase is the cool-down after a decrease that had no measurement
	// (the first 429 after a quiet spell); each further such decrease with
	// no request accepted in between doubles it. Zero means
	// DefaultCoolDownBase (1 s).
	CoolDownBase time.Duration
	// CoolDownMax caps the doubled cool-down (a longer Retry-After from the
	// server is still honoured). Zero means DefaultCoolDownMax (60 s).
	CoolDownMax time.Duration
	// Adaptive tunes how the effective rate follows Customer.io's real
	// limit. The zero value uses the defaults documented on its fields.
	Adaptive Adaptive
	// OnRate, when set, is called each time this process sees a
	// workspace's effective rate change (from any replica's decrease or
	// increase), with the new rate in req/s; for example to set a gauge. It
	// is called synchronously and must not block.
	OnRate func(workspace string, rate float64)
	// Now, when set, replaces Redis's clock (TIME) in every script: for
	// simulations and tests only. Production leaves it nil so that every
	// replica reads the same clock.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.CoolDownBase = cmp.Or(c.CoolDownBase, DefaultCoolDownBase)
	c.CoolDownMax = cmp.Or(c.CoolDownMax, DefaultCoolDownMax)
	c.Adaptive = c.Adaptive.withDefaults()
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
	}
	return c.Adaptive.validate()
}

// Limiter enforces per-workspace budgets shared by every replica through
// Redis, at an effective rate that follows Customer.io's 429 answers (see
// Adaptive). It is safe for concurrent use; make one per process.
type Limiter struct {
	rdb scripter
	cfg Config
	err error // configuration error, returned by every call

	mu     sync.Mutex
	pacers map[string]*rate.Limiter // per workspace and lane, paces Wait's attempts
	seen   map[string]seen          // per workspace, the adaptive state last read
}

// seen is what this process last read of a workspace's adaptive state.
type seen struct {
	rate   float64   // effective rate, req/s
	cutAt  time.Time // local estimate of the last decrease; zero: none
	budget float64
}

// New returns a Limiter on rdb. An invalid cfg makes every call return an
// error matching ErrInvalidConfig.
func New(rdb scripter, cfg Config) *Limiter {
	cfg = cfg.withDefaults()
	return &Limiter{
		rdb: rdb, cfg: cfg, err: cfg.validate(),
		pacers: map[string]*rate.Limiter{}, seen: map[string]seen{},
	}
}

// Result is the outcome of Allow.
type Result struct {
	// Allowed is true when the request took a token and may be sent.
	Allowed bool
	// Token identifies the allowed request; pass it to Throttled or
	// Succeeded with Customer.io's answer. Zero when not Allowed.
	Token Token
	// RetryAfter is how long until the next token may be free; zero when
	// Allowed.
	RetryAfter time.Duration
	// CoolingDown is true when the request was denied by a 429 cool-down.
	CoolingDown bool
	// Rate is the workspace's effective rate (req/s) the check ran at.
	Rate float64
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

// clock is Config.Now, else time.Now.
func (l *Limiter) clock() time.Time {
	if l.cfg.Now != nil {
		return l.cfg.Now()
	}
	return time.Now()
}

// now is the time argument of every script: "" for Redis TIME.
func (l *Limiter) now() string {
	if l.cfg.Now == nil {
		return ""
	}
	return strconv.FormatInt(l.cfg.Now().UnixMicro(), 10)
}

// Allow takes one token from workspace's budget, in one round trip (one
// EVALSHA run atomically with Redis's clock): it is denied while the
// workspace cools down after a 429; otherwise GCRA runs at the workspace's
// effective rate (lim.Rate, or less after 429s) with lim's Burst scaled to
// it and, for a non-critical request, also at the bulk lane's
// rate×(1−CriticalShare), taking tokens only when both allow.
func (l *Limiter) Allow(ctx context.Context, workspace string, lim Limit, critical bool) (Result, error) {
	if err := l.check("allow", workspace); err != nil {
		return Result{}, err
	}
	lim = lim.withDefaults()
	if err := lim.validate(); err != nil {
		return Result{}, err
	}
	crit := "0"
	if critical {
		crit = "1"
	}
	keys := []string{l.key(workspace, "state"), l.key(workspace, "all"), l.key(workspace, "bulk")}
	res, err := allowScript.Run(ctx, l.rdb, keys,
		formatRate(lim.Rate), lim.Burst, strconv.FormatFloat(lim.CriticalShare, 'f', 6, 64), crit, l.now()).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: allow %s: %w", workspace, err)
	}
	if len(res) != 6 {
		return Result{}, fmt.Errorf("ratelimit: allow %s: unexpected answer %v", workspace, res)
	}
	eff := float64(res[4]) / 1000
	l.observe(workspace, lim.Rate, eff, res[5])
	if res[0] == 1 {
		return Result{Allowed: true, Rate: eff,
			Token: Token{Workspace: workspace, Limit: lim, At: time.UnixMicro(res[3]), Critical: critical}}, nil
	}
	return Result{RetryAfter: time.Duration(res[1]) * time.Microsecond, CoolingDown: res[2] == 1, Rate: eff}, nil
}

// observe records what a script answered about workspace's adaptive state
// and reports a changed effective rate to Config.OnRate.
func (l *Limiter) observe(ws string, budget, eff float64, cutAgeMs int64) {
	s := seen{rate: eff, budget: budget}
	if cutAgeMs >= 0 {
		s.cutAt = l.clock().Add(-time.Duration(cutAgeMs) * time.Millisecond)
	}
	l.mu.Lock()
	old, ok := l.seen[ws]
	l.seen[ws] = s
	l.mu.Unlock()
	if l.cfg.OnRate != nil && (!ok || old.rate != eff) {
		l.cfg.OnRate(ws, eff)
	}
}

// formatRate renders a rate in req/s as a script argument.
func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', 6, 64) }

// State is a workspace's adaptive rate as every replica sees it.
type State struct {
	// Budget is the configured rate (Limit.Rate), the ceiling.
	Budget float64
	// Rate is the effective rate in req/s: Budget, or less after 429s.
	Rate float64
	// CoolDown is what is left of a 429 cool-down; zero when none.
	CoolDown time.Duration
	// SinceDecrease is the time since the last decrease; negative when
	// there has been none (or it was forgotten, after an hour of silence).
	SinceDecrease time.Duration
}

// State reads workspace's adaptive state in one round trip.
func (l *Limiter) State(ctx context.Context, workspace string, lim Limit) (State, error) {
	if err := l.check("state", workspace); err != nil {
		return State{}, err
	}
	lim = lim.withDefaults()
	if err := lim.validate(); err != nil {
		return State{}, err
	}
	res, err := stateScript.Run(ctx, l.rdb, []string{l.key(workspace, "state")},
		formatRate(lim.Rate), l.now()).Int64Slice()
	if err != nil {
		return State{}, fmt.Errorf("ratelimit: state %s: %w", workspace, err)
	}
	if len(res) != 3 {
		return State{}, fmt.Errorf("ratelimit: state %s: unexpected answer %v", workspace, res)
	}
	st := State{Budget: lim.Rate, Rate: float64(res[0]) / 1000,
		CoolDown: time.Duration(res[1]) * time.Microsecond, SinceDecrease: -1}
	if res[2] >= 0 {
		st.SinceDecrease = time.Duration(res[2]) * time.Millisecond
	}
	l.observe(workspace, lim.Rate, st.Rate, res[2])
	return st, nil
}
