package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
	"github.com/cioq/cioq/track"
)

// DefaultDeadLetterMax bounds the dead-letter store per workspace.
const DefaultDeadLetterMax = 100_000

// ErrNotFound: no dead letter with that op id.
var ErrNotFound = errors.New("worker: dead letter not found")

// DeadLetter is one op that left the queue undelivered, with why:
// Customer.io rejected it for good, or its retries ran out.
type DeadLetter struct {
	Workspace string `json:"workspace"`
	// API is the API the op was for: "track" or "pipelines" (Op is then a
	// Pipelines call). Empty, in records written before the Pipelines API,
	// means "track".
	API        string    `json:"api,omitempty"`
	OpID       string    `json:"op_id"`
	Action     string    `json:"action"`
	Person     string    `json:"person,omitempty"`
	Status     int       `json:"status,omitempty"`
	Reason     string    `json:"reason"`
	Body       string    `json:"body,omitempty"`
	Attempts   int       `json:"attempts"`
	EnqueuedAt time.Time `json:"enqueued_at"`
	// Timestamp is the op's `timestamp` (unix seconds), as sent.
	Timestamp int64           `json:"timestamp,omitempty"`
	DeadAt    time.Time       `json:"dead_at"`
	Op        json.RawMessage `json:"op"`
}

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	// API is "track" or "pipelines".
	API    string
	Action string
	Status int
	// OlderThan / NewerThan compare DeadAt with now.
	OlderThan, NewerThan time.Duration
	// Limit caps the result. Zero means 100.
	Limit int
}

func (f DeadLetterFilter) match(d *DeadLetter, now time.Time) bool {
	if f.API != "" && f.API != cmp.Or(d.API, task.APITrack.String()) {
		return false
	}
	if f.Action != "" && f.Action != d.Action {
		return false
	}
	if f.Status != 0 && f.Status != d.Status {
		return false
	}
	if f.OlderThan > 0 && now.Sub(d.DeadAt) < f.OlderThan {
		return false
	}
	if f.NewerThan > 0 && now.Sub(d.DeadAt) > f.NewerThan {
		return false
	}
	return true
}

// DeadLetters is cioq's dead-letter store, per workspace in Redis: an index
// (sorted set by time of death) and one JSON record per op, bounded by Max
// (the oldest are trimmed, counted, and logged by the caller).
type DeadLetters struct {
	rdb    redis.UniversalClient
	prefix string
	max    int
	tombs  time.Duration // the tombstone TTL replays are checked against
	queue  *taskq.Writer
	now    func() time.Time
}

// DeadLetterConfig configures a DeadLetters store.
type DeadLetterConfig struct {
	// Prefix starts every key. Zero means "cioq:".
	Prefix string
	// Max bounds the store per workspace. Zero means DefaultDeadLetterMax.
	Max int
	// TombstoneTTL is the workers' tombstone TTL: a replay of an op older
	// than it is refused without ReplayOptions.Force. Zero means
	// idempotency.DefaultTombstoneTTL.
	TombstoneTTL time.Duration
}

// NewDeadLetters returns the store.
func NewDeadLetters(rdb redis.UniversalClient, cfg DeadLetterConfig) *DeadLetters {
	prefix := cmp.Or(cfg.Prefix, "cioq:")
	ttl := cmp.Or(cfg.TombstoneTTL, idempotency.DefaultTombstoneTTL)
	idem := idempotency.New(rdb, idempotency.Config{Prefix: prefix, TombstoneTTL: ttl})
	return &DeadLetters{rdb: rdb, prefix: prefix, max: cmp.Or(cfg.Max, DefaultDeadLetterMax), tombs: ttl,
		queue: taskq.New(rdb, idem), now: time.Now}
}

func (d *DeadLetters) indexKey(ws string) string { return d.prefix + "{" + ws + "}:dlq" }
func (d *DeadLetters) recordKey(ws, opID string) string {
	return d.prefix + "{" + ws + "}:dlq:" + opID
}

// Add stores entries (all of one workspace or several) in one round trip and
// trims each workspace's store to Max. It returns how many were trimmed.
func (d *DeadLetters) Add(ctx context.Context, entries []DeadLetter) error {
	if len(entries) == 0 {
		return nil
	}
	byWS := map[string][]DeadLetter{}
	for _, e := range entries {
		byWS[e.Workspace] = append(byWS[e.Workspace], e)
	}
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for ws, es := range byWS {
			for _, e := range es {
				b, err := json.Marshal(e)
				if err != nil {
					return err
				}
				p.Set(ctx, d.recordKey(ws, e.OpID), b, 0)
				p.ZAdd(ctx, d.indexKey(ws), redis.Z{Score: float64(e.DeadAt.UnixMilli()), Member: e.OpID})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead letters: add: %w", err)
	}
	for ws := range byWS {
		if _, err := d.trim(ctx, ws); err != nil {
			return err
		}
	}
	return nil
}

func (d *DeadLetters) trim(ctx context.Context, ws string) (int, error) {
	n, err := d.rdb.ZCard(ctx, d.indexKey(ws)).Result()
	if err != nil || n <= int64(d.max) {
		return 0, err
	}
	old, err := d.rdb.ZRange(ctx, d.indexKey(ws), 0, n-int64(d.max)-1).Result()
	if err != nil || len(old) == 0 {
		return 0, err
	}
	_, err = d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range old {
			p.Del(ctx, d.recordKey(ws, id))
		}
		p.ZRem(ctx, d.indexKey(ws), toAny(old)...)
		return nil
	})
	return len(old), err
}

