package history_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/redistest"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func enqueued(at time.Time, action, person string) history.Event {
	return history.Event{Kind: history.KindEnqueued, At: at, Queue: "default", Action: action, Ref: person}
}

func setup(t *testing.T, cfg history.Config) (*history.Store, *redistest.DB) {
	t.Helper()
	db := redistest.New(t)
	return history.New(db.Client, cfg), db
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RecordsEveryEventAndDerivesState", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, history.Config{})
		rec := history.Record{OpID: "op1", Person: "id:u1", EnqueuedAt: t0, Seed: enqueued(t0, "event", "id:u1")}
		require.NoError(t, s.Append(ctx, "ws", []history.Record{rec}))
		attempt := history.Event{Kind: history.KindAttempt, At: t0.Add(time.Second), Batch: "b1", Status: 503,
			Latency: 1500 * time.Microsecond, Reason: "track: 503:\tService\nUnavailable"}
		rec.Events = []history.Event{attempt}
		require.NoError(t, s.Append(ctx, "ws", []history.Record{rec})) // the seed is not written twice
		got, err := s.Get(ctx, "ws", "op1")
		require.NoError(t, err)
		require.Equal(t, history.StateRetrying, got.State)

		delivered := history.Event{Kind: history.KindDelivered, At: t0.Add(3 * time.Second), Batch: "b2", Status: 200, Latency: 2 * time.Millisecond}
		require.NoError(t, s.Append(ctx, "ws", []history.Record{{OpID: "op1", Events: []history.Event{delivered}}}))
		got, err = s.Get(ctx, "ws", "op1")
		require.NoError(t, err)
		attempt.Reason = "track: 503: Service Unavailable" // tabs and line breaks become spaces
		want := &history.Op{Workspace: "ws", OpID: "op1", Action: "event", Queue: "default", Person: "id:u1",
			EnqueuedAt: t0, State: history.StateDelivered,
			Events: []history.Event{enqueued(t0, "event", "id:u1"), attempt, delivered}}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("(-want +got)\n%s", d)
		}
		at := t0.Add(3 * time.Second)
		wantSum := history.Summary{OpID: "op1", Action: "event", State: history.StateDelivered, DeliveredAt: &at,
			Attempts: []history.SummaryAttempt{{At: t0.Add(time.Second), Status: 503, Error: attempt.Reason}, {At: at, Status: 200}}}
		if d := cmp.Diff(wantSum, got.Summary()); d != "" {
			t.Fatalf("summary (-want +got)\n%s", d)
		}
	})

	t.Run("UnknownOpIsNotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, history.Config{})
		_, err := s.Get(ctx, "ws", "nope")
		require.ErrorIs(t, err, history.ErrNotFound)
	})

	t.Run("TrimsToMaxEventsKeepingTheFirst", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, history.Config{MaxEvents: 4})
		rec := history.Record{OpID: "op", Seed: enqueued(t0, "identify", "")}
		for i := range 6 {
			rec.Events = append(rec.Events, history.Event{Kind: history.KindAttempt, At: t0.Add(time.Duration(i+1) * time.Second), Status: 500 + i})
		}
		require.NoError(t, s.Append(ctx, "ws", []history.Record{rec}))
		got, err := s.Get(ctx, "ws", "op")
		require.NoError(t, err)
		var statuses []int
		for _, e := range got.Events {
			statuses = append(statuses, e.Status)
		}
		require.Equal(t, []int{0, 503, 504, 505}, statuses)
		require.Equal(t, history.KindEnqueued, got.Events[0].Kind)
	})

	t.Run("SetsTheTTLOnHistoryAndPersonIndex", func(t *testing.T) {
		t.Parallel()
		s, db := setup(t, history.Config{TTL: time.Hour, Prefix: "p:"})
		require.NoError(t, s.Append(ctx, "ws", []history.Record{{OpID: "op", Person: "id:u", EnqueuedAt: t0, Seed: enqueued(t0, "event", "id:u")}}))
		for _, k := range []string{"p:{ws}:h:op", "p:{ws}:hp:id:u"} {
			ttl, err := db.Client.PTTL(ctx, k).Result()
			require.NoError(t, err)
			require.Greater(t, ttl, 59*time.Minute, k)
			require.LessOrEqual(t, ttl, time.Hour, k)
		}
	})

	t.Run("FindsAPersonsOpsNewestFirstWithFilters", func(t *testing.T) {
		t.Parallel()
		now := t0.Add(2 * time.Hour)
		s, _ := setup(t, history.Config{MaxPersonOps: 3})
		var recs []history.Record
		for i, a := range []string{"identify", "event", "event", "event"} {
			at := t0.Add(time.Duration(i) * 40 * time.Minute)
			recs = append(recs, history.Record{OpID: "op" + string(rune('a'+i)), Person: "id:jane", EnqueuedAt: at, Seed: enqueued(at, a, "id:jane")})
		}
		recs = append(recs, history.Record{OpID: "other", Person: "id:bob", EnqueuedAt: t0, Seed: enqueued(t0, "event", "id:bob")})
		require.NoError(t, s.Append(ctx, "ws", recs))
		ids := func(ops []history.Op) []string {
			var out []string
			for _, o := range ops {
				out = append(out, o.OpID)
			}
			return out
		}
		all, err := s.Find(ctx, "ws", "id:jane", history.Query{})
		require.NoError(t, err)
		require.Equal(t, []string{"opd", "opc", "opb"}, ids(all), "capped at MaxPersonOps, newest first")
		recent, err := s.Find(ctx, "ws", "id:jane", history.Query{Since: time.Hour, Now: func() time.Time { return now }})
		require.NoError(t, err)
		require.Equal(t, []string{"opd", "opc"}, ids(recent))
		one, err := s.Find(ctx, "ws", "id:jane", history.Query{Action: "event", Limit: 1})
		require.NoError(t, err)
		require.Equal(t, []string{"opd"}, ids(one))
		none, err := s.Find(ctx, "ws", "id:jane", history.Query{Action: "identify"})
		require.NoError(t, err)
		require.Empty(t, none, "the identify was trimmed from the index")
	})

	t.Run("DisabledWritesNothing", func(t *testing.T) {
		t.Parallel()
		s, db := setup(t, history.Config{Disabled: true})
		require.False(t, s.Enabled())
		require.NoError(t, s.Append(ctx, "ws", []history.Record{{OpID: "op", Seed: enqueued(t0, "event", "")}}))
		n, err := db.Client.DBSize(ctx).Result()
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("RejectsInvalidConfig", func(t *testing.T) {
		t.Parallel()
		s := history.New(nil, history.Config{Prefix: "a{b"})
		err := s.Append(ctx, "ws", []history.Record{{OpID: "op"}})
		require.True(t, errors.Is(err, history.ErrInvalid), err)
	})
}

func TestStateOfEachOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := setup(t, history.Config{})
	long := strings.Repeat("é", 300)
	tests := []struct {
		name      string
		events    []history.Event
		wantState history.State
	}{
		{"QueuedWithoutEvents", nil, history.StateQueued},
		{"DeferredByAClaim", []history.Event{{Kind: history.KindDeferred, Reason: "claimed", Next: t0.Add(time.Minute)}}, history.StateDeferred},
		{"DroppedByATombstone", []history.Event{{Kind: history.KindDropped, Reason: history.DropTombstone, Ref: "sup1"}}, history.StateDropped},
		{"DuplicateAfterDeliveryStaysDelivered", []history.Event{{Kind: history.KindDelivered, Status: 200}, {Kind: history.KindDropped, Reason: history.DropDuplicate}}, history.StateDelivered},
		{"DuplicateWithoutDelivery", []history.Event{{Kind: history.KindDropped, Reason: history.DropDuplicate}}, history.StateDuplicate},
		{"DeadLettered", []history.Event{{Kind: history.KindAttempt, Status: 200, Reason: long}, {Kind: history.KindDeadLettered, Status: 200, Reason: long}}, history.StateDeadLettered},
		{"Archived", []history.Event{{Kind: history.KindAttempt, Status: 500}, {Kind: history.KindArchived, Reason: "500"}}, history.StateArchived},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for i := range tt.events {
				tt.events[i].At = t0.Add(time.Duration(i+1) * time.Second)
			}
			require.NoError(t, s.Append(ctx, "ws", []history.Record{{OpID: tt.name, Seed: enqueued(t0, "event", ""), Events: tt.events}}))
			got, err := s.Get(ctx, "ws", tt.name)
			require.NoError(t, err)
			require.Equal(t, tt.wantState, got.State)
			for _, e := range got.Events {
				require.LessOrEqual(t, len(e.Reason), history.MaxReasonBytes+len("…"))
			}
		})
	}
}
