package main

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/producer"
)

func TestOpsCommands(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	st := history.New(db.Client, history.Config{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	enq := func(at time.Time, action string) history.Event {
		return history.Event{Kind: history.KindEnqueued, At: at, Queue: "default", Action: action, Ref: "id:jane"}
	}
	t1 := now.Add(-10 * time.Minute)
	require.NoError(t, st.Append(ctx, "default", []history.Record{
		{OpID: "op-delivered", Person: "id:jane", EnqueuedAt: t1, Seed: enq(t1, "event"), Events: []history.Event{
			{Kind: history.KindAttempt, At: t1.Add(50 * time.Millisecond), Batch: "b-1", Status: 503, Latency: 3 * time.Millisecond, Reason: "track: 503 Service Unavailable"},
			{Kind: history.KindAttempt, At: t1.Add(time.Second), Batch: "b-2", Status: 503, Latency: 2 * time.Millisecond, Reason: "track: 503 Service Unavailable"},
			{Kind: history.KindDelivered, At: t1.Add(3 * time.Second), Batch: "b-3", Status: 200, Latency: 4 * time.Millisecond},
		}},
		{OpID: "op-old", Person: "id:jane", EnqueuedAt: now.Add(-3 * time.Hour), Seed: enq(now.Add(-3*time.Hour), "identify")},
	}))
	// An op queued with history off: show finds its task in asynq.
	p, err := producer.New(producer.Config{Client: db.Client, History: history.Config{Disabled: true}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	pending, err := p.Track(ctx, "kim", "x", nil)
	require.NoError(t, err)

	t.Run("ShowPrintsTheTimeline", func(t *testing.T) {
		r := run(t, nil, "ops", "show", "op-delivered", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		for _, want := range []string{"op op-delivered (event)", "person id:jane", "state: delivered", "3 attempt(s)",
			"attempt #1", "HTTP 503  batch b-1", "attempt #2", "delivered #3", "HTTP 200  batch b-3", "task: not in the queue"} {
			require.Contains(t, r.stdout, want)
		}
	})

	t.Run("ShowJSON", func(t *testing.T) {
		r := run(t, nil, "ops", "show", "op-delivered", "--json", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		var got struct {
			OpID     string           `json:"op_id"`
			State    string           `json:"state"`
			Events   []map[string]any `json:"events"`
			Attempts []map[string]any `json:"attempts"`
			Task     *taskView        `json:"task"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.Equal(t, "delivered", got.State)
		require.Len(t, got.Events, 4)
		require.Len(t, got.Attempts, 3)
		require.Nil(t, got.Task)
	})

	t.Run("ShowFindsAQueuedOpWithoutHistory", func(t *testing.T) {
		r := run(t, nil, "ops", "show", pending.OpID, "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "state: queued")
		require.Contains(t, r.stdout, "task: pending in queue default")
	})

	t.Run("ShowUnknownFails", func(t *testing.T) {
		r := run(t, nil, "ops", "show", "nope", "--redis", db.URL())
		require.Equal(t, exitFailure, r.code)
		require.Contains(t, r.stderr, "no history for op")
	})

	t.Run("FindJSONIsExactlyTheContract", func(t *testing.T) {
		r := run(t, nil, "ops", "find", "--person", "jane", "--json", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		var got []map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.Len(t, got, 2)
		require.Equal(t, []string{"action", "attempts", "delivered_at", "op_id", "state"}, keys(got[0]))
		var attempts []map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(got[0]["attempts"], &attempts))
		require.Len(t, attempts, 3)
		require.Equal(t, []string{"at", "error", "status"}, keys(attempts[0]))
		require.JSONEq(t, `503`, string(attempts[0]["status"]))
		require.JSONEq(t, `"op-delivered"`, string(got[0]["op_id"]))
		require.JSONEq(t, `"delivered"`, string(got[0]["state"]))
		require.JSONEq(t, `null`, string(got[1]["delivered_at"]))
		require.JSONEq(t, `[]`, string(got[1]["attempts"]))
	})

	t.Run("FindFilters", func(t *testing.T) {
		r := run(t, nil, "ops", "find", "--person", "id:jane", "--since", "1h", "--action", "track", "--json", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		var got []history.Summary
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
		require.Len(t, got, 1)
		require.Equal(t, "op-delivered", got[0].OpID)

		r = run(t, nil, "ops", "find", "--person", "jane", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "op-delivered")
		require.Contains(t, r.stdout, "delivered 200")

		r = run(t, nil, "ops", "find", "--person", "nobody", "--json", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		require.JSONEq(t, `[]`, r.stdout)
	})

	t.Run("FindNeedsAPerson", func(t *testing.T) {
		r := run(t, nil, "ops", "find", "--redis", db.URL())
		require.Equal(t, exitUsage, r.code)
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
