// Package tracing is cioq's OpenTelemetry glue shared by the producer, the
// worker and the binary: W3C trace context in asynq task headers, trace and
// span ids in slog records, and a TracerProvider built from the standard
// OTEL_* environment variables.
//
// Tracing is off unless a TracerProvider is configured; off costs nothing on
// the hot path (callers keep a nil trace.Tracer and skip every span):
//
//	tp, shutdown, err := tracing.FromEnv(ctx, os.LookupEnv) // nil tp: off
//	headers := tracing.Inject(ctx)                      // producer: into the task
//	ctx = tracing.Extract(ctx, task.Headers())          // worker: the caller's trace
//	logger := slog.New(tracing.LogHandler(h))           // trace_id, span_id in logs
package tracing
