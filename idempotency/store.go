package idempotency

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for Config fields left zero.
const (
	// DefaultPrefix is the key prefix used when Config.Prefix is empty.
	DefaultPrefix = "cioq:"
	// DefaultDoneTTL is how long a done-marker lives when Config.DoneTTL is zero.
	DefaultDoneTTL = 24 * time.Hour
	// DefaultClaimTTL is how long a claim lives when Config.ClaimTTL is zero.
	DefaultClaimTTL = 30 * time.Second
	// DefaultTombstoneTTL is how long a tombstone lives when
	// Config.TombstoneTTL is zero.
	DefaultTombstoneTTL = 7 * 24 * time.Hour
)

// ErrInvalid is matched (errors.Is) by every error about an invalid argument
// or configuration; nothing was sent to Redis.
var ErrInvalid = errors.New("idempotency: invalid argument")

// scripter is the part of a Redis client the store uses. *redis.Client,
// *redis.ClusterClient, *redis.Ring and redis.UniversalClient satisfy it.
type scripter interface {
	redis.Scripter
	Exists(ctx context.Context, keys ...string) *redis.IntCmd
	Get(ctx context.Context, key string) *redis.StringCmd
}

var (
	_ scripter = (*redis.Client)(nil)
	_ scripter = (*redis.ClusterClient)(nil)
	_ scripter = redis.UniversalClient(nil)
)

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// Prefix starts every key. Empty means DefaultPrefix ("cioq:"). It must
	// not contain '{' or '}', which would break the per-workspace hash tag.
	Prefix string
	// DoneTTL is how long a done-marker keeps an operation from being sent
	// again. Zero means DefaultDoneTTL (24 h). Rounded up to whole seconds.
	DoneTTL time.Duration
	// ClaimTTL bounds how long a claim blocks other copies of an operation; set
	// it above the send timeout. Zero means DefaultClaimTTL (30 s).
	ClaimTTL time.Duration
	// TombstoneTTL is how long a delete/suppress tombstone drops older
	// operations for its person. Zero means DefaultTombstoneTTL (7 days).
	TombstoneTTL time.Duration
}

func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.DoneTTL = cmp.Or(c.DoneTTL, DefaultDoneTTL)
	c.ClaimTTL = cmp.Or(c.ClaimTTL, DefaultClaimTTL)
	c.TombstoneTTL = cmp.Or(c.TombstoneTTL, DefaultTombstoneTTL)
	return c
}

func (c Config) validate() error {
	switch {
	case strings.ContainsAny(c.Prefix, "{}"):
		return fmt.Errorf("%w: prefix %q contains a brace", ErrInvalid, c.Prefix)
	case c.DoneTTL < 0, c.ClaimTTL < time.Millisecond, c.TombstoneTTL < time.Millisecond:
		return fmt.Errorf("%w: TTLs must be positive (done %s, claim %s, tombstone %s)",
			ErrInvalid, c.DoneTTL, c.ClaimTTL, c.TombstoneTTL)
	}
	return nil
}

// Store reads and writes done-markers, claims and tombstones. It is safe for
// concurrent use. Each Store has a random token that marks its claims, so a
// claim taken by another Store (another process) is never released by this
// one.
type Store struct {
	rdb   scripter
	cfg   Config
	err   error // configuration error, returned by every call
	token string
}

// New returns a Store on rdb. An invalid cfg makes every call return an
// error matching ErrInvalid.
func New(rdb scripter, cfg Config) *Store {
	cfg = cfg.withDefaults()
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &Store{rdb: rdb, cfg: cfg, err: cfg.validate(), token: hex.EncodeToString(b[:])}
}

// Item is one operation to check before sending.
type Item struct {
	// OpID identifies the operation; required.
	OpID string
	// Person is the person the operation is about; "" means none (never
	// tombstoned).
	Person string
	// EnqueuedAt is when cioq accepted the operation; tombstones compare it.
	// Zero is older than any tombstone.
	EnqueuedAt time.Time
	// Droppable makes the item subject to its person's tombstone (identify and
	// track; not the delete or suppress that wrote the tombstone).
	Droppable bool
}

// Verdict says what to do with one checked item. The zero Verdict is not a
// valid answer.
type Verdict uint8

