package producer

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/history"
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

// putOne puts e alone.
func (p *Producer) putOne(ctx context.Context, e *entry) (stored, error) {
	st, err := p.put(ctx, []*entry{e})
	if err != nil {
		return stored{}, err
	}
	return st[0], nil
}

// putTraced is put inside the SpanEnqueue span when Config.TracerProvider is
// set; the span's context goes into the task headers. Without a
// TracerProvider it is put, at no extra cost.
func (p *Producer) putTraced(ctx context.Context, e *entry) (stored, error) {
	tr := tracing.Tracer(p.cfg.TracerProvider)
	if tr == nil {
		return p.putOne(ctx, e)
	}
	ctx, span := tr.Start(ctx, SpanEnqueue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("cioq.op_id", e.payload.OpID), attribute.String("cioq.workspace", e.payload.Workspace),
		attribute.String("cioq.action", string(e.payload.Action))))
	defer span.End()
	e.headers = tracing.Inject(ctx)
	st, err := p.putOne(ctx, e)
	span.SetAttributes(attribute.Bool("cioq.duplicate", st.duplicate), attribute.Bool("cioq.spooled", st.spooled))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return st, err
}
