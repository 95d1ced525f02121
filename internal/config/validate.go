package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/track"
)

// ErrInvalid matches (errors.Is) every *ValidationError.
var ErrInvalid = errors.New("config: invalid")

// ValidationError lists every problem found in a configuration at once. No
// problem ever quotes a secret.
type ValidationError struct {
	// Problems are one human-readable line each, naming the setting (and the
	// env var to set where that helps).
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "config: " + e.Problems[0]
	}
	return fmt.Sprintf("config: %d problems:\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// problems collects validation messages.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

var workspaceNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate checks c after defaults (it validates c.WithDefaults(), so zero
// fields are fine) and returns every problem at once as a *ValidationError,
// including missing workspace credentials. It returns nil when c is usable.
func (c *Config) Validate() error { return c.validate(true) }

// ValidateWithoutCredentials is Validate for commands that never call
// Customer.io (fakecio, dlq, load): missing site ids and API keys are not
// problems there.
func (c *Config) ValidateWithoutCredentials() error { return c.validate(false) }

func (c *Config) validate(requireCredentials bool) error {
	var p problems
	c.WithDefaults().check(&p, requireCredentials)
	return p.err()
}

func (c *Config) check(p *problems, requireCredentials bool) {
	if _, err := c.Redis.ConnOpt(); err != nil {
		p.addf("%s (set --redis, CIOQ_REDIS_URL, REDIS_URL or REDIS_ADDR)", strings.TrimPrefix(err.Error(), "config: "))
	}
	if strings.ContainsAny(c.KeyPrefix, "{} \t\n") {
		p.addf("key_prefix %q: must not contain braces or spaces (cioq adds a {workspace} hash tag itself)", c.KeyPrefix)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		p.addf("http_addr %q: want host:port or :port (set --addr or CIOQ_HTTP_ADDR)", c.HTTPAddr)
	}
	c.checkWorkspaces(p, requireCredentials)

	w := c.Worker
	notNegative(p, "worker.concurrency", w.Concurrency)
	notNegative(p, "worker.default_servers", w.DefaultServers)
	notNegative(p, "worker.critical_concurrency", w.CriticalConcurrency)
	notNegative(p, "worker.max_retry", w.MaxRetry)
	notNegative(p, "worker.retry_base", w.RetryBase)
	notNegative(p, "worker.retry_cap", w.RetryCap)
	notNegative(p, "worker.shutdown_timeout", w.ShutdownTimeout)
	notNegative(p, "worker.request_timeout", w.RequestTimeout)
	notNegative(p, "worker.unauthorized_pause", w.UnauthorizedPause)
	if (c.Monitoring.Username == "") != (c.Monitoring.Password == "") {
		p.addf("monitoring: set both username and password (CIOQ_MONITORING_USERNAME, CIOQ_MONITORING_PASSWORD) or neither")
	}
	if a := c.Monitoring.AdminAddr; a != "" {
		if host, _, err := net.SplitHostPort(a); err != nil {
			p.addf("monitoring.admin_addr %q: want host:port (CIOQ_ADMIN_ADDR)", a)
		} else if !c.Monitoring.HasCredentials() && !IsLoopbackHost(host) {
			p.addf("monitoring.admin_addr %q: without monitoring credentials the admin listener must be on loopback (127.0.0.1:PORT); set CIOQ_MONITORING_USERNAME and CIOQ_MONITORING_PASSWORD to serve it elsewhere", a)
		}
	}
	if w.RetryBase > 0 && w.RetryCap > 0 && w.RetryBase > w.RetryCap {
		p.addf("worker.retry_base %s is above worker.retry_cap %s", w.RetryBase, w.RetryCap)
	}
	checkBatch(p, "batch", c.Batch)

	i := c.Idempotency
	notNegative(p, "idempotency.done_ttl", i.DoneTTL)
	notNegative(p, "idempotency.claim_ttl", i.ClaimTTL)
	notNegative(p, "idempotency.tombstone_ttl", i.TombstoneTTL)
	if i.ClaimTTL > 0 && w.RequestTimeout > 0 && i.ClaimTTL <= w.RequestTimeout {
		p.addf("idempotency.claim_ttl %s must exceed worker.request_timeout %s (a claim must outlive the request it guards)", i.ClaimTTL, w.RequestTimeout)
	}

	notNegative(p, "breaker.open_timeout", c.Breaker.OpenTimeout)
	notNegative(p, "dlq.max_entries", c.DLQ.MaxEntries)

	if _, err := parseLevel(c.Log.Level); err != nil {
		p.addf("log.level %q: want debug, info, warn or error (--log-level, CIOQ_LOG_LEVEL)", c.Log.Level)
	}
	if f := c.Log.Format; f != LogFormatText && f != LogFormatJSON {
		p.addf("log.format %q: want text or json (--log-format, CIOQ_LOG_FORMAT)", f)
	}
}

func (c *Config) checkWorkspaces(p *problems, requireCredentials bool) {
	if len(c.Workspaces) == 0 {
		p.addf("no workspace: list workspaces in the config file, or set CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY")
		return
	}
	seen := map[string]bool{}
	cdpKeys := map[Secret]string{} // Pipelines API key -> workspace: ingest finds the workspace by its key
	for i, ws := range c.Workspaces {
		where := fmt.Sprintf("workspaces[%d] %q", i, ws.Name)
		siteHint, keyHint := "set workspaces[].site_id", "set workspaces[].api_key or api_key_env"
		if c.EnvWorkspace {
			where = fmt.Sprintf("workspace %q", ws.Name)
			siteHint, keyHint = "set CUSTOMERIO_SITE_ID", "set CUSTOMERIO_TRACK_API_KEY"
		}
		if !workspaceNameRE.MatchString(ws.Name) {
			p.addf("%s: name must be 1-64 of [A-Za-z0-9_.-]", where)
		} else if seen[ws.Name] {
			p.addf("%s: name used twice", where)
		}
		seen[ws.Name] = true
		if requireCredentials {
			if strings.TrimSpace(ws.SiteID) == "" {
				p.addf("%s: site id is missing: %s", where, siteHint)
			}
			if ws.APIKey == "" {
				if ws.APIKeyEnv != "" {
					p.addf("%s: API key is missing: env var %s (named by api_key_env) is not set", where, ws.APIKeyEnv)
				} else {
					p.addf("%s: API key is missing: %s", where, keyHint)
				}
			}
		}
		knownRegion := ws.Region == string(track.RegionUS) || ws.Region == string(track.RegionEU)
		if !knownRegion {
			p.addf("%s: region %q: want us or eu (CUSTOMERIO_REGION)", where, ws.Region)
		}
		if ws.TrackURL == "" && !knownRegion {
			// No URL because the region is unknown: reported above.
		} else if u, err := url.Parse(ws.TrackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			p.addf("%s: track_url %s: want an http(s) base URL without credentials (CUSTOMERIO_TRACK_URL)", where, RedactURL(ws.TrackURL))
		}
		if ws.CDPAPIKey != "" {
			if other, dup := cdpKeys[ws.CDPAPIKey]; dup {
				p.addf("%s: cdp_api_key is also the key of workspace %q: each workspace needs its own Pipelines API key", where, other)
			}
			cdpKeys[ws.CDPAPIKey] = ws.Name
		} else if ws.CDPAPIKeyEnv != "" && requireCredentials {
			p.addf("%s: Pipelines API key is missing: env var %s (named by cdp_api_key_env) is not set", where, ws.CDPAPIKeyEnv)
		}
		if ws.CDPURL == "" && !knownRegion {
			// No URL because the region is unknown: reported above.
		} else if u, err := url.Parse(ws.CDPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			p.addf("%s: cdp_url %s: want an http(s) base URL without credentials (CUSTOMERIO_CDP_URL)", where, RedactURL(ws.CDPURL))
		}
		if ws.CDPRateLimit < 0 {
			p.addf("%s: cdp_rate_limit %g: must be >= 0 requests/s (CIOQ_CDP_RATE_LIMIT; 0: share rate_limit)", where, ws.CDPRateLimit)
		}
		if ws.RateLimit <= 0 {
			p.addf("%s: rate_limit %g: must be > 0 requests/s (CIOQ_RATE_LIMIT)", where, ws.RateLimit)
		}
		if ws.RateBurst < 0 {
			p.addf("%s: rate_burst %d: must be >= 0 (CIOQ_RATE_BURST)", where, ws.RateBurst)
		}
		if ws.CriticalShare <= 0 || ws.CriticalShare >= 1 {
			p.addf("%s: critical_share %g: must be between 0 and 1 exclusive", where, ws.CriticalShare)
		}
		if ws.Batch != nil && *ws.Batch != c.Batch { // the global batch is checked once, below
			checkBatch(p, where+": batch", *ws.Batch)
		}
	}
}

// checkBatch checks a batch policy. Its byte bound is cdp.MaxBatchBytes,
// the one the worker enforces: Customer.io documents "500 KB" for a batch of
// either API and cioq takes the smaller reading, 500,000 bytes.
func checkBatch(p *problems, where string, b Batch) {
	notNegative(p, where+".max_ops", b.MaxOps)
	notNegative(p, where+".max_bytes", b.MaxBytes)
	if b.MaxBytes >= cdp.MaxBatchBytes {
		p.addf("%s.max_bytes %d: must be below %d (Customer.io rejects a v2 batch of 500 KB)", where, b.MaxBytes, cdp.MaxBatchBytes)
	}
	notNegative(p, where+".max_wait", b.MaxWait)
}

// notNegative reports a negative setting; zero means the default.
func notNegative[T int | time.Duration](p *problems, name string, v T) {
	if v < 0 {
		p.addf("%s %v: must be > 0", name, v)
	}
}

// IsLoopbackHost reports whether host (of a listen address) is a loopback
// name or address: localhost, 127.0.0.0/8 or ::1. An empty host (":9091",
// every interface) is not.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
