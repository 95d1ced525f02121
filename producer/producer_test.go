package producer_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

var now = time.Date(2026, 11, 24, 10, 30, 15, 123_456_789, time.UTC)

type testBundle struct {
	db     *redistest.DB
	insp   *asynq.Inspector
	prefix string
}

func setup(t *testing.T, mod func(*producer.Config)) (*producer.Producer, *testBundle) {
	t.Helper()
	db := redistest.New(t)
	b := &testBundle{db: db, insp: asynq.NewInspector(db.ConnOpt()), prefix: redistest.Prefix(t)}
	t.Cleanup(func() { _ = b.insp.Close() })
	cfg := producer.Config{
		Redis:     db.ConnOpt(),
		KeyPrefix: b.prefix,
		Timeout:   30 * time.Second, // generous: a slow CI machine must not fail these
		Now:       func() time.Time { return now },
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := producer.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close(context.Background())) })
	return p, b
}

// queued returns the task and its decoded payload.
func (b *testBundle) queued(t *testing.T, res producer.Result) (*asynq.TaskInfo, *task.Payload) {
	t.Helper()
	info, err := b.insp.GetTaskInfo(res.Queue, res.TaskID)
	require.NoError(t, err)
	pl, err := task.Decode(info.Payload)
	require.NoError(t, err)
	return info, pl
}

// keys returns how many keys the test database holds.
func (b *testBundle) keys(t *testing.T) int64 {
	t.Helper()
	n, err := b.db.Client.DBSize(context.Background()).Result()
	require.NoError(t, err)
	return n
}

func opJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestProducerConvenienceMethods(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := float64(now.Unix())
	tests := []struct {
		name       string
		call       func(p *producer.Producer) (producer.Result, error)
		wantAction track.Action
		wantQueue  string
		wantPerson string
		wantOp     map[string]any // without the event id
	}{
		{
			name: "Identify",
			call: func(p *producer.Producer) (producer.Result, error) {
				return p.Identify(ctx, "u1", map[string]any{"plan": "pro"})
			},
			wantAction: track.ActionIdentify, wantQueue: "default", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "identify", "identifiers": map[string]any{"id": "u1"},
				"attributes": map[string]any{"plan": "pro"}, "timestamp": ts},
		},
		{
			name: "IdentifyWithNilAttributes",
			call: func(p *producer.Producer) (producer.Result, error) {
				return p.Identify(ctx, "u1", nil)
			},
			wantAction: track.ActionIdentify, wantQueue: "default", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "identify", "identifiers": map[string]any{"id": "u1"}, "timestamp": ts},
		},
		{
			name: "Track",
			call: func(p *producer.Producer) (producer.Result, error) {
				return p.Track(ctx, "u1", "purchase", map[string]any{"amount": 10})
			},
			wantAction: track.ActionEvent, wantQueue: "default", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "event", "identifiers": map[string]any{"id": "u1"},
				"name": "purchase", "attributes": map[string]any{"amount": float64(10)}, "timestamp": ts},
		},
		{
			name: "TrackAnonymous",
			call: func(p *producer.Producer) (producer.Result, error) {
				return p.TrackAnonymous(ctx, "a-123", "viewed", map[string]any{"page": "/"})
			},
			wantAction: track.ActionEvent, wantQueue: "default", wantPerson: "anonymous_id:a-123",
			wantOp: map[string]any{"type": "person", "action": "event", "identifiers": map[string]any{"anonymous_id": "a-123"},
				"name": "viewed", "attributes": map[string]any{"page": "/"}, "timestamp": ts},
		},
		{
			name:       "Suppress",
			call:       func(p *producer.Producer) (producer.Result, error) { return p.Suppress(ctx, "u1") },
			wantAction: track.ActionSuppress, wantQueue: "critical", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "suppress", "identifiers": map[string]any{"id": "u1"}, "timestamp": ts},
		},
		{
			name:       "Unsuppress",
			call:       func(p *producer.Producer) (producer.Result, error) { return p.Unsuppress(ctx, "u1") },
			wantAction: track.ActionUnsuppress, wantQueue: "critical", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "unsuppress", "identifiers": map[string]any{"id": "u1"}, "timestamp": ts},
		},
		{
			name:       "Delete",
			call:       func(p *producer.Producer) (producer.Result, error) { return p.Delete(ctx, "u1") },
			wantAction: track.ActionDelete, wantQueue: "critical", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "delete", "identifiers": map[string]any{"id": "u1"}, "timestamp": ts},
		},
		{
			name: "AddDevice",
			call: func(p *producer.Producer) (producer.Result, error) {
				return p.AddDevice(ctx, "u1", track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000})
			},
			wantAction: track.ActionAddDevice, wantQueue: "default", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "add_device", "identifiers": map[string]any{"id": "u1"},
				"device": map[string]any{"token": "tok", "platform": "ios", "last_used": float64(1700000000)}, "timestamp": ts},
		},
		{
			name:       "DeleteDevice",
			call:       func(p *producer.Producer) (producer.Result, error) { return p.DeleteDevice(ctx, "u1", "tok") },
			wantAction: track.ActionDeleteDevice, wantQueue: "default", wantPerson: "id:u1",
			wantOp: map[string]any{"type": "person", "action": "delete_device", "identifiers": map[string]any{"id": "u1"},
				"device": map[string]any{"token": "tok"}, "timestamp": ts},
		},
		{
			name: "Merge",
			call: func(p *producer.Producer) (producer.Result, error) {
				return p.Merge(ctx, track.Identifiers{ID: "a"}, track.Identifiers{Email: "b@x.io"})
			},
			wantAction: track.ActionMerge, wantQueue: "default", wantPerson: "id:a",
			wantOp: map[string]any{"type": "person", "action": "merge", "primary": map[string]any{"id": "a"},
				"secondary": map[string]any{"email": "b@x.io"}, "timestamp": ts},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, b := setup(t, nil)
			res, err := tt.call(p)
			require.NoError(t, err)

			_, err = ulid.ParseStrict(res.OpID)
			require.NoError(t, err, "op id without a key is a ULID")
			require.Equal(t, tt.wantQueue, res.Queue)
			require.Equal(t, "default:"+res.OpID, res.TaskID)
			require.False(t, res.Duplicate)

			info, pl := b.queued(t, res)
			require.Equal(t, "cio:"+string(tt.wantAction), info.Type)
			require.Equal(t, tt.wantQueue, info.Queue)
			require.Equal(t, task.MaxRetry(producer.DefaultMaxRetry), info.MaxRetry, "one retry to spare (task.MaxRetry)")
			require.WithinDuration(t, time.Now(), pl.EnqueuedAt, time.Minute, "stamped on Redis's clock")
			want := &task.Payload{Workspace: "default", OpID: res.OpID, Action: tt.wantAction, Person: tt.wantPerson,
				Timestamp: now.Unix()}
			got := *pl
			got.Op, got.EnqueuedAt = nil, time.Time{}
			if diff := cmp.Diff(want, &got); diff != "" {
				t.Fatalf("payload (-want +got):\n%s", diff)
			}

			op := opJSON(t, pl.Op)
			if tt.wantAction.IsEvent() {
				require.Equal(t, res.OpID, res.EventID, "without a key the event id is the op id")
				require.Equal(t, res.EventID, op["id"])
				delete(op, "id")
			} else {
				require.Empty(t, res.EventID)
			}
			if diff := cmp.Diff(tt.wantOp, op); diff != "" {
				t.Fatalf("op JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProducerRejectsInvalidOps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		call      func(p *producer.Producer) (producer.Result, error)
		wantField string
	}{
		{"EmptyPersonID", func(p *producer.Producer) (producer.Result, error) { return p.Identify(ctx, "", nil) }, "identifiers"},
		{"SuppressWithoutPerson", func(p *producer.Producer) (producer.Result, error) { return p.Suppress(ctx, "") }, "identifiers"},
		{"DeleteWithoutPerson", func(p *producer.Producer) (producer.Result, error) { return p.Delete(ctx, "") }, "identifiers"},
		{"TrackWithoutName", func(p *producer.Producer) (producer.Result, error) { return p.Track(ctx, "u1", "", nil) }, "name"},
		{"EventIDNotULID", func(p *producer.Producer) (producer.Result, error) {
			return p.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: "u1"},
				Name: "x", ID: "order-42"}})
		}, "id"},
		{"UnknownAction", func(p *producer.Producer) (producer.Result, error) {
			return p.Enqueue(ctx, producer.Op{Op: track.Op{Action: "launch", Identifiers: &track.Identifiers{ID: "u1"}}})
		}, ""},
		{"ZeroOp", func(p *producer.Producer) (producer.Result, error) { return p.Enqueue(ctx, producer.Op{}) }, ""},
		{"NilIdentifiersIdentify", func(p *producer.Producer) (producer.Result, error) {
			return p.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionIdentify}})
		}, "identifiers"},
		{"AttributeTooLong", func(p *producer.Producer) (producer.Result, error) {
			return p.Identify(ctx, "u1", map[string]any{"bio": strings.Repeat("x", track.MaxAttributeValueBytes+1)})
		}, "attributes.bio"},
		{"WorkspaceWithColon", func(p *producer.Producer) (producer.Result, error) {
			return p.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionSuppress, Identifiers: &track.Identifiers{ID: "u1"}},
				Workspace: "a:b"})
		}, "workspace"},
		{"KeyTooLong", func(p *producer.Producer) (producer.Result, error) {
			return p.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionDelete, Identifiers: &track.Identifiers{ID: "u1"}},
				Key: strings.Repeat("k", producer.MaxKeyBytes+1)})
		}, "key"},
		{"KeyNotUTF8", func(p *producer.Producer) (producer.Result, error) {
			return p.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "u1"}},
				Key: "\xff"})
		}, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, b := setup(t, nil)
			res, err := tt.call(p)
			require.ErrorIs(t, err, track.ErrInvalidOp)
			require.NotErrorIs(t, err, producer.ErrUnavailable)
			var verr *track.ValidationError
			require.True(t, errors.As(err, &verr), "%v", err)
			if tt.wantField != "" {
				require.Equal(t, tt.wantField, verr.Field, "%v", err)
			}
			require.Equal(t, producer.Result{}, res)
			require.Zero(t, b.keys(t), "nothing queued, no tombstone")
		})
	}
}

func TestProducerDuplicateKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, b := setup(t, nil)
	op := producer.Op{Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "u1"},
		Attributes: map[string]any{"plan": "pro"}}, Key: "signup-u1"}
	first, err := p.Enqueue(ctx, op)
	require.NoError(t, err)
	require.False(t, first.Duplicate)
	require.Equal(t, "signup-u1", first.OpID)
	require.Equal(t, "default:signup-u1", first.TaskID)

	op.Attributes = map[string]any{"plan": "free"}
	second, err := p.Enqueue(ctx, op)
	require.NoError(t, err)
	require.True(t, second.Duplicate)
	first.Duplicate = true
	require.Equal(t, first, second)

	qi, err := b.insp.GetQueueInfo("default")
	require.NoError(t, err)
	require.Equal(t, 1, qi.Size)
	_, pl := b.queued(t, first)
	require.Equal(t, "pro", opJSON(t, pl.Op)["attributes"].(map[string]any)["plan"], "the first op stays queued")

	t.Run("SameKeyInAnotherWorkspaceIsAnotherOp", func(t *testing.T) {
		op.Workspace = "eu"
		res, err := p.Enqueue(ctx, op)
		require.NoError(t, err)
		require.False(t, res.Duplicate)
		require.Equal(t, "eu:signup-u1", res.TaskID)
	})
}

// derived is the event id the design prescribes for a non-ULID key.
func derived(workspace, key string) string {
	sum := sha256.Sum256([]byte(workspace + "\x00" + key))
	return ulid.ULID(sum[:16]).String()
}

