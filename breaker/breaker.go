package breaker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Defaults for Config fields left zero.
const (
	// DefaultFailures is how many consecutive counted failures open a breaker.
	DefaultFailures = 5
	// DefaultSuccesses is how many consecutive successes in half-open close it.
	DefaultSuccesses = 3
	// DefaultOpenTimeout is how long a breaker stays open before probing.
	DefaultOpenTimeout = 30 * time.Second
	// DefaultSharedCheckInterval is how often a Set re-reads a workspace's
	// shared "open until" key.
	DefaultSharedCheckInterval = 500 * time.Millisecond
	// DefaultPrefix is the key prefix used when Config.Prefix is empty.
	DefaultPrefix = "cioq:"
)

// HalfOpenRetryAfter is the RetryAfter of an OpenError returned while a
// half-open breaker already runs all its probe requests.
const HalfOpenRetryAfter = time.Second

// ErrOpen is matched (errors.Is) by *OpenError: the call was refused without
// running.
var ErrOpen = gobreaker.ErrOpenState

// RedisClient is the part of a go-redis client a Set uses to share
// openings. *redis.Client, *redis.ClusterClient, *redis.Ring and
// redis.UniversalClient satisfy it.
type RedisClient interface {
	Get(ctx context.Context, key string) *redis.StringCmd
	Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
}

var (
	_ RedisClient = (*redis.Client)(nil)
	_ RedisClient = (*redis.ClusterClient)(nil)
	_ RedisClient = redis.UniversalClient(nil)
)