// Verdicts returned by Claim.
const (
	// Send: the item is claimed by this Store; send it, then MarkDone or
	// Release it.
	Send Verdict = iota + 1
	// Done: a done-marker exists; skip it, it was delivered.
	Done
	// Tombstoned: a delete/suppress for the person is newer than the item's
	// EnqueuedAt; drop it.
	Tombstoned
	// Claimed: another live copy holds the claim; defer it without counting a
	// failure.
	Claimed
)

// String returns "send", "done", "tombstoned" or "claimed".
func (v Verdict) String() string {
	switch v {
	case Send:
		return "send"
	case Done:
		return "done"
	case Tombstoned:
		return "tombstoned"
	case Claimed:
		return "claimed"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Check is the outcome for one Item.
type Check struct {
	// Verdict says what to do with the item.
	Verdict Verdict
	// Tombstone is the tombstone that dropped the item; set only when Verdict
	// is Tombstoned.
	Tombstone *Tombstone
}

// Tombstone records that a person was deleted or suppressed.
type Tombstone struct {
	// OpID is the delete/suppress operation that wrote it.
	OpID string
	// At is that operation's enqueue time (microsecond precision).
	At time.Time
}

func (s *Store) key(ws, kind, id string) string {
	return s.cfg.Prefix + "{" + ws + "}:" + kind + ":" + id
}

func (s *Store) checkArgs(op, ws string) error {
	if s.err != nil {
		return fmt.Errorf("idempotency: %s: %w", op, s.err)
	}
	if ws == "" {
		return fmt.Errorf("idempotency: %s: %w: empty workspace", op, ErrInvalid)
	}
	return nil
}

func checkOpID(op, id string) error {
	if id == "" {
		return fmt.Errorf("idempotency: %s: %w: empty op id", op, ErrInvalid)
	}
	return nil
}

// unixUs is t in unix microseconds; the zero time is 0. Microseconds, not
// milliseconds: an op enqueued a few microseconds before a suppress of the
// same person must compare as older.
func unixUs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// Claim checks every item in one round trip (one EVALSHA) and returns one
// Check per item, in order. For each item: a done-marker means Done; else a
// Droppable item whose person has a tombstone newer than its EnqueuedAt is
// Tombstoned; else the item's claim is taken (SET NX PX ClaimTTL) and the
// verdict is Send, or Claimed when another copy holds it. The same op id twice
// in one call is Send then Claimed. An empty slice costs no round trip.
func (s *Store) Claim(ctx context.Context, workspace string, items []Item) ([]Check, error) {
	if err := s.checkArgs("claim", workspace); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 3*len(items))
	args := make([]any, 0, 2+2*len(items))
	args = append(args, s.token, s.cfg.ClaimTTL.Milliseconds())
	for _, it := range items {
		if err := checkOpID("claim", it.OpID); err != nil {
			return nil, err
		}
		claim := s.key(workspace, "claim", it.OpID)
		tomb := claim
		droppable := it.Droppable && it.Person != ""
		if droppable {
			tomb = s.key(workspace, "tomb", it.Person)
		}
		keys = append(keys, s.key(workspace, "done", it.OpID), claim, tomb)
		flag := 0
		if droppable {
			flag = 1
		}
		args = append(args, flag, unixUs(it.EnqueuedAt))
	}
	res, err := claimScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("idempotency: claim %d ops in %s: %w", len(items), workspace, err)
	}
	if len(res) != len(items) {
		return nil, fmt.Errorf("idempotency: claim: %d answers for %d ops", len(res), len(items))
	}
	out := make([]Check, len(items))
	for i, r := range res {
		switch v := r.(type) {
		case int64:
			switch v {
			case 1:
				out[i].Verdict = Send
			case 2:
				out[i].Verdict = Done
			case 4:
				out[i].Verdict = Claimed
			default:
				return nil, fmt.Errorf("idempotency: claim: unexpected answer %d", v)
			}
		case string:
			tb, err := parseTombstone(v)
			if err != nil {
				return nil, fmt.Errorf("idempotency: claim: %w", err)
			}
			out[i] = Check{Verdict: Tombstoned, Tombstone: tb}
		default:
			return nil, fmt.Errorf("idempotency: claim: unexpected answer %T", r)
		}
	}
	return out, nil
}

