package producer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// nowISO is the test clock as a Pipelines timestamp.
var nowISO = cdp.FormatTimestamp(now)

func TestProducerPipelinesCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	critLane, defLane := task.Lanes(producer.DefaultWorkspace)
	tests := []struct {
		name       string
		call       cdp.Call
		wantAction track.Action
		wantQueue  string
		wantPerson string
	}{
		{"Identify", cdp.Call{Type: cdp.TypeIdentify, UserID: "u1", Traits: map[string]any{"plan": "pro"}},
			track.ActionIdentify, defLane, "id:u1"},
		{"IdentifyByEmailTrait", cdp.Call{Type: cdp.TypeIdentify, Traits: map[string]any{"email": "a@b.c"}},
			track.ActionIdentify, defLane, "email:a@b.c"},
		{"TrackAnonymous", cdp.Call{Type: cdp.TypeTrack, AnonymousID: "anon-1", Event: "Viewed"},
			track.ActionEvent, defLane, "anonymous_id:anon-1"},
		{"Page", cdp.Call{Type: cdp.TypePage, UserID: "u1", Name: "Pricing"}, track.ActionPage, defLane, "id:u1"},
		{"Screen", cdp.Call{Type: cdp.TypeScreen, UserID: "cio_7", Name: "Cart"}, track.ActionScreen, defLane, "cio_id:7"},
		{"Group", cdp.Call{Type: cdp.TypeGroup, UserID: "u1", GroupID: "acme"}, track.ActionAddRelationships, defLane, "id:u1"},
		{"Alias", cdp.Call{Type: cdp.TypeAlias, UserID: "u1", PreviousID: "anon-1"}, track.ActionMerge, defLane, "id:u1"},
		{"UserDeletedIsCritical", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventUserDeleted},
			track.ActionDelete, critLane, "id:u1"},
		{"UserSuppressedIsCritical", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventUserSuppressed},
			track.ActionSuppress, critLane, "id:u1"},
		{"UserUnsuppressedIsCritical", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventUserUnsuppressed},
			track.ActionUnsuppress, critLane, "id:u1"},
		{"DeviceCreated", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventDeviceCreatedOrUpdated,
			Context: map[string]any{"device": map[string]any{"token": "t"}}}, track.ActionAddDevice, defLane, "id:u1"},
		{"ObjectDeletedIsOrderedWithNobody", cdp.Call{Type: cdp.TypeTrack, AnonymousID: "x", Event: cdp.EventObjectDeleted,
			Properties: map[string]any{"objectId": "acme"}}, track.ActionEvent, defLane, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, b := setup(t, nil)
			call := tt.call
			call.MessageID = "m-" + tt.name
			res, err := p.Enqueue(ctx, producer.Op{Call: &call})
			require.NoError(t, err)
			require.Equal(t, "m-"+tt.name, res.OpID, "the messageId is the op id")
			require.Equal(t, "m-"+tt.name, res.MessageID)
			require.Empty(t, res.EventID)
			require.Equal(t, tt.wantQueue, res.Queue)
			info, pl := b.queued(t, res)
			require.Equal(t, task.TypeNameOf(task.APIPipelines, tt.wantAction), info.Type)
			require.Equal(t, task.APIPipelines, pl.API)
			require.Equal(t, tt.wantAction, pl.Action)
			require.Equal(t, tt.wantPerson, pl.Person)
			require.Equal(t, now.Unix(), pl.Timestamp)
			require.NotZero(t, pl.Stamp(), "stamped by Redis as queued")

			stored, err := cdp.ValidateRawCall(pl.Op, "")
			require.NoError(t, err, "the stored op is a valid Pipelines call")
			want := call.Clone()
			want.Timestamp = nowISO
			require.Equal(t, want, stored)
			require.Empty(t, call.Timestamp, "the caller's call is not modified")
		})
	}
}

