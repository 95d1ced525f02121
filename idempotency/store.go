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
	// DefaultTombstoneTTL is how long a delete/suppress tombstone and an
	// order registration live when Config.TombstoneTTL is zero.
	DefaultTombstoneTTL = 7 * 24 * time.Hour
)

// ErrInvalid is matched (errors.Is) by every error about an invalid argument
// or configuration; nothing was sent to Redis.
var ErrInvalid = errors.New("idempotency: invalid argument")

// scripter is the part of a Redis client the store uses. *redis.Client,
// *redis.ClusterClient, *redis.Ring and redis.UniversalClient satisfy it.
type scripter interface {
	redis.Scripter
	Get(ctx context.Context, key string) *redis.StringCmd
	HMGet(ctx context.Context, key string, fields ...string) *redis.SliceCmd
}

var (
	_ scripter = (*redis.Client)(nil)
	_ scripter = (*redis.ClusterClient)(nil)
	_ scripter = redis.UniversalClient(nil)
)

// Config configures a Store. The zero value is ready to use. The tags name
// its settings in cioq's config file (section idempotency).
type Config struct {
	// Prefix starts every key. Empty means DefaultPrefix ("cioq:"). It must
	// not contain '{' or '}', which would break the per-workspace hash tag.
	Prefix string `mapstructure:"-" yaml:"-"`
	// DoneTTL is how long a done-marker keeps an operation from being sent
	// again. Zero means DefaultDoneTTL (24 h). Rounded up to whole seconds.
	DoneTTL time.Duration `mapstructure:"done_ttl" yaml:"done_ttl"`
	// ClaimTTL bounds how long a claim blocks other copies of an operation;
	// set it above the send timeout. Zero means DefaultClaimTTL (30 s).
	ClaimTTL time.Duration `mapstructure:"claim_ttl" yaml:"claim_ttl"`
	// TombstoneTTL is how long a delete/suppress tombstone drops older
	// operations for its person, and how long an order registration of a
	// queued operation lasts at most. Zero means DefaultTombstoneTTL (7 days).
	TombstoneTTL time.Duration `mapstructure:"tombstone_ttl" yaml:"tombstone_ttl"`
}