// Count returns how many dead letters a workspace holds.
func (d *DeadLetters) Count(ctx context.Context, ws string) (int64, error) {
	return d.rdb.ZCard(ctx, d.indexKey(ws)).Result()
}

// List returns a workspace's dead letters matching f, newest first.
func (d *DeadLetters) List(ctx context.Context, ws string, f DeadLetterFilter) ([]DeadLetter, error) {
	limit := cmp.Or(f.Limit, 100)
	now := d.now()
	var out []DeadLetter
	const page = 500
	for start := int64(0); len(out) < limit; start += page {
		ids, err := d.rdb.ZRevRange(ctx, d.indexKey(ws), start, start+page-1).Result()
		if err != nil {
			return nil, fmt.Errorf("dead letters: list: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		recs, err := d.get(ctx, ws, ids)
		if err != nil {
			return nil, err
		}
		for i := range recs {
			if recs[i].OpID != "" && f.match(&recs[i], now) {
				out = append(out, recs[i])
				if len(out) == limit {
					break
				}
			}
		}
	}
	return out, nil
}

func (d *DeadLetters) get(ctx context.Context, ws string, ids []string) ([]DeadLetter, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = d.recordKey(ws, id)
	}
	vals, err := d.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("dead letters: get: %w", err)
	}
	out := make([]DeadLetter, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(s), &out[i]); err != nil {
			return nil, fmt.Errorf("dead letters: record %s: %w", ids[i], err)
		}
	}
	return out, nil
}

// Get returns one dead letter or ErrNotFound.
func (d *DeadLetters) Get(ctx context.Context, ws, opID string) (*DeadLetter, error) {
	recs, err := d.get(ctx, ws, []string{opID})
	if err != nil {
		return nil, err
	}
	if recs[0].OpID == "" {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, ws, opID)
	}
	return &recs[0], nil
}

// Remove deletes dead letters by op id and returns how many existed.
func (d *DeadLetters) Remove(ctx context.Context, ws string, opIDs ...string) (int, error) {
	if len(opIDs) == 0 {
		return 0, nil
	}
	var zrem *redis.IntCmd
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range opIDs {
			p.Del(ctx, d.recordKey(ws, id))
		}
		zrem = p.ZRem(ctx, d.indexKey(ws), toAny(opIDs)...)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dead letters: remove: %w", err)
	}
	return int(zrem.Val()), nil
}

// ReplayOptions are the knobs of one replay.
type ReplayOptions struct {
	// MaxRetry is the replayed task's retry budget. Zero means 25.
	MaxRetry int
	// Force replays an op older than the tombstone TTL too.
	Force bool
}

// ErrReplayTooOld matches the error of a replay refused because the op is
// older than the tombstone TTL (see TooOldError).
var ErrReplayTooOld = errors.New("worker: dead letter older than the tombstone TTL")

// TooOldError is a replay refused because the op (an update of a person,
// which a later delete or suppress of that person would drop) was queued
// longer ago than the tombstone TTL: cioq can no longer tell whether its
// person was deleted or suppressed since, and the replay could bring a
// deleted person back. ReplayOptions.Force replays it anyway.
type TooOldError struct {
	OpID string
	Age  time.Duration
	TTL  time.Duration
}

func (e *TooOldError) Error() string {
	return fmt.Sprintf("dead letters: replay %s: queued %s ago, longer than the tombstone TTL (%s): its person may have been deleted since; replay with --force to send it anyway",
		e.OpID, e.Age.Round(time.Second), e.TTL)
}

// Is matches ErrReplayTooOld.
func (e *TooOldError) Is(target error) bool { return target == ErrReplayTooOld }

// Replay enqueues a dead letter again, unchanged (same op id, event id,
// timestamp and stamp, so it keeps its place in its person's order: a newer
// delete or suppress still drops it), and removes it from the store once it
// is queued. It reports whether the op was already queued (a no-op). An op
// older than the tombstone TTL is refused with a *TooOldError unless
// opts.Force.
func (d *DeadLetters) Replay(ctx context.Context, dl *DeadLetter, opts ReplayOptions) (duplicate bool, err error) {
	api, err := task.ParseAPI(dl.API)
	if err != nil {
		return false, fmt.Errorf("dead letters: replay %s: %w", dl.OpID, err)
	}
	action := track.Action(dl.Action)
	if age := d.now().Sub(dl.EnqueuedAt); !opts.Force && dl.Person != "" && task.Droppable(action) && age > d.tombs {
		return false, &TooOldError{OpID: dl.OpID, Age: age, TTL: d.tombs}
	}
	p := &task.Payload{
		Workspace: dl.Workspace, API: api, OpID: dl.OpID, Action: action, Person: dl.Person,
		EnqueuedAt: dl.EnqueuedAt, Timestamp: dl.Timestamp, Op: dl.Op,
	}
	u := &taskq.Unit{Tasks: []taskq.Task{taskq.Single(p, cmp.Or(opts.MaxRetry, 25), nil)}}
	if err := d.queue.Write(ctx, nil, u); err != nil {
		return false, fmt.Errorf("dead letters: replay %s: %w", dl.OpID, err)
	}
	if _, err := d.Remove(ctx, dl.Workspace, dl.OpID); err != nil {
		return u.Results[0].Duplicate, err
	}
	return u.Results[0].Duplicate, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
