package ratelimit

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"
)

// Defaults of Adaptive's fields. docs/architecture.md says why each has its
// value.
const (
	// DefaultDecrease is β, the cut of a 429 that cannot measure
	// Customer.io's rate: the effective rate is halved.
	DefaultDecrease = 0.5
	// DefaultKeep is γ, the share of the measured accepted rate a counted
	// 429 leaves: 90%, so Customer.io's bucket refills a little between
	// probes.
	DefaultKeep = 0.9
	// DefaultStep is the largest additive increase, as a fraction of the
	// budget: ten steps from nothing back to the budget.
	DefaultStep = 0.1
	// DefaultProbe is the first increase after a decrease, as a fraction of
	// the rate the decrease set; the k-th is k times as much (up to Step).
	DefaultProbe = 0.25
	// DefaultRun is how many accepted requests (fleet-wide) earn one step at
	// the budget; below it the run scales with the rate, at least 1.
	DefaultRun = 4
	// DefaultHold is how long after a decrease the rate does not rise: the
	// fleet probes above a measured limit at most once per hold plus ramp.
	DefaultHold = 3 * time.Second
	// DefaultMinRate is the floor of the effective rate, as a fraction of
	// the budget.
	DefaultMinRate = 1.0 / 64
	// DefaultMinWindow is the shortest time between two decreases over
	// which the accepted rate counts as a measurement.
	DefaultMinWindow = 500 * time.Millisecond
	// DefaultMaxWindow is the longest one; older decreases say nothing of
	// the present limit.
	DefaultMaxWindow = 10 * time.Second
	// StateTTL is how long a workspace's adaptive state outlives its last
	// write: after an hour without requests the rate starts again at the
	// budget.
	StateTTL = time.Hour
)

// Adaptive tunes the effective rate of every workspace: additive increase,
// multiplicative (or measured) decrease, shared by all replicas through
// Redis. The zero value uses the defaults.
//
// A 429 whose request's token was taken after the last decrease counts (so
// the fleet cuts once per round trip however many replicas see 429s). It
// sets the effective rate to Keep × the rate Customer.io accepted since the
// last decrease when that lies between MinWindow and MaxWindow ago, else to
// Decrease × the rate with a cool-down (CoolDownBase, doubling while nothing
// gets through). Hold after a decrease, each run of accepted requests sent
// after the previous step raises the rate: the k-th step by k × Probe × the
// rate the decrease set, at most Step × the budget, never past the budget.
type Adaptive struct {
	// Decrease is the factor of a cut without a measurement, in (0, 1).
	// Zero means DefaultDecrease (0.5).
	Decrease float64
	// Keep is the share of the measured accepted rate a counted 429 sets,
	// in (0, 1]. Zero means DefaultKeep (0.9).
	Keep float64
	// Step is the largest increase per run as a fraction of the budget, in
	// (0, 1]. Zero means DefaultStep (0.1).
	Step float64
	// Probe is the first increase after a decrease as a fraction of the rate
	// it set, in (0, 1]; the k-th increase is k times as much. Zero means
	// DefaultProbe (0.25).
	Probe float64
	// Run is the number of accepted requests per increase at the budget,
	// scaled down with the rate (at least 1). Zero means DefaultRun (4).
	Run int
	// Hold is how long after a decrease the rate does not rise. Zero means
	// DefaultHold (3 s); negative means no hold.
	Hold time.Duration
	// MinRate is the floor as a fraction of the budget, in (0, 1]. Zero
	// means DefaultMinRate (1/64).
	MinRate float64
	// MinWindow and MaxWindow bound the time since the last decrease over
	// which the accepted rate is a measurement. Zero means
	// DefaultMinWindow (500 ms) and DefaultMaxWindow (10 s).
	MinWindow, MaxWindow time.Duration
}