func TestProducerPipelinesStamps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	identify := func() *cdp.Call { return &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1"} }

	t.Run("MessageIDDerivedFromTheKeyIsStableAcrossRetries", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		first, err := p.Enqueue(ctx, producer.Op{Call: identify(), Key: "signup-u1"})
		require.NoError(t, err)
		require.Equal(t, "signup-u1", first.OpID)
		require.Equal(t, derived(producer.DefaultWorkspace, "signup-u1"), first.MessageID)
		again, err := p.Enqueue(ctx, producer.Op{Call: identify(), Key: "signup-u1"})
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		require.Equal(t, first.MessageID, again.MessageID)
		_, pl := b.queued(t, first)
		require.Equal(t, first.MessageID, opJSON(t, pl.Op)["messageId"])
	})
	t.Run("WithoutKeyOrMessageIDTheOpIDIsAULIDAndTheMessageID", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, nil)
		res, err := p.Enqueue(ctx, producer.Op{Call: identify()})
		require.NoError(t, err)
		_, err = ulid.ParseStrict(res.OpID)
		require.NoError(t, err)
		require.Equal(t, res.OpID, res.MessageID)
	})
	t.Run("TheSameMessageIDTwiceIsOneOp", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		c := identify()
		c.MessageID = "node-next-1-abc"
		first, err := p.Enqueue(ctx, producer.Op{Call: c})
		require.NoError(t, err)
		c.Traits = map[string]any{"changed": true}
		second, err := p.Enqueue(ctx, producer.Op{Call: c})
		require.NoError(t, err)
		require.True(t, second.Duplicate)
		require.Equal(t, first.TaskID, second.TaskID)
		qi, err := b.insp.GetQueueInfo("default")
		require.NoError(t, err)
		require.Equal(t, 1, qi.Size)
	})
	t.Run("ALongMessageIDGivesAHashedOpID", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		c := identify()
		c.MessageID = strings.Repeat("m", producer.MaxKeyBytes+1)
		res, err := p.Enqueue(ctx, producer.Op{Call: c})
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(res.OpID, "msg-"), res.OpID)
		require.Equal(t, c.MessageID, res.MessageID, "the messageId is sent as given")
		_, pl := b.queued(t, res)
		require.Equal(t, c.MessageID, opJSON(t, pl.Op)["messageId"])
	})
	t.Run("TimestampKnobWinsOverTheCallsOwn", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		c := identify()
		c.MessageID, c.Timestamp = "m1", "2024-01-02T03:04:05.678Z"
		res, err := p.Enqueue(ctx, producer.Op{Call: c})
		require.NoError(t, err)
		_, pl := b.queued(t, res)
		require.Equal(t, "2024-01-02T03:04:05.678Z", opJSON(t, pl.Op)["timestamp"], "a caller's timestamp is kept, milliseconds and all")
		require.Equal(t, int64(1704164645), pl.Timestamp)

		at := time.Date(2025, 5, 6, 7, 8, 9, 10_000_000, time.FixedZone("X", 3600))
		res, err = p.Enqueue(ctx, producer.Op{Call: c, Key: "k2", Timestamp: at})
		require.NoError(t, err)
		_, pl = b.queued(t, res)
		require.Equal(t, "2025-05-06T06:08:09.010Z", opJSON(t, pl.Op)["timestamp"])
		require.Equal(t, "2024-01-02T03:04:05.678Z", c.Timestamp, "the caller's call is not modified")
	})
	t.Run("CallJSONIsStoredAsGiven", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		c, enc, err := cdp.DecodeCall([]byte(`{"type":"track","messageId":"m9","timestamp":"2024-01-02T03:04:05.678Z","userId":"u1","event":"E","_metadata":{"jsRuntime":"node"}}`), "")
		require.NoError(t, err)
		res, err := p.Enqueue(ctx, producer.Op{Call: c, CallJSON: enc})
		require.NoError(t, err)
		_, pl := b.queued(t, res)
		require.Equal(t, string(enc), string(pl.Op))
	})
}

func TestProducerPipelinesRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("InvalidCall", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		_, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "u1"}})
		require.ErrorIs(t, err, track.ErrInvalidOp)
		var verr *cdp.ValidationError
		require.ErrorAs(t, err, &verr)
		require.Equal(t, "event", verr.Field)
		require.Zero(t, b.keys(t))
	})
	t.Run("ATrackOpAndACallInOneOp", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, nil)
		_, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1"},
			Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "u1"}}})
		require.ErrorIs(t, err, track.ErrInvalidOp)
		require.ErrorContains(t, err, "not both")
		require.Zero(t, b.keys(t))
	})
	t.Run("AWorkspaceWithoutAPipelinesKey", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, func(c *producer.Config) {
			c.Workspaces = []string{"default", "eu"}
			c.PipelinesWorkspaces = []string{"eu"}
		})
		_, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1"}})
		require.ErrorIs(t, err, producer.ErrNoPipelines)
		require.ErrorIs(t, err, track.ErrInvalidOp, "an op that can never be queued as it is")
		var npe *producer.NoPipelinesError
		require.ErrorAs(t, err, &npe)
		require.Equal(t, "default", npe.Workspace)
		require.Zero(t, b.keys(t))

		res, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1"}, Workspace: "eu"})
		require.NoError(t, err)
		require.Equal(t, "default.eu", res.Queue)
		_, err = p.Identify(ctx, "u1", nil)
		require.NoError(t, err, "Track ops are not affected")
	})
	t.Run("AnEmptyListRefusesEveryCall", func(t *testing.T) {
		t.Parallel()
		p, _ := setup(t, func(c *producer.Config) { c.PipelinesWorkspaces = []string{} })
		_, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1"}})
		require.ErrorIs(t, err, producer.ErrNoPipelines)
	})
	t.Run("EnqueueAllRefusesTheRequestAndNamesTheCall", func(t *testing.T) {
		t.Parallel()
		p, b := setup(t, func(c *producer.Config) { c.PipelinesWorkspaces = []string{} })
		_, err := p.EnqueueAll(ctx, []producer.Op{
			{Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "u1"}}},
			{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1"}},
		})
		var ie *producer.InvalidOpsError
		require.ErrorAs(t, err, &ie)
		require.Len(t, ie.Invalid, 1)
		require.Equal(t, 1, ie.Invalid[0].Index)
		require.ErrorIs(t, ie.Invalid[0].Err, producer.ErrNoPipelines)
		require.Zero(t, b.keys(t), "all or nothing")
	})
}

// A Pipelines call is ordered and tombstoned with the Track ops of its
// person: a Track delete writes the tombstone that drops an older
// Pipelines identify, and a Pipelines "User Suppressed" one that drops an
// older Track event.
func TestProducerPipelinesCallsShareTheTrackOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, b := setup(t, nil)
	store := idempotency.New(b.db.Client, idempotency.Config{Prefix: b.prefix})

	identify, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1", MessageID: "m1"}})
	require.NoError(t, err)
	del, err := p.Delete(ctx, "u1")
	require.NoError(t, err)
	tomb, err := store.Tombstone(ctx, producer.DefaultWorkspace, "id:u1")
	require.NoError(t, err)
	require.Equal(t, del.OpID, tomb.OpID)
	_, pl := b.queued(t, identify)
	require.Less(t, pl.Stamp(), tomb.Stamp, "the identify is older than the delete: a worker drops it")

	// A userId with "@" is an email, as a Track v1 path id is.
	ev, err := p.Enqueue(ctx, producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{Email: "a@b.c"}, Name: "x"}})
	require.NoError(t, err)
	sup, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "a@b.c", Event: cdp.EventUserSuppressed, MessageID: "m2"}})
	require.NoError(t, err)
	tomb, err = store.Tombstone(ctx, producer.DefaultWorkspace, "email:a@b.c")
	require.NoError(t, err)
	require.Equal(t, sup.OpID, tomb.OpID, "the call's person is the Track op's person")
	_, evp := b.queued(t, ev)
	require.Equal(t, "email:a@b.c", evp.Person)
	require.Less(t, evp.Stamp(), tomb.Stamp)
}

