package history

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for Config fields left zero.
const (
	// DefaultPrefix starts every key, as CIOQ_KEY_PREFIX does.
	DefaultPrefix = "cioq:"
	// DefaultTTL is how long an op's history and its person index live
	// after their last write: as long as a done-marker, so the story of an
	// op lasts as long as cioq remembers delivering it.
	DefaultTTL = 24 * time.Hour
	// DefaultMaxEvents bounds the events kept per op.
	DefaultMaxEvents = 32
	// DefaultMaxPersonOps bounds the ops kept in a person's index.
	DefaultMaxPersonOps = 500
	// DefaultFindLimit bounds the ops Find returns when Query.Limit is zero.
	DefaultFindLimit = 100
)

// Errors. Match them with errors.Is.
var (
	// ErrNotFound: no history for the op (unknown, written with history off,
	// or expired after TTL).
	ErrNotFound = errors.New("history: not found")
	// ErrInvalid: an invalid argument or configuration; nothing was sent to
	// Redis.
	ErrInvalid = errors.New("history: invalid argument")
)

// Config configures a Store. The zero value is ready to use: history on,
// DefaultTTL, DefaultMaxEvents, DefaultMaxPersonOps.
type Config struct {
	// Disabled turns history off: Append does nothing (no round trip) and
	// Enabled reports false. Readers still read what exists.
	Disabled bool
	// Prefix starts every key. Empty means DefaultPrefix ("cioq:"). It must
	// not contain '{' or '}'.
	Prefix string
	// TTL is how long a history lives after its last write. Zero means
	// DefaultTTL (24 h).
	TTL time.Duration
	// MaxEvents bounds the events kept per op; past it the oldest events
	// after the first are trimmed. Zero means DefaultMaxEvents (32).
	MaxEvents int
	// MaxPersonOps bounds the ops kept in a person's index (the newest
	// stay). Zero means DefaultMaxPersonOps (500).
	MaxPersonOps int
}

func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.MaxEvents = cmp.Or(c.MaxEvents, DefaultMaxEvents)
	c.MaxPersonOps = cmp.Or(c.MaxPersonOps, DefaultMaxPersonOps)
	return c
}

func (c Config) validate() error {
	switch {
	case strings.ContainsAny(c.Prefix, "{}"):
		return fmt.Errorf("%w: prefix %q contains a brace", ErrInvalid, c.Prefix)
	case c.TTL < time.Millisecond:
		return fmt.Errorf("%w: TTL %s must be positive", ErrInvalid, c.TTL)
	case c.MaxEvents < 2:
		return fmt.Errorf("%w: max events %d < 2", ErrInvalid, c.MaxEvents)
	case c.MaxPersonOps < 1:
		return fmt.Errorf("%w: max person ops %d < 1", ErrInvalid, c.MaxPersonOps)
	}
	return nil
}

// Rediser is the part of a Redis client the store uses. *redis.Client,
// *redis.ClusterClient and redis.UniversalClient satisfy it.
type Rediser interface {
	redis.Scripter
	LRange(ctx context.Context, key string, start, stop int64) *redis.StringSliceCmd
	ZRevRangeByScore(ctx context.Context, key string, opt *redis.ZRangeBy) *redis.StringSliceCmd
	Pipeline() redis.Pipeliner
}

var (
	_ Rediser = (*redis.Client)(nil)
	_ Rediser = (*redis.ClusterClient)(nil)
	_ Rediser = redis.UniversalClient(nil)
)

// Store writes and reads op histories. It is safe for concurrent use.
type Store struct {
	rdb Rediser
	cfg Config
	err error
}

// New returns a Store on rdb. An invalid cfg makes every call return an
// error matching ErrInvalid.
func New(rdb Rediser, cfg Config) *Store {
	cfg = cfg.withDefaults()
	return &Store{rdb: rdb, cfg: cfg, err: cfg.validate()}
}

// Enabled reports whether Append writes (Config.Disabled is false).
func (s *Store) Enabled() bool { return s != nil && !s.cfg.Disabled }

// Err returns the configuration error every call returns (matching
// ErrInvalid), or nil.
func (s *Store) Err() error { return s.err }

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) key(ws, kind, id string) string {
	return s.cfg.Prefix + "{" + ws + "}:" + kind + ":" + id
}

// Record is what one writer adds to one op's history.
type Record struct {
	// OpID names the op; required.
	OpID string
	// Person is the op's person (track.Identifiers.Key(), "id:u1"); "" means
	// none (the op is in no person index).
	Person string
	// EnqueuedAt orders the op in its person's index.
	EnqueuedAt time.Time
	// Seed is written first when the op has no history yet (normally its
	// KindEnqueued event); a zero Seed (Kind 0) seeds nothing.
	Seed Event
	// Events are appended in order.
	Events []Event
}