func (a Adaptive) withDefaults() Adaptive {
	a.Decrease = cmp.Or(a.Decrease, DefaultDecrease)
	a.Keep = cmp.Or(a.Keep, DefaultKeep)
	a.Step = cmp.Or(a.Step, DefaultStep)
	a.Probe = cmp.Or(a.Probe, DefaultProbe)
	a.Run = cmp.Or(a.Run, DefaultRun)
	switch {
	case a.Hold == 0:
		a.Hold = DefaultHold
	case a.Hold < 0:
		a.Hold = 0
	}
	a.MinRate = cmp.Or(a.MinRate, DefaultMinRate)
	a.MinWindow = cmp.Or(a.MinWindow, DefaultMinWindow)
	a.MaxWindow = cmp.Or(a.MaxWindow, DefaultMaxWindow)
	return a
}

func (a Adaptive) validate() error {
	frac := func(v float64) bool { return v > 0 && v <= 1 }
	switch {
	case !(a.Decrease > 0 && a.Decrease < 1):
		return fmt.Errorf("%w: Adaptive.Decrease %v not in (0, 1)", ErrInvalidConfig, a.Decrease)
	case !frac(a.Keep):
		return fmt.Errorf("%w: Adaptive.Keep %v not in (0, 1]", ErrInvalidConfig, a.Keep)
	case !frac(a.Step):
		return fmt.Errorf("%w: Adaptive.Step %v not in (0, 1]", ErrInvalidConfig, a.Step)
	case !frac(a.Probe):
		return fmt.Errorf("%w: Adaptive.Probe %v not in (0, 1]", ErrInvalidConfig, a.Probe)
	case a.Run < 1:
		return fmt.Errorf("%w: Adaptive.Run %d below 1", ErrInvalidConfig, a.Run)
	case !frac(a.MinRate):
		return fmt.Errorf("%w: Adaptive.MinRate %v not in (0, 1]", ErrInvalidConfig, a.MinRate)
	case a.MinWindow < 0 || a.MaxWindow < a.MinWindow:
		return fmt.Errorf("%w: Adaptive windows [%s, %s]", ErrInvalidConfig, a.MinWindow, a.MaxWindow)
	}
	return nil
}

// Token is one request's permission to go, from Wait or Allow. Hand it back
// with Customer.io's answer: Throttled on a 429, Succeeded on an accepted
// request. The zero Token is invalid.
type Token struct {
	// Workspace the token was taken for.
	Workspace string
	// Limit the token was taken under, defaults applied.
	Limit Limit
	// At is when it was taken, on Redis's clock.
	At time.Time
	// Critical is true for a token of the critical lane.
	Critical bool
}

// weight is what an accepted request counts in the measurement, in units
// of the effective rate: its lane may use 1 (critical) or 1 − the critical
// share of it, so a fleet sending only bulk requests as fast as it may
// measures Customer.io's whole rate, not that share of it.
func (t Token) weight() float64 {
	if t.Critical {
		return 1
	}
	return 1 / (1 - t.Limit.CriticalShare)
}

func (t Token) check(op string) error {
	if t.Workspace == "" || t.At.IsZero() {
		return fmt.Errorf("ratelimit: %s: %w: zero token", op, ErrInvalidConfig)
	}
	return t.Limit.validate()
}

func micros(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }

