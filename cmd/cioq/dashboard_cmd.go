package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/health"
	"github.com/cioq/cioq/internal/serve"
)

func newDashboardCmd(g *globals) *cobra.Command {
	var readWrite bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the asynqmon dashboard on its own",
		Long: `dashboard serves the asynqmon UI for cioq's queues under /monitoring/ on --addr
(CIOQ_HTTP_ADDR), read-only unless --read-write, for operators who keep it off the
workers (cioq worker --monitoring=false). The UI shows payloads (person ids,
attributes) and Redis INFO: with monitoring.username/password
(CIOQ_MONITORING_USERNAME/_PASSWORD) it needs HTTP basic auth; without them it
only listens on a loopback address (--addr 127.0.0.1:8090), reached with kubectl
port-forward or an SSH tunnel. It also serves /healthz, /readyz (Redis reachable)
and /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if !cfg.Monitoring.HasCredentials() {
				if host, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil || !config.IsLoopbackHost(host) {
					return usageError(fmt.Errorf("dashboard: --addr %s is not a loopback address and no monitoring credentials are set: "+
						"set CIOQ_MONITORING_USERNAME and CIOQ_MONITORING_PASSWORD, or listen on 127.0.0.1", cfg.HTTPAddr))
				}
			}
			conn, err := cfg.Redis.ConnOpt()
			if err != nil {
				return usageError(err)
			}
			rdb, err := cfg.Redis.UniversalClient()
			if err != nil {
				return usageError(err)
			}
			defer rdb.Close()
			logger := cfg.Log.Logger(cmd.ErrOrStderr())
			mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: conn, ReadOnly: !readWrite})
			defer mon.Close()
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			mux := health.NewMux(health.Config{
				Checks:   []health.Check{{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}},
				Gatherer: reg,
			})
			mux.Handle(mon.RootPath()+"/", mon)
			var handler http.Handler = mux
			if cfg.Monitoring.HasCredentials() {
				handler = basicAuth(mux, cfg.Monitoring.Username, cfg.Monitoring.Password.Reveal(), "/monitoring/")
			}
			var lc net.ListenConfig
			ln, err := lc.Listen(cmd.Context(), "tcp", cfg.HTTPAddr)
			if err != nil {
				return fmt.Errorf("dashboard: listen %s: %w", cfg.HTTPAddr, err)
			}
			logger.Info("dashboard listening", slog.String("url", listenURL(ln.Addr())+"/monitoring/"),
				slog.Bool("read_only", !readWrite), slog.Bool("auth", cfg.Monitoring.HasCredentials()))
			srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
			if err := serve.Run(cmd.Context(), serve.Config{}, serve.Server{HTTP: srv, Listener: ln}); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("dashboard: %w", err)
			}
			logger.Info("dashboard stopped")
			return nil
		},
	}
	cmd.Flags().BoolVar(&readWrite, "read-write", false, "allow the UI to change tasks and queues (pause, delete, run)")
	return cmd
}