func TestProducerEventID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	event := func(key, ws, id string) producer.Op {
		return producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: "u1"}, Name: "purchase", ID: id},
			Key: key, Workspace: ws}
	}
	t.Run("DerivedFromWorkspaceAndKey", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		res, err := p.Enqueue(ctx, event("order-42", "", ""))
		require.NoError(t, err)
		require.Equal(t, derived("default", "order-42"), res.EventID)
		_, err = ulid.ParseStrict(res.EventID)
		require.NoError(t, err)
		_, pl := b.queued(t, res)
		require.Equal(t, res.EventID, opJSON(t, pl.Op)["id"])

		again, err := p.Enqueue(ctx, event("order-42", "", ""))
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		require.Equal(t, res.EventID, again.EventID, "a repeat carries the same id")

		other, err := p.Enqueue(ctx, event("order-42", "eu", ""))
		require.NoError(t, err)
		require.Equal(t, derived("eu", "order-42"), other.EventID)
		require.NotEqual(t, res.EventID, other.EventID)
	})
	t.Run("ULIDKeyIsTheEventID", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, nil)
		key := "01JD4X7Q8M6Y2K3N5P7R9T1V3W"
		res, err := p.Enqueue(ctx, event(key, "", ""))
		require.NoError(t, err)
		require.Equal(t, key, res.OpID)
		require.Equal(t, key, res.EventID)
	})
	t.Run("CallerULIDKept", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		id := "01ARZ3NDEKTSV4RRFFQ69G5FAV"
		res, err := p.Enqueue(ctx, event("k1", "", id))
		require.NoError(t, err)
		require.Equal(t, "k1", res.OpID)
		require.Equal(t, id, res.EventID)
		_, pl := b.queued(t, res)
		require.Equal(t, id, opJSON(t, pl.Op)["id"])
	})
	t.Run("PageAndScreenGetOne", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, nil)
		for _, a := range []track.Action{track.ActionPage, track.ActionScreen} {
			op := event("view-"+string(a), "", "")
			op.Action = a
			res, err := p.Enqueue(ctx, op)
			require.NoError(t, err)
			require.Equal(t, derived("default", "view-"+string(a)), res.EventID)
		}
	})
}

func TestProducerTimestamps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, b := setup(t, nil)
	caller := time.Date(2024, 3, 1, 12, 0, 0, 900_000_000, time.UTC)
	identify := func(ts time.Time, raw int64) producer.Op {
		return producer.Op{Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "u1"}, Timestamp: raw}, Timestamp: ts}
	}
	tests := []struct {
		name string
		op   producer.Op
		want int64
	}{
		{"CallerTimestamp", identify(caller, 0), caller.Unix()},
		{"CallerTimestampWinsOverRaw", identify(caller, 1600000000), caller.Unix()},
		{"RawOpTimestamp", identify(time.Time{}, 1600000000), 1600000000},
		{"NowWhenUnset", identify(time.Time{}, 0), now.Unix()},
	}
	for _, tt := range tests {
		res, err := p.Enqueue(ctx, tt.op)
		require.NoError(t, err, tt.name)
		_, pl := b.queued(t, res)
		require.Equal(t, float64(tt.want), opJSON(t, pl.Op)["timestamp"], tt.name)
		require.WithinDuration(t, time.Now(), pl.EnqueuedAt, time.Minute, "%s: enqueued_at is Redis's clock, not the producer's", tt.name)
	}
}

func TestProducerTombstones(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, b := setup(t, func(c *producer.Config) { c.Workspace = "shop" })
	store := idempotency.New(b.db.Client, idempotency.Config{Prefix: b.prefix})

	t.Run("SuppressWritesOne", func(t *testing.T) {
		res, err := p.Suppress(ctx, "u1")
		require.NoError(t, err)
		tomb, err := store.Tombstone(ctx, "shop", "id:u1")
		require.NoError(t, err)
		require.NotNil(t, tomb)
		require.Equal(t, res.OpID, tomb.OpID)
		_, pl := b.queued(t, res)
		require.Equal(t, pl.Stamp(), tomb.Stamp, "the tombstone's stamp is the op's")
	})
	t.Run("DeleteWritesOne", func(t *testing.T) {
		res, err := p.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionDelete, Identifiers: &track.Identifiers{Email: "a@b.c"}}})
		require.NoError(t, err)
		tomb, err := store.Tombstone(ctx, "shop", "email:a@b.c")
		require.NoError(t, err)
		require.NotNil(t, tomb)
		require.Equal(t, res.OpID, tomb.OpID)
	})
	t.Run("OthersWriteNone", func(t *testing.T) {
		for _, call := range []func() (producer.Result, error){
			func() (producer.Result, error) { return p.Unsuppress(ctx, "u2") },
			func() (producer.Result, error) { return p.Identify(ctx, "u2", nil) },
			func() (producer.Result, error) { return p.Track(ctx, "u2", "x", nil) },
		} {
			_, err := call()
			require.NoError(t, err)
		}
		tomb, err := store.Tombstone(ctx, "shop", "id:u2")
		require.NoError(t, err)
		require.Nil(t, tomb)
	})
}