// Throttled records a 429 from Customer.io for the request tok let through
// and returns how long that request should wait before it is tried again:
// the cool-down in force, or one interval at the new effective rate when
// longer. When tok was taken after the workspace's last decrease it cuts
// the effective rate (see Adaptive); every 429 extends the shared cool-down
// to at least retryAfter (Customer.io's Retry-After; zero when absent).
// A cut of more than one step is logged.
func (l *Limiter) Throttled(ctx context.Context, tok Token, retryAfter time.Duration) (time.Duration, error) {
	if err := l.check("throttled", tok.Workspace); err != nil {
		return 0, err
	}
	if err := tok.check("throttled"); err != nil {
		return 0, err
	}
	a, lim, ws := l.cfg.Adaptive, tok.Limit, tok.Workspace
	jitter := 0.8 + 0.2*rand.Float64()
	keys := []string{l.key(ws, "state"), l.key(ws, "all"), l.key(ws, "bulk")}
	res, err := throttleScript.Run(ctx, l.rdb, keys,
		formatRate(lim.Rate), tok.At.UnixMicro(), max(retryAfter, 0).Milliseconds(),
		formatRate(a.Decrease), formatRate(a.Keep), formatRate(lim.Rate*a.MinRate),
		micros(a.MinWindow), micros(a.MaxWindow),
		l.cfg.CoolDownBase.Milliseconds(), l.cfg.CoolDownMax.Milliseconds(),
		strconv.FormatFloat(jitter, 'f', 4, 64), StateTTL.Milliseconds(),
		lim.Burst, formatRate(lim.CriticalShare), l.now()).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: throttled %s: %w", ws, err)
	}
	if len(res) != 6 {
		return 0, fmt.Errorf("ratelimit: throttled %s: unexpected answer %v", ws, res)
	}
	counted, before, after := res[0] == 1, float64(res[1])/1000, float64(res[2])/1000
	cool := time.Duration(res[4]) * time.Millisecond
	cutAge := int64(-1)
	if counted {
		cutAge = 0
	} else if s, ok := l.seenOf(ws); ok && !s.cutAt.IsZero() {
		cutAge = l.clock().Sub(s.cutAt).Milliseconds()
	}
	l.observe(ws, lim.Rate, after, cutAge)
	attrs := []any{slog.String("workspace_id", ws), slog.Float64("rate_from", before), slog.Float64("rate_to", after),
		slog.Float64("budget", lim.Rate), slog.Duration("cool_down", cool), slog.Duration("retry_after", retryAfter)}
	if res[3] >= 0 {
		attrs = append(attrs, slog.Float64("measured_rate", float64(res[3])/1000))
	}
	switch {
	case !counted:
		l.cfg.Logger.DebugContext(ctx, "rate limited: 429 from a request sent before the last decrease", attrs...)
	case before-after > lim.Rate*a.Step:
		l.cfg.Logger.WarnContext(ctx, "rate limited: effective rate cut", append(attrs, slog.Int64("streak", res[5]))...)
	default:
		l.cfg.Logger.DebugContext(ctx, "rate limited: effective rate trimmed", attrs...)
	}
	return max(cool, time.Duration(float64(time.Second)/after)), nil
}

// Succeeded records that Customer.io accepted the request tok let through:
// when tok was taken after the workspace's last decrease, it counts towards
// the measurement of the accepted rate and, below the budget, towards the
// next increase (see Adaptive). It costs no round trip
// while the workspace stands at its budget with no decrease in the last
// MaxWindow, as far as this process has seen.
func (l *Limiter) Succeeded(ctx context.Context, tok Token) error {
	if err := l.check("succeeded", tok.Workspace); err != nil {
		return err
	}
	if err := tok.check("succeeded"); err != nil {
		return err
	}
	a, lim, ws := l.cfg.Adaptive, tok.Limit, tok.Workspace
	if s, ok := l.seenOf(ws); ok && s.budget == lim.Rate && s.rate >= lim.Rate &&
		(s.cutAt.IsZero() || l.clock().Sub(s.cutAt) > a.MaxWindow) {
		return nil
	}
	res, err := succeedScript.Run(ctx, l.rdb, []string{l.key(ws, "state")},
		formatRate(lim.Rate), micros(a.Hold), a.Run, formatRate(lim.Rate*a.Step), formatRate(a.Probe),
		micros(a.MaxWindow), StateTTL.Milliseconds(), formatRate(tok.weight()), tok.At.UnixMicro(), l.now()).Int64Slice()
	if err != nil {
		return fmt.Errorf("ratelimit: succeeded %s: %w", ws, err)
	}
	if len(res) != 4 {
		return fmt.Errorf("ratelimit: succeeded %s: unexpected answer %v", ws, res)
	}
	eff := float64(res[0]) / 1000
	l.observe(ws, lim.Rate, eff, res[3])
	if res[2] == 1 {
		l.cfg.Logger.InfoContext(ctx, "rate limit lifted: effective rate back at the budget",
			slog.String("workspace_id", ws), slog.Float64("budget", lim.Rate),
			slog.Duration("since_decrease", time.Duration(res[3])*time.Millisecond))
	}
	return nil
}

func (l *Limiter) seenOf(ws string) (seen, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.seen[ws]
	return s, ok
}