// Config configures a Set. The zero value is ready to use (no sharing). The
// tags name its settings in cioq's config file (section breaker); the other
// fields are wiring, set in code.
type Config struct {
	// Failures is how many consecutive counted failures open a workspace's
	// breaker. Zero means DefaultFailures (5).
	Failures uint32 `mapstructure:"failures" yaml:"failures"`
	// Successes is how many consecutive successes in half-open close it; it
	// is also how many probe requests half-open lets through at once
	// (gobreaker's MaxRequests). Zero means DefaultSuccesses (3).
	Successes uint32 `mapstructure:"successes" yaml:"successes"`
	// OpenTimeout is how long a breaker stays open before it lets probes
	// through. Zero means DefaultOpenTimeout (30 s).
	OpenTimeout time.Duration `mapstructure:"open_timeout" yaml:"open_timeout"`
	// IsFailure says which errors count as failures. Nil means every non-nil
	// error. Errors it rejects count as successes (a 4xx or 429 proves the
	// API answers).
	IsFailure func(error) bool
	// IsExcluded says which errors count as neither success nor failure, for
	// example a rate limiter's wait. The caller's own context cancellation is
	// always excluded. Nil means only that.
	IsExcluded func(error) bool
	// Redis shares openings between replicas: an opening is written to
	// "<prefix>{<workspace>}:breaker:open_until" and every Set on the same
	// Redis refuses calls until then. Nil means no sharing.
	Redis RedisClient
	// Prefix starts the shared key. Empty means DefaultPrefix ("cioq:").
	Prefix string
	// SharedCheckInterval is how long a read of the shared key is trusted
	// before it is read again (per workspace, per Set). Zero means
	// DefaultSharedCheckInterval (500 ms).
	SharedCheckInterval time.Duration
	// OnStateChange is called on every local state change. It runs while
	// gobreaker holds the breaker's lock: it must not call the breaker.
	// Nil means no callback.
	OnStateChange func(workspace string, from, to gobreaker.State)
	// Logger receives state changes and sharing errors. Nil means no logging.
	Logger *slog.Logger
	// Now is the clock for the times reported (OpenUntil, RetryAfter) and
	// shared. gobreaker's own open timer always uses the wall clock. Nil
	// means time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every zero setting (Failures, Successes,
// OpenTimeout, Prefix, SharedCheckInterval) set to its default, as New
// applies them. Nil hooks, Logger and Now keep their documented meaning.
func (c Config) WithDefaults() Config {
	c.Failures = cmp.Or(c.Failures, DefaultFailures)
	c.Successes = cmp.Or(c.Successes, DefaultSuccesses)
	c.OpenTimeout = cmp.Or(c.OpenTimeout, DefaultOpenTimeout)
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.SharedCheckInterval = cmp.Or(c.SharedCheckInterval, DefaultSharedCheckInterval)
	return c
}

func (c Config) withDefaults() Config {
	c = c.WithDefaults()
	if c.IsFailure == nil {
		c.IsFailure = func(err error) bool { return err != nil }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// OpenError is returned by Execute when a workspace's breaker refuses a
// call; fn did not run. It matches ErrOpen.
type OpenError struct {
	// Workspace whose breaker is open.
	Workspace string
	// Until is when the breaker expects to let calls (or probes) through.
	Until time.Time
	// RetryAfter is the time left until then.
	RetryAfter time.Duration
	// Shared is true when another replica's opening (read from Redis)
	// refused the call.
	Shared bool
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("breaker: workspace %s: circuit open, retry in %s", e.Workspace, e.RetryAfter)
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// excludedError marks an error gobreaker must not count.
type excludedError struct{ err error }

func (e excludedError) Error() string { return e.err.Error() }

// shareOp is a pending write of the shared key.
type shareOp uint8

const (
	shareNone shareOp = iota
	shareOpen
	shareClose
)

// entry is one workspace's breaker and what the Set knows about it.
type entry struct {
	ws string
	cb *gobreaker.CircuitBreaker[struct{}]

	mu          sync.Mutex
	openUntil   time.Time // local opening, set in OnStateChange
	failures    int       // consecutive counted failures
	lastFailure time.Time
	pending     shareOp
	sharedUntil time.Time // last value read from (or written to) Redis
	sharedRead  time.Time // when it was read
	reading     bool
}

// Set holds one gobreaker per workspace for this process and shares their
// openings through Redis. It is safe for concurrent use.
type Set struct {
	cfg Config

	mu      sync.Mutex
	entries map[string]*entry
}

// New returns a Set.
func New(cfg Config) *Set {
	return &Set{cfg: cfg.withDefaults(), entries: map[string]*entry{}}
}

// Get returns workspace's breaker, creating it. Calls made on it directly
// neither honour nor write the shared opening; use Execute for that.
func (s *Set) Get(workspace string) *gobreaker.CircuitBreaker[struct{}] {
	return s.entry(workspace).cb
}

func (s *Set) entry(ws string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[ws]; ok {
		return e
	}
	e := &entry{ws: ws}
	e.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        ws,
		MaxRequests: s.cfg.Successes,
		Timeout:     s.cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= s.cfg.Failures
		},
		OnStateChange: func(_ string, from, to gobreaker.State) { s.stateChanged(e, from, to) },
		IsSuccessful:  func(err error) bool { return err == nil || !s.cfg.IsFailure(err) },
		IsExcluded: func(err error) bool {
			_, ok := err.(excludedError)
			return ok
		},
	})
	s.entries[ws] = e
	return e
}

// stateChanged runs under gobreaker's lock.
func (s *Set) stateChanged(e *entry, from, to gobreaker.State) {
	now := s.cfg.Now()
	e.mu.Lock()
	switch to {
	case gobreaker.StateOpen:
		e.openUntil = now.Add(s.cfg.OpenTimeout)
		e.pending = shareOpen
	case gobreaker.StateClosed:
		e.openUntil = time.Time{}
		e.failures = 0
		e.pending = shareClose
	}
	e.mu.Unlock()
	level := slog.LevelInfo
	if to == gobreaker.StateOpen {
		level = slog.LevelWarn
	}
	s.cfg.Logger.Log(context.Background(), level, "breaker state changed",
		slog.String("workspace_id", e.ws), slog.String("from", string(stateName(from))), slog.String("to", string(stateName(to))))
	if s.cfg.OnStateChange != nil {
		s.cfg.OnStateChange(e.ws, from, to)
	}
}

func (s *Set) key(ws string) string { return s.cfg.Prefix + "{" + ws + "}:breaker:open_until" }

// Execute runs fn through workspace's breaker. It returns *OpenError without
// running fn while another replica's shared opening is in force, while the
// local breaker is open, or while half-open already runs its probes.
// Otherwise it returns fn's error unchanged. fn's error counts as a failure
// when Config.IsFailure says so, and counts not at all when it is ctx's own
// cancellation or Config.IsExcluded says so. When the local breaker opens or
// closes, the shared key is written or deleted.
func (s *Set) Execute(ctx context.Context, workspace string, fn func() error) error {
	e := s.entry(workspace)
	if until := s.sharedOpenUntil(ctx, e); !until.IsZero() && !s.ownOpening(e, until) {
		if left := until.Sub(s.cfg.Now()); left > 0 {
			return &OpenError{Workspace: workspace, Until: until, RetryAfter: left, Shared: true}
		}
	}
	var (
		ran   bool
		fnErr error
	)
	_, err := e.cb.Execute(func() (struct{}, error) {
		ran = true
		fnErr = fn()
		if fnErr != nil && s.excluded(ctx, fnErr) {
			return struct{}{}, excludedError{fnErr}
		}
		return struct{}{}, fnErr
	})
	s.flush(ctx, e)
	if !ran {
		return s.openError(e, err)
	}
	if fnErr != nil && !s.excluded(ctx, fnErr) && s.cfg.IsFailure(fnErr) {
		e.mu.Lock()
		e.failures++
		e.lastFailure = s.cfg.Now()
		e.mu.Unlock()
	} else if fnErr == nil || !s.excluded(ctx, fnErr) {
		e.mu.Lock()
		e.failures = 0
		e.mu.Unlock()
	}
	return fnErr
}

// ownOpening reports whether the shared opening is the one this Set wrote;
// then the local breaker alone decides, so it can probe when its time is up.
func (s *Set) ownOpening(e *entry, until time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.openUntil.IsZero() && e.openUntil.UnixMilli() == until.UnixMilli()
}

func (s *Set) excluded(ctx context.Context, err error) bool {
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		return true
	}
	return s.cfg.IsExcluded != nil && s.cfg.IsExcluded(err)
}

