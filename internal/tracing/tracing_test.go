package tracing_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/internal/tracing"
)

func TestTracing(t *testing.T) {
	t.Parallel()

	t.Run("HeadersCarryTheSpanAcrossTheQueue", func(t *testing.T) {
		t.Parallel()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewInMemoryExporter())))
		ctx, span := tracing.Tracer(tp).Start(context.Background(), "caller")
		defer span.End()
		h := tracing.Inject(ctx)
		require.Contains(t, h, "traceparent")
		got := trace.SpanContextFromContext(tracing.Extract(context.Background(), h))
		require.Equal(t, span.SpanContext().TraceID(), got.TraceID())
		require.Equal(t, span.SpanContext().SpanID(), got.SpanID())
		require.True(t, got.IsRemote())
	})

	t.Run("NoSpanNoHeaders", func(t *testing.T) {
		t.Parallel()
		require.Nil(t, tracing.Inject(context.Background()))
		ctx := context.Background()
		require.Equal(t, ctx, tracing.Extract(ctx, nil))
		require.Nil(t, tracing.Tracer(nil))
	})

	t.Run("LogsCarryTraceAndSpanIDs", func(t *testing.T) {
		t.Parallel()
		tp := sdktrace.NewTracerProvider()
		ctx, span := tracing.Tracer(tp).Start(context.Background(), "s")
		defer span.End()
		var buf bytes.Buffer
		log := slog.New(tracing.LogHandler(slog.NewTextHandler(&buf, nil))).With("op_id", "op1")
		log.InfoContext(ctx, "hello")
		log.InfoContext(context.Background(), "plain")
		lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
		require.Len(t, lines, 2)
		require.Contains(t, string(lines[0]), "trace_id="+span.SpanContext().TraceID().String())
		require.Contains(t, string(lines[0]), "op_id=op1")
		require.NotContains(t, string(lines[1]), "trace_id")
	})

	t.Run("EnvTurnsTracingOn", func(t *testing.T) {
		t.Parallel()
		env := func(m map[string]string) func(string) (string, bool) {
			return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
		}
		tests := []struct {
			name string
			env  map[string]string
			want bool
		}{
			{"OffByDefault", nil, false},
			{"OnWithAnEndpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
			{"OnWithATracesEndpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
			{"OnWithTheOTLPExporter", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
			{"OffWithExporterNone", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, false},
			{"OffWhenTheSDKIsDisabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
		}
		for _, tt := range tests {
			require.Equal(t, tt.want, tracing.Enabled(env(tt.env)), tt.name)
		}
		tp, shutdown, err := tracing.FromEnv(context.Background(), env(nil))
		require.NoError(t, err)
		require.Nil(t, tp)
		require.NoError(t, shutdown(context.Background()))
	})
}
