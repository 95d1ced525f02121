package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/internal/tracing"
)

// startTracing returns the TracerProvider the standard OTEL_* environment
// variables configure (nil when they turn tracing off, the default) and a
// function that flushes and stops it.
func startTracing(ctx context.Context, g *globals, logger *slog.Logger) (trace.TracerProvider, func(), error) {
	env := g.env
	if env == nil {
		env = os.LookupEnv
	}
	tp, shutdown, err := tracing.FromEnv(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	if tp != nil {
		logger.Info("tracing on: spans exported over OTLP/HTTP (OTEL_* environment)")
	}
	return tp, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			logger.Warn("tracing: spans not flushed", "error", err.Error())
		}
	}, nil
}