func TestProducerContext(t *testing.T) {
	t.Parallel()
	t.Run("AlreadyCancelledQueuesNothing", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Suppress(ctx, "u1")
		require.ErrorIs(t, err, context.Canceled)
		_, err = p.Identify(ctx, "u1", nil)
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, b.keys(t))
	})
	t.Run("PastDeadlineQueuesNothing", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := p.Identify(ctx, "u1", nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Zero(t, b.keys(t))
	})
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestProducerRedisUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"ClosedPort", closedPort},
		// go-redis would wait its 3 s ReadTimeout; the producer returns at its
		// own Timeout.
		{"SilentServer", silentServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 300 * time.Millisecond
			p, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: tt.addr(t)}, Timeout: timeout})
			require.NoError(t, err)
			for _, call := range []func() (producer.Result, error){
				func() (producer.Result, error) { return p.Identify(context.Background(), "u1", nil) },
				func() (producer.Result, error) { return p.Suppress(context.Background(), "u1") },
			} {
				start := time.Now()
				res, err := call()
				elapsed := time.Since(start)
				require.ErrorIs(t, err, producer.ErrUnavailable)
				require.NotErrorIs(t, err, track.ErrInvalidOp)
				require.Equal(t, producer.Result{}, res)
				require.Less(t, elapsed, 2500*time.Millisecond, "bounded by Timeout, not by go-redis's 3 s read timeout")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, p.Close(ctx))
		})
	}
}

func TestProducerConcurrentEnqueues(t *testing.T) {
	t.Parallel()
	p, b := setup(t, nil)
	const workers, perWorker, distinct = 8, 40, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	dups, fresh := 0, map[string]bool{}
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Sprintf("k%d", (w*perWorker+i)%distinct)
				op := producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: "u" + key},
					Name: "tick", Attributes: map[string]any{"w": w}}, Key: key}
				if i%10 == 0 {
					op = producer.Op{} // an invalid op now and then
				}
				res, err := p.Enqueue(context.Background(), op)
				if i%10 == 0 {
					if !errors.Is(err, track.ErrInvalidOp) {
						t.Errorf("invalid op: %v", err)
					}
					continue
				}
				if err != nil {
					t.Errorf("enqueue %s: %v", key, err)
					continue
				}
				mu.Lock()
				if res.Duplicate {
					dups++
				} else {
					if fresh[key] {
						t.Errorf("key %s queued twice", key)
					}
					fresh[key] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	qi, err := b.insp.GetQueueInfo("default")
	require.NoError(t, err)
	require.Equal(t, len(fresh), qi.Size)
	require.Equal(t, workers*perWorker*9/10, len(fresh)+dups)
}

func TestProducerClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("LaterCallsReturnErrClosed", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		p, err := producer.New(producer.Config{Redis: db.ConnOpt()})
		require.NoError(t, err)
		_, err = p.Identify(ctx, "u1", nil)
		require.NoError(t, err)
		require.NoError(t, p.Close(ctx))
		require.NoError(t, p.Close(ctx), "a second Close is a no-op")
		_, err = p.Identify(ctx, "u1", nil)
		require.ErrorIs(t, err, producer.ErrClosed)
		_, err = p.Identify(ctx, "", nil)
		require.ErrorIs(t, err, producer.ErrClosed, "closed wins over validation")
	})
	t.Run("SharedClientStaysOpen", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		p, err := producer.New(producer.Config{Client: db.Client, Workspace: "w1"})
		require.NoError(t, err)
		res, err := p.Track(ctx, "u1", "opened", nil)
		require.NoError(t, err)
		require.Equal(t, "w1:"+res.OpID, res.TaskID)
		require.NoError(t, p.Close(ctx))
		require.NoError(t, db.Client.Ping(ctx).Err())
		insp := asynq.NewInspectorFromRedisClient(db.Client)
		require.Equal(t, "default.w1", res.Queue, "each workspace has its own lanes")
		_, err = insp.GetTaskInfo(res.Queue, res.TaskID)
		require.NoError(t, err)
	})
}

