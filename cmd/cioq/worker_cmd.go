package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/serve"
	"github.com/cioq/cioq/worker"
)

func newWorkerCmd(g *globals) *cobra.Command {
	var monitoring bool
	var adminAddr string
	var scaling scalingFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Deliver queued operations to Customer.io",
		Long: `worker dequeues operations from Redis and delivers them to the Customer.io Track
API in v2 batches, through the workspace's shared rate limit, circuit breaker and
done-markers; Pipelines API calls of a workspace with a cdp_api_key
(CUSTOMERIO_CDP_API_KEY) go to its Pipelines API (/v1/batch) the same way, in
requests of their own. SIGTERM stops it gracefully: in-flight batches finish or go
back to the queue.

On --addr (CIOQ_HTTP_ADDR) it serves /healthz, /readyz, /health/customerio and
/metrics to anyone. The admin paths show personal data and Redis internals:
/ops/{id} (an op's history, with the person's id, often an email) and the asynqmon
dashboard, read-only, under /monitoring/ (payloads, Redis INFO). On --addr they
need HTTP basic auth with monitoring.username/password
(CIOQ_MONITORING_USERNAME/_PASSWORD); without credentials they are refused (403).
--admin-addr (CIOQ_ADMIN_ADDR) serves them on a second listener: without
credentials only on loopback (e.g. 127.0.0.1:9091, reached with kubectl
port-forward), where they need no auth. The start-up log says what is served
where.`,
		Example: `  cioq worker --addr :8080                                # admin paths refused (no credentials)
  cioq worker --addr :8080 --admin-addr 127.0.0.1:9091    # admin paths on loopback only
  CIOQ_MONITORING_USERNAME=ops CIOQ_MONITORING_PASSWORD=... cioq worker   # admin paths with basic auth`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("admin-addr") {
				cfg.Monitoring.AdminAddr = adminAddr
			}
			if err := cfg.Validate(); err != nil {
				return usageError(err)
			}
			return runWorker(cmd.Context(), g, cfg, monitoring, scaling, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&monitoring, "monitoring", true, "serve the asynqmon dashboard (read-only) under /monitoring/ (admin path: see above)")
	cmd.Flags().StringVar(&adminAddr, "admin-addr", "", "serve the admin paths (/monitoring/, /ops/) on this second listener; loopback only without credentials (env CIOQ_ADMIN_ADDR)")
	scaling.register(cmd.Flags())
	return cmd
}

func runWorker(ctx context.Context, g *globals, cfg *config.Config, monitoring bool, scaling scalingFlags, stderr io.Writer) error {
	logger := cfg.Log.Logger(stderr)
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
	adminPaths := "/ops/{id}"
	if monitoring {
		mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: wc.Redis, ReadOnly: true})
		defer mon.Close()
		mux.Handle(mon.RootPath()+"/", mon)
		adminPaths = "/monitoring/ /ops/{id}"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		w.Shutdown()
		return fmt.Errorf("worker: listen %s: %w", cfg.HTTPAddr, err)
	}
	servers := []serve.Server{{HTTP: &http.Server{Handler: guardAdmin(mux, cfg.Monitoring), ReadHeaderTimeout: 5 * time.Second}, Listener: ln}}
	logger.Info("worker http listening", slog.String("url", listenURL(ln.Addr())), slog.String("addr", ln.Addr().String()),
		slog.String("public_paths", "/healthz /readyz /health/customerio /metrics"),
		slog.String("admin_paths", adminPaths), slog.String("admin_access", adminAccess(cfg.Monitoring)))
	if a := cfg.Monitoring.AdminAddr; a != "" {
		aln, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			_ = ln.Close()
			w.Shutdown()
			return fmt.Errorf("worker: listen on admin address %s: %w", a, err)
		}
		var admin http.Handler = mux
		access := "none (loopback only)"
		if cfg.Monitoring.HasCredentials() {
			admin, access = basicAuth(mux, cfg.Monitoring.Username, cfg.Monitoring.Password.Reveal(), adminPrefixes...), "basic auth"
		}
		servers = append(servers, serve.Server{HTTP: &http.Server{Handler: admin, ReadHeaderTimeout: 5 * time.Second}, Listener: aln})
		logger.Info("worker admin listening", slog.String("url", listenURL(aln.Addr())), slog.String("addr", aln.Addr().String()),
			slog.String("admin_paths", adminPaths), slog.String("admin_access", access))
	} else if !cfg.Monitoring.HasCredentials() {
		logger.Warn("worker admin paths refused: no monitoring credentials and no admin listener",
			slog.String("admin_paths", adminPaths),
			slog.String("hint", "set CIOQ_MONITORING_USERNAME and CIOQ_MONITORING_PASSWORD, or CIOQ_ADMIN_ADDR=127.0.0.1:9091"))
	}
	// The queue servers drain first, while /healthz still answers.
	err = serve.Run(ctx, serve.Config{Stopping: func(err error) {
		if err != nil {
			logger.Error("http server failed", "error", err.Error())
		} else {
			logger.Info("shutting down")
		}
		w.Shutdown()
	}}, servers...)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil // requests outlived the shutdown bound: closed, as the process ends anyway
	}
	return err
}