func TestEnqueueBulkKeepsTheAPIsApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, b := setup(t, nil)
	var ops []producer.Op
	for i := range 10 {
		ops = append(ops, bulkEvent(i))
		ops = append(ops, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: "E",
			MessageID: "bulk-call-" + string(rune('a'+i))}})
	}
	ops = append(ops, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "u9", Event: cdp.EventUserDeleted, MessageID: "del"}})
	res, err := p.EnqueueBulk(ctx, ops)
	require.NoError(t, err)
	require.Equal(t, producer.BulkResult{Ops: 21, Enqueued: 21, Tasks: 2, Critical: 1}, res)

	infos, err := b.insp.ListPendingTasks(task.BulkQueue(producer.DefaultWorkspace), asynq.PageSize(100))
	require.NoError(t, err)
	require.Len(t, infos, 2)
	byType := map[string]*task.Bulk{}
	for _, info := range infos {
		bk, err := task.BulkFromTask(asynq.NewTask(info.Type, info.Payload))
		require.NoError(t, err)
		byType[info.Type] = bk
	}
	require.Len(t, byType[task.TypeBulk].Ops, 10)
	require.Len(t, byType[task.TypeBulkPipelines].Ops, 10)
	for _, op := range byType[task.TypeBulkPipelines].Ops {
		require.Equal(t, task.APIPipelines, op.API)
		require.True(t, strings.HasPrefix(op.OpID, "bulk-call-"))
	}
	crit, _ := task.Lanes(producer.DefaultWorkspace)
	info, err := b.insp.GetTaskInfo(crit, task.TaskID(producer.DefaultWorkspace, "del"))
	require.NoError(t, err)
	require.Equal(t, "cio:pipelines:delete", info.Type, "a critical call goes alone to the critical lane")
}

func TestHashRouterRoutesCallsByTheirPerson(t *testing.T) {
	t.Parallel()
	route := producer.HashRouter("a", "b", "c", "d")
	for i := range 50 {
		id := "person-" + string(rune('A'+i))
		trackOp := producer.Op{Op: track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: id}}}
		call := producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: id, Event: "x"}}
		require.Equal(t, route(&trackOp), route(&call), "a person's Track ops and calls share a workspace")
	}
}

func TestProducerConfigPipelinesWorkspaces(t *testing.T) {
	t.Parallel()
	_, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"},
		Workspaces: []string{"default"}, PipelinesWorkspaces: []string{"eu"}})
	require.ErrorIs(t, err, producer.ErrInvalidConfig)
	require.True(t, errors.Is(err, producer.ErrInvalidConfig))
	require.ErrorContains(t, err, `pipelines workspaces: "eu" is not in workspaces`)
}

// Calls spooled while Redis is down (in a group, as ingest hands over a
// request) are replayed as Pipelines tasks, with their messageId.
func TestSpoolKeepsPipelinesCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	down, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: closedPort(t)},
		Spool: producer.SpoolConfig{Dir: dir, Fsync: producer.FsyncAlways}})
	require.NoError(t, err)
	res, err := down.EnqueueAll(ctx, []producer.Op{
		{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "sp-1", MessageID: "sp-m1"}},
		{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "sp-1", Event: cdp.EventUserDeleted, MessageID: "sp-m2"}},
		{Op: track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: "sp-2"}}},
	})
	require.NoError(t, err)
	for _, r := range res {
		require.True(t, r.Spooled)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, down.Close(cctx))

	db := redistest.New(t)
	up, err := producer.New(producer.Config{Redis: db.ConnOpt(), KeyPrefix: redistest.Prefix(t), Spool: producer.SpoolConfig{Dir: dir}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = up.Close(context.Background()) })
	requireReplayed(t, up, db, res)
	insp := asynq.NewInspectorFromRedisClient(db.Client)
	for i, want := range []string{"cio:pipelines:identify", "cio:pipelines:delete", "cio:identify"} {
		info, err := insp.GetTaskInfo(res[i].Queue, res[i].TaskID)
		require.NoError(t, err)
		require.Equal(t, want, info.Type)
		p, err := task.FromTask(asynq.NewTask(info.Type, info.Payload))
		require.NoError(t, err)
		if i < 2 {
			require.Equal(t, res[i].MessageID, opJSON(t, p.Op)["messageId"])
		}
	}
}
