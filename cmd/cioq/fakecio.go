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
	"github.com/spf13/cobra"

	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/health"
	"github.com/cioq/cioq/internal/serve"
	"github.com/cioq/cioq/track/fake"
)

// fakecioOptions are the flags of `cioq fakecio`.
type fakecioOptions struct {
	rate       float64
	burst      int
	cdpRate    float64
	cdpBurst   int
	retryAfter bool
}

// defaultFakeRate is the fake Track API's default budget: Customer.io's
// stated fair-use limit per workspace.
const defaultFakeRate = 100

// defaultFakeCDPRate is the fake Pipelines API's default budget:
// Customer.io's stated Pipelines limit, 3,000 requests per 3 seconds.
const defaultFakeCDPRate = 1000

func newFakecioCmd(g *globals) *cobra.Command {
	var o fakecioOptions
	cmd := &cobra.Command{
		Use:   "fakecio",
		Short: "Run the fake Customer.io Track and Pipelines APIs",
		Long: `fakecio serves two fakes on one listener, --addr (CIOQ_HTTP_ADDR):

The Track API (package track/fake): the v1 and v2 paths with Basic auth, body
limits, validation, a token-bucket rate limit per workspace (--rate) answering
429, and a ledger of what Customer.io would have done. Tools drive it over HTTP
without auth: GET /_fake/ledger, GET and PUT /_fake/faults, POST /_fake/reset,
GET /_fake/requests?limit=N.

The Pipelines API (package cdp/fake): POST /v1/identify, /v1/track, /v1/page,
/v1/screen, /v1/group, /v1/alias and /v1/batch with Basic auth (the key as user
name), the 32 KB / 500 KB limits, strict mode (X-Strict-Mode: 1) and permissive
mode, a rate limit per workspace (--cdp-rate) and its own ledger, under
/_fake/cdp/ (ledger, faults, reset, requests, users?workspace=W).

Credentials: Track, each configured workspace with a site id and an API key
(CUSTOMERIO_SITE_ID / CUSTOMERIO_TRACK_API_KEY, or the config file); Pipelines,
each configured workspace's cdp_api_key (CUSTOMERIO_CDP_API_KEY), counted under the
workspace's name. Where none is set, any is accepted. SIGINT or SIGTERM stops it
gracefully.`,
		Example: `  cioq fakecio --addr :8081 --rate 80
  CUSTOMERIO_TRACK_URL=http://127.0.0.1:8081 cioq worker
  CUSTOMERIO_CDP_API_KEY=k cioq fakecio --addr :8081   # Pipelines at http://127.0.0.1:8081/v1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return runFakecio(cmd, cfg, o, fakeCDPKeys(cfg))
		},
	}
	f := cmd.Flags()
	f.Float64Var(&o.rate, "rate", defaultFakeRate, "requests/s each workspace may make before 429 (0: no limit)")
	f.IntVar(&o.burst, "burst", 0, "token bucket size per workspace (0: max(1, rate))")
	f.Float64Var(&o.cdpRate, "cdp-rate", defaultFakeCDPRate, "Pipelines requests/s each workspace may make before 429 (0: no limit)")
	f.IntVar(&o.cdpBurst, "cdp-burst", 0, "Pipelines token bucket size per workspace (0: max(1, cdp-rate))")
	f.BoolVar(&o.retryAfter, "retry-after", false, "send Retry-After on 429 (the real APIs send none)")
	return cmd
}

func runFakecio(cmd *cobra.Command, cfg *config.Config, o fakecioOptions, cdpKeys map[string]string) error {
	logger := cfg.Log.Logger(cmd.ErrOrStderr())
	creds := fakeCredentials(cfg)
	srv, err := fake.New(fake.Options{
		Credentials: creds,
		RateLimit:   o.rate,
		Burst:       o.burst,
		RetryAfter:  o.retryAfter,
		Logger:      logger,
	})
	if err != nil {
		return usageError(err)
	}
	cdpSrv, err := cdpfake.New(cdpfake.Options{
		Keys:       cdpKeys,
		RateLimit:  o.cdpRate,
		Burst:      o.cdpBurst,
		RetryAfter: o.retryAfter,
		Logger:     logger,
	})
	if err != nil {
		return usageError(err)
	}
	ctx := cmd.Context()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("fakecio: listen %s: %w", cfg.HTTPAddr, err)
	}
	attrs := []any{slog.String("url", listenURL(ln.Addr())), slog.Float64("rate", o.rate), slog.Int("burst", o.burst)}
	if creds == nil {
		attrs = append(attrs, slog.String("credentials", "any"))
	} else {
		attrs = append(attrs, slog.Int("workspaces", len(creds)))
	}
	attrs = append(attrs, slog.Float64("cdp_rate", o.cdpRate), slog.Int("cdp_burst", o.cdpBurst))
	if cdpKeys == nil {
		attrs = append(attrs, slog.String("cdp_credentials", "any"))
	} else {
		attrs = append(attrs, slog.Int("cdp_workspaces", len(cdpKeys)))
	}
	logger.InfoContext(ctx, "fake track api listening", attrs...)
	// At a stop the requests in flight are cancelled first (a fault may
	// hold one), then waited for.
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	hs := &http.Server{
		Handler:           fakecioHandler(srv, cdpSrv),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if err := serve.Run(ctx, serve.Config{Stopping: func(error) { cancel() }}, serve.Server{HTTP: hs, Listener: ln}); err != nil {
		return fmt.Errorf("fakecio: %w", err)
	}
	logger.InfoContext(ctx, "fake track api stopped")
	return nil
}

// fakeCredentials maps the site id of every workspace that has both a site
// id and an API key to its key; nil (any accepted) when none has.
func fakeCredentials(cfg *config.Config) map[string]string {
	var creds map[string]string
	for _, ws := range cfg.Workspaces {
		if ws.SiteID == "" || ws.APIKey == "" {
			continue
		}
		if creds == nil {
			creds = map[string]string{}
		}
		creds[ws.SiteID] = ws.APIKey.Reveal()
	}
	return creds
}

// fakeCDPKeys maps the Pipelines API key of every configured workspace that
// has one (cdp_api_key; CUSTOMERIO_CDP_API_KEY for the workspace from the
// environment) to the workspace's name; nil (any key accepted) when none
// has.
func fakeCDPKeys(cfg *config.Config) map[string]string {
	var keys map[string]string
	for _, ws := range cfg.Workspaces {
		if ws.CDPAPIKey == "" {
			continue
		}
		if keys == nil {
			keys = map[string]string{}
		}
		keys[ws.CDPAPIKey.Reveal()] = ws.Name
	}
	return keys
}

// listenURL is the base URL clients use for a listener: an unspecified host
// (":8081", "[::]:8081") becomes 127.0.0.1.
func listenURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// fakecioHandler serves the fake Track API, the fake Pipelines API (/v1/
// and its control API under /_fake/cdp/) plus, like every cioq server
// command, /healthz, /readyz and /metrics (Go and process metrics; the
// fakes' counters are their ledgers at /_fake/ledger and
// /_fake/cdp/ledger).
func fakecioHandler(srv *fake.Server, cdpSrv *cdpfake.Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := health.NewMux(health.Config{Gatherer: reg})
	mux.Handle("/v1/", cdpSrv.Handler())
	mux.Handle(cdpfake.ControlPrefix, cdpSrv.Handler())
	mux.Handle("/", srv.Handler())
	return mux
}