// openError maps gobreaker's refusal to *OpenError.
func (s *Set) openError(e *entry, err error) error {
	now := s.cfg.Now()
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &OpenError{Workspace: e.ws, Until: now.Add(HalfOpenRetryAfter), RetryAfter: HalfOpenRetryAfter}
	}
	if !errors.Is(err, gobreaker.ErrOpenState) {
		return err
	}
	e.mu.Lock()
	until := e.openUntil
	e.mu.Unlock()
	if left := until.Sub(now); left < HalfOpenRetryAfter {
		// The wall clock and Now disagree near the end: probe soon.
		until = now.Add(HalfOpenRetryAfter)
	}
	return &OpenError{Workspace: e.ws, Until: until, RetryAfter: until.Sub(now)}
}

// sharedOpenUntil returns the workspace's shared "open until", reading Redis
// at most every SharedCheckInterval; zero when none is known.
func (s *Set) sharedOpenUntil(ctx context.Context, e *entry) time.Time {
	if s.cfg.Redis == nil {
		return time.Time{}
	}
	now := s.cfg.Now()
	e.mu.Lock()
	if e.reading || (!e.sharedRead.IsZero() && now.Sub(e.sharedRead) < s.cfg.SharedCheckInterval) {
		until := e.sharedUntil
		e.mu.Unlock()
		return until
	}
	e.reading = true
	prev := e.sharedUntil
	e.mu.Unlock()

	until := prev
	v, err := s.cfg.Redis.Get(ctx, s.key(e.ws)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		until = time.Time{}
	case err != nil:
		s.cfg.Logger.WarnContext(ctx, "breaker: reading shared opening failed",
			slog.String("workspace_id", e.ws), slog.String("error", err.Error()))
	default:
		if ms, perr := strconv.ParseInt(v, 10, 64); perr == nil {
			until = time.UnixMilli(ms)
		} else {
			until = time.Time{}
		}
	}
	e.mu.Lock()
	e.reading = false
	e.sharedRead = now
	e.sharedUntil = until
	e.mu.Unlock()
	return until
}

// flush writes a pending opening or closing to Redis. It uses a context
// that outlives the caller's cancellation: the fleet must hear of it.
func (s *Set) flush(ctx context.Context, e *entry) {
	e.mu.Lock()
	op, until := e.pending, e.openUntil
	e.pending = shareNone
	e.mu.Unlock()
	if op == shareNone || s.cfg.Redis == nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	var err error
	switch op {
	case shareOpen:
		err = s.cfg.Redis.Set(wctx, s.key(e.ws), strconv.FormatInt(until.UnixMilli(), 10), s.cfg.OpenTimeout).Err()
	case shareClose:
		until = time.Time{}
		err = s.cfg.Redis.Del(wctx, s.key(e.ws)).Err()
	}
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "breaker: sharing state failed",
			slog.String("workspace_id", e.ws), slog.String("error", err.Error()))
		return
	}
	e.mu.Lock()
	e.sharedUntil, e.sharedRead = until, s.cfg.Now()
	e.mu.Unlock()
}
