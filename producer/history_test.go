package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/tracing"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

func trackOpOf(id, name string) track.Op {
	return track.Op{Action: track.ActionEvent, Identifiers: &track.Identifiers{ID: id}, Name: name}
}

func TestEnqueueHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RecordsEnqueuedAndIndexesThePerson", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		p, err := producer.New(producer.Config{Client: db.Client})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(ctx) })
		res, err := p.Track(ctx, "jane", "purchase", nil)
		require.NoError(t, err)
		dup, err := p.Enqueue(ctx, producer.Op{Op: trackOpOf("jane", "purchase"), Key: res.OpID})
		require.NoError(t, err)
		require.True(t, dup.Duplicate)

		st := history.New(db.Client, history.Config{})
		op, err := st.Get(ctx, producer.DefaultWorkspace, res.OpID)
		require.NoError(t, err)
		require.Len(t, op.Events, 1, "a duplicate enqueue adds nothing")
		require.Equal(t, history.KindEnqueued, op.Events[0].Kind)
		require.Equal(t, history.StateQueued, op.State)
		require.Equal(t, res.Queue, op.Queue)
		require.Equal(t, "event", op.Action)
		ops, err := st.Find(ctx, producer.DefaultWorkspace, "id:jane", history.Query{Since: time.Hour})
		require.NoError(t, err)
		require.Len(t, ops, 1)
		require.Equal(t, res.OpID, ops[0].OpID)
	})

	t.Run("DisabledRecordsNothing", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		p, err := producer.New(producer.Config{Client: db.Client, History: history.Config{Disabled: true}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(ctx) })
		res, err := p.Track(ctx, "jane", "purchase", nil)
		require.NoError(t, err)
		_, err = history.New(db.Client, history.Config{}).Get(ctx, producer.DefaultWorkspace, res.OpID)
		require.ErrorIs(t, err, history.ErrNotFound)
	})

	t.Run("InvalidHistoryConfigIsRefused", func(t *testing.T) {
		t.Parallel()
		_, err := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, History: history.Config{MaxEvents: 1}})
		require.ErrorIs(t, err, producer.ErrInvalidConfig)
	})
}

func TestEnqueueTrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	p, err := producer.New(producer.Config{Client: db.Client, TracerProvider: tp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })

	ctx, caller := tp.Tracer("app").Start(ctx, "checkout")
	res, err := p.Track(ctx, "jane", "purchase", nil)
	require.NoError(t, err)
	caller.End()

	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	enq := spans[0]
	require.Equal(t, producer.SpanEnqueue, enq.Name)
	require.Equal(t, caller.SpanContext().SpanID(), enq.Parent.SpanID(), "enqueue is the caller's child")
	require.Equal(t, trace.SpanKindProducer, enq.SpanKind)

	insp := asynq.NewInspectorFromRedisClient(db.Client)
	info, err := insp.GetTaskInfo(res.Queue, res.TaskID)
	require.NoError(t, err)
	sc := trace.SpanContextFromContext(tracing.Extract(context.Background(), info.Headers))
	require.Equal(t, enq.SpanContext.TraceID(), sc.TraceID())
	require.Equal(t, enq.SpanContext.SpanID(), sc.SpanID(), "the task carries the enqueue span")
}
