package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/track/fake"
)

// fakecioOptions are the flags of `cioq fakecio`.
type fakecioOptions struct {
	rate       float64
	burst      int
	retryAfter bool
}

// defaultFakeRate is the fake's default budget: Customer.io's stated
// fair-use limit per workspace.
const defaultFakeRate = 100

func newFakecioCmd(g *globals) *cobra.Command {
	var o fakecioOptions
	cmd := &cobra.Command{
		Use:   "fakecio",
		Short: "Run the fake Customer.io Track API",
		Long: `fakecio serves the fake Track API (package track/fake) on --addr (CIOQ_HTTP_ADDR):
the v1 and v2 paths with Basic auth, body limits, validation, a token-bucket rate
limit per workspace answering 429, and a ledger of what Customer.io would have
done. Tools drive it over HTTP without auth: GET /_fake/ledger, GET and PUT
/_fake/faults, POST /_fake/reset, GET /_fake/requests?limit=N.

Credentials: each configured workspace with a site id and an API key
(CUSTOMERIO_SITE_ID / CUSTOMERIO_TRACK_API_KEY, or the config file); when none
is set, any credentials are accepted. SIGINT or SIGTERM stops it gracefully.`,
		Example: `  cioq fakecio --addr :8081 --rate 80
  CUSTOMERIO_TRACK_URL=http://127.0.0.1:8081 cioq worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return runFakecio(cmd, cfg, o)
		},
	}
	f := cmd.Flags()
	f.Float64Var(&o.rate, "rate", defaultFakeRate, "requests/s each workspace may make before 429 (0: no limit)")
	f.IntVar(&o.burst, "burst", 0, "token bucket size per workspace (0: max(1, rate))")
	f.BoolVar(&o.retryAfter, "retry-after", false, "send Retry-After on 429 (the real API sends none)")
	return cmd
}

func runFakecio(cmd *cobra.Command, cfg *config.Config, o fakecioOptions) error {
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
	logger.InfoContext(ctx, "fake track api listening", attrs...)
	if err := srv.ServeHandler(ctx, ln, fakecioHandler(srv)); err != nil {
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

// fakecioHandler serves the fake Track API plus, like every cioq server
// command, /healthz, /readyz and /metrics (Go and process metrics; the
// fake's counters are its ledger at /_fake/ledger).
func fakecioHandler(srv *fake.Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ok := func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"status":"ok"}` + "\n"))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", srv.Handler())
	return mux
}
