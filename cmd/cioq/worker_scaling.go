package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/worker"
)

// Values of the worker's --queue-metrics flag.
const (
	queueMetricsLease  = "lease"  // one replica exports (Redis lease)
	queueMetricsAlways = "always" // this replica exports, lease or not
	queueMetricsOff    = "off"    // this replica never exports
)

// scalingFlags are the worker flags of the queue gauges and
// cioq_desired_replicas (docs/scaling.md).
type scalingFlags struct {
	queueMetrics  string
	drainTime     time.Duration
	podThroughput float64
	leaseTTL      time.Duration
}

func (s *scalingFlags) register(f *pflag.FlagSet) {
	f.StringVar(&s.queueMetrics, "queue-metrics", queueMetricsLease,
		"who exports cioq_queue_depth, cioq_queue_latency_seconds and cioq_desired_replicas: lease (one replica), always, off")
	f.DurationVar(&s.drainTime, "scaling-drain-time", metrics.DefaultDrainTime,
		"cioq_desired_replicas: drain the backlog within this time")
	f.Float64Var(&s.podThroughput, "scaling-pod-throughput", 0,
		fmt.Sprintf("cioq_desired_replicas: ops/s one pod delivers (0: measured, %.0f until measured)", metrics.DefaultPodThroughput))
	f.DurationVar(&s.leaseTTL, "queue-metrics-lease", metrics.DefaultLeaseTTL,
		"lifetime of the exporter lease without a scrape; keep it above the scrape interval")
}

// startQueueMetrics registers the queue collector on reg; stop releases the
// exporter lease so another replica takes over at its next scrape.
func startQueueMetrics(cfg *config.Config, rdb redis.UniversalClient, reg prometheus.Registerer, logger *slog.Logger, s scalingFlags) (stop func(), err error) {
	switch s.queueMetrics {
	case queueMetricsOff:
		return func() {}, nil
	case queueMetricsLease, queueMetricsAlways:
	default:
		return nil, fmt.Errorf("--queue-metrics %q: want lease, always or off", s.queueMetrics)
	}
	rc := metrics.ReplicasConfig{DrainTime: s.drainTime, PodThroughput: s.podThroughput}
	var lanes []string
	for _, ws := range cfg.Workspaces {
		critical, def := task.Lanes(ws.Name)
		lanes = append(lanes, critical, def, task.BulkQueue(ws.Name))
		b := cfg.Batch
		if ws.Batch != nil {
			b = *ws.Batch
		}
		rc.Budgets = append(rc.Budgets, metrics.Budget{Workspace: ws.Name,
			Rate:          cmp.Or(ws.RateLimit, ratelimit.DefaultRate),
			OpsPerRequest: float64(cmp.Or(b.MaxOps, worker.DefaultBatchMaxOps))})
	}
	qc, err := metrics.NewQueueCollector(metrics.QueueConfig{
		Inspector: asynq.NewInspectorFromRedisClient(rdb), Redis: rdb, KeyPrefix: cfg.KeyPrefix,
		LeaseTTL: s.leaseTTL, Force: s.queueMetrics == queueMetricsAlways, Replicas: rc, Logger: logger,
		Lanes: lanes,
	})
	if err != nil {
		return nil, err
	}
	if err := reg.Register(qc); err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := qc.Release(ctx); err != nil {
			logger.Warn("queue metrics lease not released", "error", err.Error())
		}
	}, nil
}
