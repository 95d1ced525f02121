package main

import (
	"cmp"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/worker"
)

// setting ties a field of the configuration to the field of a component's
// Config that it sets.
type setting struct {
	apply func() // copy the configuration into the component's field
	fill  func() // a zero configuration field takes the component's value
}

func pair[T comparable](cfg, comp *T) setting {
	return setting{
		apply: func() { *comp = *cfg },
		fill: func() {
			var zero T
			if *cfg == zero {
				*cfg = *comp
			}
		},
	}
}

// workerSettings is the one mapping between the configuration's worker-owned
// settings and the worker's (and, for max_retry, the producer's) Config
// fields: workerConfig applies it, componentDefaults fills from it.
// internal/config may not import worker, so the mapping lives here.
func workerSettings(c *config.Config, w *worker.Config, p *producer.Config) []setting {
	return []setting{
		pair(&c.Worker.Concurrency, &w.Concurrency),
		pair(&c.Worker.DefaultServers, &w.Servers),
		pair(&c.Worker.CriticalConcurrency, &w.CriticalConcurrency),
		pair(&c.Worker.MaxRetry, &p.MaxRetry),
		pair(&c.Worker.RetryBase, &w.Retry.Base),
		pair(&c.Worker.RetryCap, &w.Retry.Cap),
		pair(&c.Worker.ShutdownTimeout, &w.ShutdownTimeout),
		pair(&c.Worker.RequestTimeout, &w.RequestTimeout),
		pair(&c.Worker.UnauthorizedPause, &w.UnauthorizedPause),
		pair(&c.Idempotency.DoneTTL, &w.DoneTTL),
		pair(&c.Idempotency.ClaimTTL, &w.ClaimTTL),
		pair(&c.Idempotency.TombstoneTTL, &w.TombstoneTTL),
		pair(&c.Breaker.Failures, &w.BreakerFailures),
		pair(&c.Breaker.Successes, &w.BreakerSuccesses),
		pair(&c.Breaker.OpenTimeout, &w.BreakerTimeout),
		pair(&c.DLQ.MaxEntries, &w.DeadLetterMax),
	}
}

// batchSettings maps a batch policy of the configuration to the worker's.
func batchSettings(c *config.Batch, w *worker.BatchConfig) []setting {
	return []setting{pair(&c.MaxOps, &w.MaxOps), pair(&c.MaxBytes, &w.MaxBytes), pair(&c.MaxWait, &w.MaxWait)}
}

// componentDefaults is config.LoadOptions.Defaults: it fills the zero
// settings that worker and producer own with those packages' defaults, so
// validation and `cioq config check` see the effective values.
func componentDefaults(c *config.Config) {
	w, b := worker.Config{}.WithDefaults(), worker.BatchConfig{}.WithDefaults()
	p := producer.Config{MaxRetry: producer.DefaultMaxRetry}
	for _, s := range append(workerSettings(c, &w, &p), batchSettings(&c.Batch, &b)...) {
		s.fill()
	}
	c.Spool.MaxBytes = cmp.Or(c.Spool.MaxBytes, int(producer.DefaultSpoolMaxBytes))
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
	wc := worker.Config{Redis: conn, Client: rdb, KeyPrefix: cfg.KeyPrefix, Logger: logger, Registerer: reg}
	for _, s := range workerSettings(cfg, &wc, &producer.Config{}) {
		s.apply()
	}
	for _, ws := range cfg.Workspaces {
		w, err := workerWorkspace(cfg, ws, logger)
		if err != nil {
			_ = rdb.Close()
			return worker.Config{}, nil, fmt.Errorf("workspace %q: %w", ws.Name, err)
		}
		wc.Workspaces = append(wc.Workspaces, w)
	}
	return wc, func() { _ = rdb.Close() }, nil
}

// workerWorkspace builds a workspace's senders and maps its settings.
func workerWorkspace(cfg *config.Config, ws config.Workspace, logger *slog.Logger) (worker.Workspace, error) {
	region, err := track.ParseRegion(ws.Region)
	if err != nil {
		return worker.Workspace{}, err
	}
	client, err := track.NewClient(track.Config{
		SiteID: ws.SiteID, APIKey: ws.APIKey.Reveal(), Region: region, BaseURL: ws.TrackURL,
		Timeout: cfg.Worker.RequestTimeout, Logger: logger,
	})
	if err != nil {
		return worker.Workspace{}, err
	}
	w := worker.Workspace{
		Name: ws.Name, Sender: client, Weight: ws.Weight,
		Limit: ratelimit.Limit{Rate: ws.RateLimit, Burst: ws.RateBurst, CriticalShare: ws.CriticalShare},
	}
	b := cmp.Or(ws.Batch, &cfg.Batch)
	for _, s := range batchSettings(b, &w.Batch) {
		s.apply()
	}
	if ws.CDPAPIKey != "" {
		pl, err := cdp.NewClient(cdp.Config{APIKey: ws.CDPAPIKey.Reveal(), Region: region, BaseURL: ws.CDPURL,
			Timeout: cfg.Worker.RequestTimeout, Logger: logger})
		if err != nil {
			return worker.Workspace{}, fmt.Errorf("pipelines: %w", err)
		}
		w.Pipelines = pl
		if ws.CDPRateLimit > 0 {
			w.PipelinesLimit = ratelimit.Limit{Rate: ws.CDPRateLimit, CriticalShare: ws.CriticalShare}
		}
	}
	return w, nil
}