func TestProducerDoesNotModifyCallerOp(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, nil)
	ids := &track.Identifiers{ID: "u1"}
	op := producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: ids, Name: "x", Attributes: map[string]any{"a": 1}}}
	before := op
	_, err := p.Enqueue(context.Background(), op)
	require.NoError(t, err)
	if diff := cmp.Diff(before, op); diff != "" {
		t.Fatalf("op changed (-before +after):\n%s", diff)
	}
	require.Equal(t, track.Identifiers{ID: "u1"}, *ids)
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	redis := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	tests := []struct {
		name    string
		cfg     producer.Config
		wantMsg string
	}{
		{"NoRedis", producer.Config{}, "config needs Redis or Client"},
		{"WorkspaceWithBrace", producer.Config{Redis: redis, Workspace: "a{b}"}, "workspace"},
		{"KeyPrefixWithBrace", producer.Config{Redis: redis, KeyPrefix: "cioq:{x}:"}, "key prefix"},
		{"NegativeTimeout", producer.Config{Redis: redis, Timeout: -time.Second}, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := producer.New(tt.cfg)
			require.Nil(t, p)
			require.ErrorIs(t, err, producer.ErrInvalidConfig)
			require.ErrorContains(t, err, tt.wantMsg)
		})
	}
}

func TestProducerRouting(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	p, err := producer.New(producer.Config{Redis: db.ConnOpt(), Workspace: "a",
		Workspaces: []string{"a", "b", "c"}, Route: producer.HashRouter("a", "b", "c")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	seen := map[string]string{}
	counts := map[string]int{}
	for i := range 300 {
		person := fmt.Sprintf("person-%d", i%60)
		res, err := p.Track(ctx, person, "x", map[string]any{"i": i})
		require.NoError(t, err)
		ws, _, _ := strings.Cut(res.TaskID, ":")
		if prev, ok := seen[person]; ok {
			require.Equal(t, prev, ws, "a person's ops always land in one workspace")
		}
		seen[person] = ws
		counts[ws]++
		_, def := task.Lanes(ws)
		require.Equal(t, def, res.Queue)
	}
	require.Len(t, counts, 3, "the hash spreads people over every workspace")
	// An explicit workspace wins over the router; an unknown one is refused.
	res, err := p.Enqueue(ctx, producer.Op{Workspace: "c", Op: track.Op{Action: track.ActionSuppress, Identifiers: &track.Identifiers{ID: "z"}}})
	require.NoError(t, err)
	require.Equal(t, "critical.c", res.Queue)
	_, err = p.Enqueue(ctx, producer.Op{Workspace: "d", Op: track.Op{Action: track.ActionSuppress, Identifiers: &track.Identifiers{ID: "z"}}})
	require.ErrorIs(t, err, track.ErrInvalidOp)
	_, err = producer.New(producer.Config{Redis: db.ConnOpt(), Workspace: "x", Workspaces: []string{"a"}})
	require.ErrorIs(t, err, producer.ErrInvalidConfig)
}

func TestProducerMetrics(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	p, err := producer.New(producer.Config{Redis: db.ConnOpt(), Registerer: reg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	_, err = p.Enqueue(ctx, producer.Op{Key: "k1", Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "u1"}}})
	require.NoError(t, err)
	_, err = p.Enqueue(ctx, producer.Op{Key: "k1", Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "u1"}}})
	require.NoError(t, err)
	_, err = p.Enqueue(ctx, producer.Op{Op: track.Op{Action: "teleport", Identifiers: &track.Identifiers{ID: "u1"}}})
	require.ErrorIs(t, err, track.ErrInvalidOp)
	counts := map[string]float64{}
	var observed uint64
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case metrics.NameEnqueued:
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" {
						counts[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			case metrics.NameEnqueueDuration:
				observed = m.GetHistogram().GetSampleCount()
			}
		}
	}
	require.Equal(t, map[string]float64{"queued": 1, "duplicate": 1, "invalid": 1}, counts)
	require.EqualValues(t, 2, observed, "the invalid op is not timed")
}