// MarkDone writes a done-marker ("1", NX, EX DoneTTL) for every op id and
// deletes the claims this Store holds on them, in one round trip. Marking an
// op done twice is harmless (the first marker and its TTL stay).
func (s *Store) MarkDone(ctx context.Context, workspace string, opIDs []string) error {
	if err := s.checkArgs("mark done", workspace); err != nil {
		return err
	}
	if len(opIDs) == 0 {
		return nil
	}
	keys := make([]string, 0, 2*len(opIDs))
	for _, id := range opIDs {
		if err := checkOpID("mark done", id); err != nil {
			return err
		}
		keys = append(keys, s.key(workspace, "done", id), s.key(workspace, "claim", id))
	}
	ttl := int64((s.cfg.DoneTTL + time.Second - 1) / time.Second)
	if err := markDoneScript.Run(ctx, s.rdb, keys, s.token, ttl).Err(); err != nil {
		return fmt.Errorf("idempotency: mark %d ops done in %s: %w", len(opIDs), workspace, err)
	}
	return nil
}

// Release deletes the claims this Store holds on opIDs, in one round trip, so
// a retry need not wait for ClaimTTL after a failed send. Claims held by
// another Store are left alone.
func (s *Store) Release(ctx context.Context, workspace string, opIDs []string) error {
	if err := s.checkArgs("release", workspace); err != nil {
		return err
	}
	if len(opIDs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(opIDs))
	for _, id := range opIDs {
		if err := checkOpID("release", id); err != nil {
			return err
		}
		keys = append(keys, s.key(workspace, "claim", id))
	}
	if err := releaseScript.Run(ctx, s.rdb, keys, s.token).Err(); err != nil {
		return fmt.Errorf("idempotency: release %d claims in %s: %w", len(opIDs), workspace, err)
	}
	return nil
}

// IsDone reports whether opID has a done-marker.
func (s *Store) IsDone(ctx context.Context, workspace, opID string) (bool, error) {
	if err := s.checkArgs("is done", workspace); err != nil {
		return false, err
	}
	if err := checkOpID("is done", opID); err != nil {
		return false, err
	}
	n, err := s.rdb.Exists(ctx, s.key(workspace, "done", opID)).Result()
	if err != nil {
		return false, fmt.Errorf("idempotency: is done %s in %s: %w", opID, workspace, err)
	}
	return n == 1, nil
}

// SetTombstone records that person was deleted or suppressed by opID at at
// (its enqueue time). An existing tombstone as new or newer is kept; the
// written one lives TombstoneTTL.
func (s *Store) SetTombstone(ctx context.Context, workspace, person string, at time.Time, opID string) error {
	if err := s.checkArgs("set tombstone", workspace); err != nil {
		return err
	}
	if person == "" {
		return fmt.Errorf("idempotency: set tombstone: %w: empty person", ErrInvalid)
	}
	us := unixUs(at)
	val := strconv.FormatInt(us, 10) + ":" + opID
	err := tombstoneScript.Run(ctx, s.rdb, []string{s.key(workspace, "tomb", person)},
		us, val, s.cfg.TombstoneTTL.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("idempotency: set tombstone in %s: %w", workspace, err)
	}
	return nil
}

// Tombstone returns person's tombstone, or nil when there is none.
func (s *Store) Tombstone(ctx context.Context, workspace, person string) (*Tombstone, error) {
	if err := s.checkArgs("tombstone", workspace); err != nil {
		return nil, err
	}
	v, err := s.rdb.Get(ctx, s.key(workspace, "tomb", person)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency: tombstone in %s: %w", workspace, err)
	}
	tb, err := parseTombstone(v)
	if err != nil {
		return nil, fmt.Errorf("idempotency: tombstone: %w", err)
	}
	return tb, nil
}

func parseTombstone(v string) (*Tombstone, error) {
	msStr, op, ok := strings.Cut(v, ":")
	ms, err := strconv.ParseInt(msStr, 10, 64)
	if !ok || err != nil {
		return nil, fmt.Errorf("malformed tombstone %q", v)
	}
	return &Tombstone{OpID: op, At: time.UnixMicro(ms)}, nil
}
