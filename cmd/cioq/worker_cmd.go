package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/worker"
)

func newWorkerCmd(g *globals) *cobra.Command {
	var monitoring bool
	var scaling scalingFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Deliver queued operations to Customer.io",
		Long: `worker dequeues operations from Redis and delivers them to the Customer.io Track
API in v2 batches, through the workspace's shared rate limit, circuit breaker and
done-markers. It serves /healthz, /readyz, /health/customerio, /metrics, /ops/{id}
(an op's history) and the asynqmon dashboard (read-only) under /monitoring/ on
--addr (CIOQ_HTTP_ADDR);
with monitoring.username/password (CIOQ_MONITORING_USERNAME/_PASSWORD) the
dashboard and /ops/ need HTTP basic auth.
SIGTERM stops it gracefully: in-flight batches finish or go back to the queue.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageError(err)
			}
			return runWorker(cmd.Context(), g, cfg, monitoring, scaling)
		},
	}
	cmd.Flags().BoolVar(&monitoring, "monitoring", true, "serve the asynqmon dashboard (read-only) under /monitoring/")
	scaling.register(cmd.Flags())
	return cmd
}

// workerConfig maps the loaded configuration to worker.Config.
func workerConfig(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer) (worker.Config, func(), error) {
	conn, err := cfg.Redis.ConnOpt()
	if err != nil {
		return worker.Config{}, nil, err
	}
	rdb, err := cfg.Redis.UniversalClient()
	if err != nil {
		return worker.Config{}, nil, err
	}
	wc := worker.Config{
		Redis: conn, Client: rdb, KeyPrefix: cfg.KeyPrefix,
		Concurrency: cfg.Worker.Concurrency, Servers: cfg.Worker.DefaultServers,
		CriticalConcurrency: cfg.Worker.CriticalConcurrency,
		Retry:               worker.RetryPolicy{Base: cfg.Worker.RetryBase, Cap: cfg.Worker.RetryCap},
		ShutdownTimeout:     cfg.Worker.ShutdownTimeout, RequestTimeout: cfg.Worker.RequestTimeout,
		DoneTTL: cfg.Idempotency.DoneTTL, ClaimTTL: cfg.Idempotency.ClaimTTL, TombstoneTTL: cfg.Idempotency.TombstoneTTL,
		BreakerFailures: cfg.Breaker.Failures, BreakerSuccesses: cfg.Breaker.Successes, BreakerTimeout: cfg.Breaker.OpenTimeout,
		DeadLetterMax: cfg.DLQ.MaxEntries, UnauthorizedPause: cfg.Worker.UnauthorizedPause,
		Logger: logger, Registerer: reg,
	}
	for _, ws := range cfg.Workspaces {
		region, err := track.ParseRegion(ws.Region)
		if err != nil {
			_ = rdb.Close()
			return worker.Config{}, nil, fmt.Errorf("workspace %q: %w", ws.Name, err)
		}
		client, err := track.NewClient(track.Config{
			SiteID: ws.SiteID, APIKey: ws.APIKey.Reveal(), Region: region, BaseURL: ws.TrackURL,
			Timeout: cfg.Worker.RequestTimeout, Logger: logger,
		})
		if err != nil {
			_ = rdb.Close()
			return worker.Config{}, nil, fmt.Errorf("workspace %q: %w", ws.Name, err)
		}
		b := cfg.Batch
		if ws.Batch != nil {
			b = *ws.Batch
		}
		wc.Workspaces = append(wc.Workspaces, worker.Workspace{
			Name: ws.Name, Sender: client,
			Limit:  ratelimit.Limit{Rate: ws.RateLimit, Burst: ws.RateBurst, CriticalShare: ws.CriticalShare},
			Batch:  worker.BatchConfig{MaxOps: b.MaxOps, MaxBytes: b.MaxBytes, MaxWait: b.MaxWait},
			Weight: ws.Weight,
		})
	}
	return wc, func() { _ = rdb.Close() }, nil
}

func runWorker(ctx context.Context, g *globals, cfg *config.Config, monitoring bool, scaling scalingFlags) error {
	logger := cfg.Log.Logger(os.Stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	wc, closeRedis, err := workerConfig(cfg, logger, reg)
	if err != nil {
		return usageError(err)
	}
	defer closeRedis()
	tp, stopTracing, err := startTracing(ctx, g, logger) // tracing.go
	if err != nil {
		return usageError(err)
	}
	defer stopTracing()
	wc.TracerProvider = tp
	stopQueueMetrics, err := startQueueMetrics(cfg, wc.Client, reg, logger, scaling)
	if err != nil {
		return usageError(err)
	}
	defer stopQueueMetrics()
	w, err := worker.New(wc)
	if err != nil {
		return usageError(err)
	}
	if err := w.Start(); err != nil {
		return err
	}
	mux := w.HTTPHandler(reg)
	if monitoring {
		mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: wc.Redis, ReadOnly: true})
		defer mon.Close()
		mux.Handle(mon.RootPath()+"/", mon)
	}
	var handler http.Handler = mux
	if cfg.Monitoring.Username != "" {
		handler = basicAuth(mux, cfg.Monitoring.Username, cfg.Monitoring.Password.Reveal(), "/monitoring/", "/ops/")
	}
	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() {
		logger.Info("worker http listening", "addr", cfg.HTTPAddr)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err = <-errc:
		logger.Error("http server failed", "error", err.Error())
	}
	w.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return err
}
