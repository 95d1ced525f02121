package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/ingest"
	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/serve"
	"github.com/cioq/cioq/producer"
)

// ingestOptions are the flags of `cioq ingest`: the HTTP server's bounds.
type ingestOptions struct {
	readTimeout     time.Duration
	headerTimeout   time.Duration
	writeTimeout    time.Duration
	idleTimeout     time.Duration
	shutdownTimeout time.Duration
	maxConcurrent   int
}

// Defaults of the ingest flags.
const (
	defaultIngestReadTimeout     = 10 * time.Second
	defaultIngestHeaderTimeout   = 5 * time.Second
	defaultIngestWriteTimeout    = 15 * time.Second
	defaultIngestIdleTimeout     = 90 * time.Second
	defaultIngestShutdownTimeout = 20 * time.Second
)

func newIngestCmd(g *globals) *cobra.Command {
	var o ingestOptions
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Serve Track- and Pipelines-compatible HTTP APIs that queue operations",
		Long: `ingest serves the Customer.io Track API paths (v1 identify, delete, track, anonymous
track, suppress, unsuppress, devices, merge; v2 entity and batch) on --addr
(CIOQ_HTTP_ADDR), so an application switches its Customer.io base URL to cioq and
changes nothing else. Basic auth is each configured workspace's site_id:api_key;
ops are validated as Customer.io does, queued through the producer, and answered
200 only once durable. An Idempotency-Key header makes a retried request a no-op.
It also serves /healthz, /readyz (Redis reachable) and /metrics.

On the same listener it serves the Pipelines API paths (POST /v1/identify,
/v1/track, /v1/page, /v1/screen, /v1/group, /v1/alias, /v1/batch) for every
workspace with a cdp_api_key (CUSTOMERIO_CDP_API_KEY): Basic auth with that key as
the user name and a blank password, as Customer.io's SDKs send it; point an SDK's
host option at ingest (docs/ingest.md). A request with X-Strict-Mode: 1 is answered
as in the Pipelines API's strict mode (400 for an invalid call, nothing queued);
one without it, as SDKs send, as in its permissive mode (invalid calls dropped,
counted and logged; the valid ones queued). A wrong key is always a 401.

Without a spool (spool.dir, CIOQ_SPOOL_DIR: unset by default) an op is durable
only once it is in Redis: while Redis is unreachable every request is answered 503
(retryable; clients retry) and /readyz is unready. Set CIOQ_SPOOL_DIR to a
writable directory (in Kubernetes a volume) to keep answering 200 through a Redis
outage: ops go to a bounded on-disk spool and are replayed in order when Redis is
back (docs/spool.md). ingest logs a warning at start when no spool is configured.

SIGINT or SIGTERM stops it gracefully: it stops accepting connections and lets the
requests in flight finish (up to --shutdown-timeout). See docs/ingest.md.`,
		Example: `  CUSTOMERIO_SITE_ID=site CUSTOMERIO_TRACK_API_KEY=key CUSTOMERIO_CDP_API_KEY=cdpkey cioq ingest --addr :8080
  curl -u site:key -X PUT localhost:8080/api/v1/customers/u1 -d '{"plan":"pro"}'
  curl -u cdpkey: localhost:8080/v1/track -d '{"userId":"u1","event":"Purchase","messageId":"m-1"}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageError(err)
			}
			return runIngest(cmd.Context(), cfg, o, cfg.Log.Logger(cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.readTimeout, "read-timeout", defaultIngestReadTimeout, "bound on reading a whole request, body included")
	f.DurationVar(&o.headerTimeout, "header-timeout", defaultIngestHeaderTimeout, "bound on reading request headers")
	f.DurationVar(&o.writeTimeout, "write-timeout", defaultIngestWriteTimeout, "bound from the end of the headers to the end of the answer")
	f.DurationVar(&o.idleTimeout, "idle-timeout", defaultIngestIdleTimeout, "how long a keep-alive connection may wait for its next request")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", defaultIngestShutdownTimeout, "how long a graceful stop waits for requests in flight")
	f.IntVar(&o.maxConcurrent, "max-concurrent-per-client", ingest.DefaultMaxConcurrentPerClient, "requests in flight per site id; more are answered 429")
	return cmd
}

// ingestWorkspaces maps the configured workspaces to ingest credentials.
func ingestWorkspaces(cfg *config.Config) ([]ingest.Workspace, []string) {
	ws := make([]ingest.Workspace, 0, len(cfg.Workspaces))
	names := make([]string, 0, len(cfg.Workspaces))
	for _, w := range cfg.Workspaces {
		ws = append(ws, ingest.Workspace{Name: w.Name, SiteID: w.SiteID, APIKey: w.APIKey.Reveal(),
			PipelinesKey: w.CDPAPIKey.Reveal()})
		names = append(names, w.Name)
	}
	return ws, names
}

// pipelinesWorkspaces names the configured workspaces with a Pipelines API
// key (producer.Config.PipelinesWorkspaces): never nil, so a producer of a
// configuration without any refuses every Pipelines call.
func pipelinesWorkspaces(cfg *config.Config) []string {
	names := []string{}
	for _, w := range cfg.Workspaces {
		if w.CDPAPIKey != "" {
			names = append(names, w.Name)
		}
	}
	return names
}

func runIngest(ctx context.Context, cfg *config.Config, o ingestOptions, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rdb, err := cfg.Redis.UniversalClient()
	if err != nil {
		return usageError(err)
	}
	defer rdb.Close()
	workspaces, names := ingestWorkspaces(cfg)
	pc := producer.Config{Client: rdb, KeyPrefix: cfg.KeyPrefix, Workspace: names[0], Workspaces: names,
		PipelinesWorkspaces: pipelinesWorkspaces(cfg), MaxRetry: cfg.Worker.MaxRetry, Logger: logger, Registerer: reg}
	if cfg.Spool.Dir != "" {
		pc.Spool = producer.SpoolConfig{Dir: cfg.Spool.Dir, MaxBytes: int64(cfg.Spool.MaxBytes)}
	} else {
		logger.WarnContext(ctx, "ingest has no spool: while Redis is unreachable every request is answered 503",
			slog.String("hint", "set CIOQ_SPOOL_DIR (spool.dir) to a writable directory to accept ops durably through a Redis outage; see docs/spool.md"))
	}
	p, err := producer.New(pc)
	if err != nil {
		return usageError(err)
	}
	h, err := ingest.New(ingest.Config{
		Producer: p, Workspaces: workspaces, MaxConcurrentPerClient: o.maxConcurrent,
		// A request stops trying to make its ops durable well before the
		// server's write deadline, so the client always gets its answer.
		EnqueueTimeout: o.writeTimeout / 2,
		Ready:          ingestReady(rdb, p, cfg.Spool),
		Logger:         logger, Registerer: reg,
	})
	if err != nil {
		_ = p.Close(context.Background())
		return usageError(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		_ = p.Close(context.Background())
		return fmt.Errorf("ingest: listen %s: %w", cfg.HTTPAddr, err)
	}
	logger.InfoContext(ctx, "ingest listening", slog.String("url", listenURL(ln.Addr())), slog.Int("workspaces", len(workspaces)),
		slog.Int("pipelines_workspaces", len(pc.PipelinesWorkspaces)),
		slog.String("redis", cfg.Redis.String()), slog.Bool("spool", cfg.Spool.Dir != ""))
	err = serveIngest(ctx, ln, h, o, logger)
	cctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if cerr := p.Close(cctx); cerr != nil {
		logger.Warn("producer close", slog.String("error", cerr.Error()))
	}
	logger.Info("ingest stopped")
	return err
}

// serveIngest serves h on ln until ctx ends, then stops accepting and waits
// up to o.shutdownTimeout for the requests in flight to finish (each gets
// its answer: an op is never left half-enqueued by the stop).
func serveIngest(ctx context.Context, ln net.Listener, h http.Handler, o ingestOptions, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadTimeout:       o.readTimeout,
		ReadHeaderTimeout: o.headerTimeout,
		WriteTimeout:      o.writeTimeout,
		IdleTimeout:       o.idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	err := serve.Run(ctx, serve.Config{ShutdownTimeout: o.shutdownTimeout, Stopping: func(err error) {
		if err == nil {
			logger.Info("ingest shutting down: finishing requests in flight")
		}
	}}, serve.Server{HTTP: srv, Listener: ln})
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

// ingestReady is ingest's readiness: it can accept durably while Redis
// answers, or, with a spool, while the spool has room.
func ingestReady(rdb redis.UniversalClient, p *producer.Producer, sp config.Spool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		err := rdb.Ping(ctx).Err()
		if err == nil || sp.Dir == "" {
			return err
		}
		if st := p.SpoolStats(); st.Bytes < int64(sp.MaxBytes) {
			return nil
		}
		return fmt.Errorf("redis unreachable (%v) and the spool is full", err)
	}
}
