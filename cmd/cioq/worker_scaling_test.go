package main

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/redistest"
)

func TestStartQueueMetrics(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{KeyPrefix: "scaling-test:", Workspaces: []config.Workspace{{Name: "a", RateLimit: 10}}}
	logger := slog.New(slog.DiscardHandler)
	names := func(t *testing.T, reg *prometheus.Registry) map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if len(m.GetLabel()) == 0 {
					out[mf.GetName()] = m.GetGauge().GetValue()
				}
			}
		}
		return out
	}

	t.Run("LeaseExportsFromOneReplicaAndReleasesOnStop", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		flags := scalingFlags{queueMetrics: queueMetricsLease, drainTime: metrics.DefaultDrainTime, leaseTTL: metrics.DefaultLeaseTTL}
		regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
		stopA, err := startQueueMetrics(cfg, db.Client, regA, logger, flags)
		require.NoError(t, err)
		stopB, err := startQueueMetrics(cfg, db.Client, regB, logger, flags)
		require.NoError(t, err)
		defer stopB()

		require.Equal(t, map[string]float64{metrics.NameQueueExporter: 1, metrics.NameDesiredReplicas: 1}, names(t, regA))
		require.Equal(t, map[string]float64{metrics.NameQueueExporter: 0}, names(t, regB))
		stopA()
		require.Equal(t, 1.0, names(t, regB)[metrics.NameQueueExporter])
	})
	// On a fresh Redis no queue exists until a task is enqueued; the first
	// scrape still shows every configured lane at 0, so an HPA on the
	// depth has its metric from the start.
	t.Run("FreshRedisFirstScrapeShowsEveryLaneAtZero", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		two := &config.Config{KeyPrefix: "scaling-fresh:", Workspaces: []config.Workspace{{Name: "default"}, {Name: "eu"}}}
		reg := prometheus.NewRegistry()
		stop, err := startQueueMetrics(two, db.Client, reg, logger,
			scalingFlags{queueMetrics: queueMetricsLease, drainTime: metrics.DefaultDrainTime, leaseTTL: metrics.DefaultLeaseTTL})
		require.NoError(t, err)
		defer stop()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		depth, latency := map[string]float64{}, map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				switch mf.GetName() {
				case metrics.NameQueueDepth:
					depth[labels["queue"]+"/"+labels["state"]] = m.GetGauge().GetValue()
				case metrics.NameQueueLatency:
					latency[labels["queue"]] = m.GetGauge().GetValue()
				}
			}
		}
		lanes := []string{"critical", "default", "bulk", "critical.eu", "default.eu", "bulk.eu"}
		wantLatency := map[string]float64{}
		wantDepth := map[string]float64{}
		for _, q := range lanes {
			wantLatency[q] = 0
			for _, st := range []string{metrics.StatePending, metrics.StateActive, metrics.StateScheduled, metrics.StateRetry,
				metrics.StateArchived, metrics.StateAggregating, metrics.StateCompleted} {
				wantDepth[q+"/"+st] = 0
			}
		}
		require.Equal(t, wantDepth, depth)
		require.Equal(t, wantLatency, latency)
	})
	t.Run("OffRegistersNothing", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		stop, err := startQueueMetrics(cfg, nil, reg, logger, scalingFlags{queueMetrics: queueMetricsOff})
		require.NoError(t, err)
		stop()
		require.Empty(t, names(t, reg))
	})
	t.Run("UnknownModeIsAnError", func(t *testing.T) {
		t.Parallel()
		_, err := startQueueMetrics(cfg, nil, prometheus.NewRegistry(), logger, scalingFlags{queueMetrics: "sometimes"})
		require.ErrorContains(t, err, `--queue-metrics "sometimes"`)
	})
}
