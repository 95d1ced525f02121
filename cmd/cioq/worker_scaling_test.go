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