// WithDefaults returns c with every zero field set to its default, as New
// applies them.
func (c Config) WithDefaults() Config {
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

// Store reads and writes the per-operation and per-person delivery state. It
// is safe for concurrent use. Each Store has a random token that marks its
// claims, so a claim taken by another Store (another process) is never
// released by this one.
type Store struct {
	rdb   scripter
	cfg   Config
	err   error // configuration error, returned by every call
	token string
}

// New returns a Store on rdb. An invalid cfg makes every call return an
// error matching ErrInvalid.
func New(rdb scripter, cfg Config) *Store {
	cfg = cfg.WithDefaults()
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &Store{rdb: rdb, cfg: cfg, err: cfg.validate(), token: hex.EncodeToString(b[:])}
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// Kind says how an operation is ordered against the other operations of its
// person (docs/architecture.md, "Order per person"). Its value is the
// one-byte code stored in Redis.
type Kind byte

// Kinds. Droppable kinds (KindEvent, KindIdentify, KindUpdate) are dropped
// when a newer delete or suppress of their person exists, or when they were
// queued while their person was suppressed; the others never are.
const (
	// KindNone: not ordered (an op without a person).
	KindNone Kind = 'n'
	// KindEvent: event, page, screen. Never registered: it waits only for
	// older barriers of its person.
	KindEvent Kind = 'e'
	// KindIdentify: registered under its person and timestamp second; it
	// waits for older barriers and for older identifies of the same second
	// (Customer.io orders attribute updates by whole-second timestamps).
	KindIdentify Kind = 'i'
	// KindUpdate: a droppable barrier (add_device, add/delete
	// relationships): registered; newer ops of the person wait for it.
	KindUpdate Kind = 'x'
	// KindBarrier: a barrier that is never dropped (delete_device, merge).
	KindBarrier Kind = 'b'
	// KindDelete and KindSuppress write the person's tombstone at enqueue:
	// older droppable ops are dropped instead of sent. They wait for older
	// barriers and for droppable ops of the person still in flight.
	KindDelete   Kind = 'd'
	KindSuppress Kind = 's'
	// KindUnsuppress lifts a suppression for the ops queued after it.
	KindUnsuppress Kind = 'u'
)

// Droppable reports whether a newer delete or suppress makes k obsolete.
func (k Kind) Droppable() bool { return k == KindEvent || k == KindIdentify || k == KindUpdate }

// registered reports whether ops of kind k are registered at enqueue.
func (k Kind) registered() bool {
	switch k {
	case KindIdentify, KindUpdate, KindBarrier, KindDelete, KindSuppress, KindUnsuppress:
		return true
	}
	return false
}

func (k Kind) valid() bool { return k == KindNone || k == KindEvent || k.registered() }

// Item is one operation, as the store sees it.
type Item struct {
	// OpID identifies the operation; required.
	OpID string
	// Person is the person the operation is about; "" means none (never
	// ordered, never dropped).
	Person string
	// Stamp is the operation's stamp (unix µs on Redis's clock, unique in its
	// workspace), given at enqueue. Zero is older than everything.
	Stamp int64
	// Timestamp is the operation's `timestamp` in unix seconds (identifies
	// of one second are ordered by Stamp).
	Timestamp int64
	// Kind orders the operation; zero means KindNone.
	Kind Kind
}

func (it Item) kind() Kind {
	if it.Person == "" || it.Kind == 0 {
		return KindNone
	}
	return it.Kind
}

// Verdict says what to do with one checked item. The zero Verdict is not a
// valid answer.
type Verdict uint8

// Verdicts returned by Claim.
const (
	// Send: the item is claimed by this Store; send it, then MarkDone,
	// Release or Forget it.
	Send Verdict = iota + 1
	// Done: a done-marker exists; skip it, it was delivered.
	Done
	// Tombstoned: a delete/suppress for the person is newer than the item;
	// drop it.
	Tombstoned
	// Claimed: another live copy holds the claim; defer it without counting a
	// failure.
	Claimed
	// Waiting: an older operation of the same person must take effect
	// first (Check.Blocker); defer it without counting a failure.
	Waiting
	// Suppressed: the item was queued while its person was suppressed;
	// Customer.io ignores such calls, so drop it.
	Suppressed
)

// String returns the verdict's name.
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
	case Waiting:
		return "waiting"
	case Suppressed:
		return "suppressed"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Check is the outcome for one Item.
type Check struct {
	// Verdict says what to do with the item.
	Verdict Verdict
	// Tombstone is the tombstone that dropped the item; set when Verdict is
	// Tombstoned or Suppressed.
	Tombstone *Tombstone
	// Blocker is the older operation the item waits for; set when Verdict
	// is Waiting.
	Blocker *Blocker
}

// Blocker is an older operation an item waits for.
type Blocker struct {
	// OpID is its op id; "" when the item waits for droppable operations of
	// its person still in flight (InFlight).
	OpID string
	// Kind is its kind.
	Kind Kind
	// Stamp is its stamp.
	Stamp int64
	// InFlight: the item (a delete or suppress) waits for operations of its
	// person that were claimed before it was queued and are still in
	// flight.
	InFlight bool
}

// Tombstone records that a person was deleted or suppressed.
type Tombstone struct {
	// OpID is the delete/suppress operation that wrote it.
	OpID string
	// Kind is KindDelete or KindSuppress.
	Kind Kind
	// Stamp is that operation's stamp.
	Stamp int64
}

// At returns the tombstone's stamp as a time.
func (t *Tombstone) At() time.Time { return time.UnixMicro(t.Stamp).UTC() }

// Keys. Every key is "<prefix>{<workspace>}:<kind>:<id>"; the braces are a
// Redis Cluster hash tag, so a workspace's keys share one slot.
func (s *Store) key(ws, kind, id string) string {
	return s.cfg.Prefix + "{" + ws + "}:" + kind + ":" + id
}

// OpKey is the key of an operation's claim or done-marker.
func (s *Store) OpKey(ws, opID string) string { return s.key(ws, "op", opID) }

// PersonKey is the hash of a person's tombstone, suppression, counters of
// pending registrations and of operations in flight.
func (s *Store) PersonKey(ws, person string) string { return s.key(ws, "p", person) }

// OrderKey is the sorted set of a person's pending barriers.
func (s *Store) OrderKey(ws, person string) string { return s.key(ws, "ord", person) }

// IdentifyKey is the sorted set of a person's pending identifies of one
// timestamp second.
func (s *Store) IdentifyKey(ws, person string, ts int64) string {
	return s.key(ws, "idn", person+"\x00"+strconv.FormatInt(ts, 10))
}

// StampKey holds the last stamp given in a workspace.
func (s *Store) StampKey(ws string) string { return s.cfg.Prefix + "{" + ws + "}:stamp" }

// personKeys returns the person, order and identify keys of it (the person
// key three times for an op that is not ordered, so every key stays in the
// workspace's slot).
func (s *Store) personKeys(ws string, it Item) (p, ord, idn string) {
	k := it.kind()
	if k == KindNone {
		o := s.OpKey(ws, it.OpID)
		return o, o, o
	}
	p, ord = s.PersonKey(ws, it.Person), s.OrderKey(ws, it.Person)
	idn = ord
	if k == KindIdentify {
		idn = s.IdentifyKey(ws, it.Person, it.Timestamp)
	}
	return p, ord, idn
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

func checkItem(op string, it Item) error {
	if it.OpID == "" {
		return fmt.Errorf("idempotency: %s: %w: empty op id", op, ErrInvalid)
	}
	if it.Kind != 0 && !it.Kind.valid() {
		return fmt.Errorf("idempotency: %s: %w: unknown kind %q", op, ErrInvalid, string(it.Kind))
	}
	return nil
}

// parseStamped reads "<stamp>:<kind>:<op id>" (a tombstone) or
// "<stamp>:<op id>" (no kind).
func parseStamped(v string, withKind bool) (stamp int64, kind Kind, op string, err error) {
	num, rest, ok := strings.Cut(v, ":")
	if ok {
		stamp, err = strconv.ParseInt(num, 10, 64)
	}
	if !ok || err != nil {
		return 0, 0, "", fmt.Errorf("malformed value %q", v)
	}
	if withKind {
		if len(rest) < 2 || rest[1] != ':' {
			return 0, 0, "", fmt.Errorf("malformed value %q", v)
		}
		kind, rest = Kind(rest[0]), rest[2:]
	}
	return stamp, kind, rest, nil
}

func parseTombstone(v string) (*Tombstone, error) {
	st, k, op, err := parseStamped(v, true)
	if err != nil {
		return nil, fmt.Errorf("tombstone: %w", err)
	}
	return &Tombstone{OpID: op, Kind: k, Stamp: st}, nil
}

// Tombstone returns person's tombstone, or nil when there is none.
func (s *Store) Tombstone(ctx context.Context, workspace, person string) (*Tombstone, error) {
	if err := s.checkArgs("tombstone", workspace); err != nil {
		return nil, err
	}
	v, err := s.rdb.HMGet(ctx, s.PersonKey(workspace, person), "t").Result()
	if err != nil {
		return nil, fmt.Errorf("idempotency: tombstone in %s: %w", workspace, err)
	}
	str, ok := v[0].(string)
	if !ok {
		return nil, nil
	}
	return parseTombstone(str)
}

// IsDone reports whether opID has a done-marker.
func (s *Store) IsDone(ctx context.Context, workspace, opID string) (bool, error) {
	if err := s.checkArgs("is done", workspace); err != nil {
		return false, err
	}
	if err := checkItem("is done", Item{OpID: opID}); err != nil {
		return false, err
	}
	v, err := s.rdb.Get(ctx, s.OpKey(workspace, opID)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("idempotency: is done %s in %s: %w", opID, workspace, err)
	}
	return v == doneValue, nil
}

// doneValue is the value of a done-marker; a claim is "c:<token>".
const doneValue = "d"
