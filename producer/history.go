package producer

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/tracing"
)

// SpanEnqueue is the name of the producer's span around one Enqueue. Its
// context travels in the task's headers, so the worker's handler span is its
// child.
const SpanEnqueue = "cioq.enqueue"

// historyConfig is the op history configuration of cfg: Config.History with
// the producer's key prefix.
func (c Config) historyConfig() history.Config {
	h := c.History
	h.Prefix = c.KeyPrefix
	return h
}

// newHistory returns the history store the Redis sink writes enqueued events
// to, or nil when history is off.
func newHistory(cfg Config, rdb history.Rediser) *history.Store {
	st := history.New(rdb, cfg.historyConfig())
	if !st.Enabled() {
		return nil
	}
	return st
}

// putTraced is put inside the SpanEnqueue span when Config.TracerProvider is
// set; the span's context goes into the task headers. Without a
// TracerProvider it is put, at no extra cost.
func (p *Producer) putTraced(ctx context.Context, e *entry) (stored, error) {
	tr := tracing.Tracer(p.cfg.TracerProvider)
	if tr == nil {
		return p.put(ctx, e)
	}
	ctx, span := tr.Start(ctx, SpanEnqueue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("cioq.op_id", e.payload.OpID), attribute.String("cioq.workspace", e.payload.Workspace),
		attribute.String("cioq.action", string(e.payload.Action))))
	defer span.End()
	e.headers = tracing.Inject(ctx)
	st, err := p.put(ctx, e)
	span.SetAttributes(attribute.Bool("cioq.duplicate", st.duplicate), attribute.Bool("cioq.spooled", st.spooled))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return st, err
}

// recordEnqueued seeds the op's history with its enqueued event and adds it
// to its person's index: one round trip after the task is queued. A failure
// is returned for the caller to log; the op is queued either way, and the
// worker seeds the history when it finds none.
func (s *redisSink) recordEnqueued(ctx context.Context, p *task.Payload) error {
	if s.hist == nil {
		return nil
	}
	err := s.hist.Append(ctx, p.Workspace, []history.Record{{
		OpID: p.OpID, Person: p.Person, EnqueuedAt: p.EnqueuedAt,
		Seed: history.Event{Kind: history.KindEnqueued, At: p.EnqueuedAt, Queue: task.Queue(p.Workspace, p.Action),
			Action: string(p.Action), Ref: p.Person},
	}})
	if err != nil {
		return fmt.Errorf("producer: history of %s: %w", p.OpID, err)
	}
	return nil
}