// Append writes records of one workspace in one round trip (one EVALSHA):
// it seeds histories that do not exist yet (and adds those ops to their
// person's index), appends the events, trims each history to MaxEvents
// (keeping the first event) and renews its TTL. With Config.Disabled or no
// records it does nothing.
func (s *Store) Append(ctx context.Context, workspace string, recs []Record) error {
	keys, args, err := s.appendArgs(workspace, recs)
	if err != nil || keys == nil {
		return err
	}
	if err := appendScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("history: append %d ops in %s: %w", len(recs), workspace, err)
	}
	return nil
}

// AppendPipe is Append as one EVALSHA queued on p, for a caller that writes
// history in the round trip of other commands (the producer's enqueue). The
// script must be loaded (Load); the returned command (nil when there was
// nothing to write) holds its outcome once p has run: a NOSCRIPT error says
// to Load again.
func (s *Store) AppendPipe(ctx context.Context, p redis.Pipeliner, workspace string, recs []Record) (*redis.Cmd, error) {
	keys, args, err := s.appendArgs(workspace, recs)
	if err != nil || keys == nil {
		return nil, err
	}
	return appendScript.EvalSha(ctx, p, keys, args...), nil
}

// Load loads the append script into Redis (for AppendPipe).
func (s *Store) Load(ctx context.Context) error {
	if !s.Enabled() {
		return nil
	}
	return appendScript.Load(ctx, s.rdb).Err()
}

func (s *Store) appendArgs(workspace string, recs []Record) ([]string, []any, error) {
	if !s.Enabled() || len(recs) == 0 {
		return nil, nil, nil
	}
	if err := s.check(workspace); err != nil {
		return nil, nil, err
	}
	keys := make([]string, 0, 2*len(recs))
	args := make([]any, 0, 3+5*len(recs))
	args = append(args, s.cfg.TTL.Milliseconds(), s.cfg.MaxEvents, s.cfg.MaxPersonOps)
	for i := range recs {
		r := &recs[i]
		if r.OpID == "" {
			return nil, nil, fmt.Errorf("history: append: %w: empty op id", ErrInvalid)
		}
		h := s.key(workspace, "h", r.OpID)
		p := h
		if r.Person != "" {
			p = s.key(workspace, "hp", r.Person)
		}
		keys = append(keys, h, p)
		seed := ""
		if r.Seed.Kind != 0 {
			seed = r.Seed.encode()
		}
		args = append(args, seed, r.OpID, r.EnqueuedAt.UnixMilli(), len(r.Events))
		for j := range r.Events {
			args = append(args, r.Events[j].encode())
		}
	}
	return keys, args, nil
}

func (s *Store) check(workspace string) error {
	if s.err != nil {
		return s.err
	}
	if workspace == "" {
		return fmt.Errorf("%w: empty workspace", ErrInvalid)
	}
	return nil
}

// Get returns the history of one op, or an error matching ErrNotFound.
func (s *Store) Get(ctx context.Context, workspace, opID string) (*Op, error) {
	if err := s.check(workspace); err != nil {
		return nil, err
	}
	raw, err := s.rdb.LRange(ctx, s.key(workspace, "h", opID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("history: get %s in %s: %w", opID, workspace, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("history: %s in %s: %w", opID, workspace, ErrNotFound)
	}
	return build(workspace, opID, "", raw)
}

// Query filters Find.
type Query struct {
	// Since keeps ops enqueued within this long before now. Zero means every
	// op in the index.
	Since time.Duration
	// Action keeps ops of this action ("event", "identify", ...). Empty
	// means every action.
	Action string
	// Limit bounds how many ops are returned, newest first. Zero means
	// DefaultFindLimit (100).
	Limit int
	// Now is the clock Since counts back from; nil means time.Now.
	Now func() time.Time
}

// Find returns the recent ops of person (track.Identifiers.Key() form,
// "id:u1"), newest first: one read of the person's index and one pipelined
// read of the ops' histories. Ops whose history expired are left out.
func (s *Store) Find(ctx context.Context, workspace, person string, q Query) ([]Op, error) {
	if err := s.check(workspace); err != nil {
		return nil, err
	}
	if person == "" {
		return nil, fmt.Errorf("history: find: %w: empty person", ErrInvalid)
	}
	limit := cmp.Or(q.Limit, DefaultFindLimit)
	rng := &redis.ZRangeBy{Min: "-inf", Max: "+inf"}
	if q.Since > 0 {
		now := time.Now
		if q.Now != nil {
			now = q.Now
		}
		rng.Min = strconv.FormatInt(now().Add(-q.Since).UnixMilli(), 10)
	}
	if q.Action == "" {
		rng.Count = int64(limit)
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.key(workspace, "hp", person), rng).Result()
	if err != nil {
		return nil, fmt.Errorf("history: find %s in %s: %w", person, workspace, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.LRange(ctx, s.key(workspace, "h", id), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("history: find %s in %s: %w", person, workspace, err)
	}
	var out []Op
	for i, c := range cmds {
		raw := c.Val()
		if len(raw) == 0 {
			continue
		}
		op, err := build(workspace, ids[i], person, raw)
		if err != nil {
			return nil, err
		}
		if q.Action != "" && op.Action != q.Action {
			continue
		}
		out = append(out, *op)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}
