package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/worker"
)

// Every setting the worker and producer own takes their default when unset,
// and `cioq config check` prints it: internal/config knows none of them.
func TestComponentDefaults_FillEveryWorkerSetting(t *testing.T) {
	t.Parallel()
	g := &globals{env: func(k string) (string, bool) { v, ok := credsEnv()[k]; return v, ok }}
	cfg, err := config.Load(g.loadOptions(false))
	require.NoError(t, err)
	wantWorker := config.Worker{
		Concurrency: worker.DefaultConcurrency, DefaultServers: worker.DefaultServers,
		CriticalConcurrency: worker.DefaultCriticalConcurrency, MaxRetry: producer.DefaultMaxRetry,
		RetryBase: worker.DefaultRetryBase, RetryCap: worker.DefaultRetryCap,
		ShutdownTimeout: worker.DefaultShutdownTimeout, RequestTimeout: worker.DefaultRequestTimeout,
		UnauthorizedPause: worker.DefaultUnauthorizedPause,
	}
	if diff := cmp.Diff(wantWorker, cfg.Worker); diff != "" {
		t.Fatalf("worker (-want +got):\n%s", diff)
	}
	wantBatch := config.Batch{MaxOps: worker.DefaultBatchMaxOps, MaxBytes: worker.DefaultBatchMaxBytes, MaxWait: worker.DefaultBatchMaxWait}
	require.Equal(t, wantBatch, cfg.Batch)
	require.Equal(t, wantBatch, *cfg.Workspaces[0].Batch)
	require.Equal(t, worker.DefaultDeadLetterMax, cfg.DLQ.MaxEntries)
	require.EqualValues(t, producer.DefaultSpoolMaxBytes, cfg.Spool.MaxBytes)
	require.Equal(t, idempotency.DefaultDoneTTL, cfg.Idempotency.DoneTTL)
	require.EqualValues(t, breaker.DefaultFailures, cfg.Breaker.Failures)

	r := run(t, credsEnv(), "config", "check")
	require.Equal(t, exitOK, r.code, r.stderr)
	for _, want := range []string{"concurrency: 1000", "default_servers: 2", "critical_concurrency: 50", "max_retry: 25",
		"retry_base: 1s", "retry_cap: 10m0s", "request_timeout: 10s", "max_ops: 500", "max_bytes: 460800", "max_wait: 50ms",
		"done_ttl: 24h0m0s", "claim_ttl: 30s", "tombstone_ttl: 168h0m0s", "failures: 5", "successes: 3", "open_timeout: 30s",
		"max_entries: 100000", "rate_limit: 80", "critical_share: 0.2"} {
		require.Contains(t, r.stdout, want)
	}
}

// Checks between settings see the components' defaults.
func TestComponentDefaults_CrossChecksSeeDefaults(t *testing.T) {
	t.Parallel()
	r := run(t, credsEnv("CIOQ_WORKER_RETRY_BASE", "20m"), "config", "check")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "worker.retry_base 20m0s is above worker.retry_cap 10m0s")

	r = run(t, credsEnv("CIOQ_WORKER_REQUEST_TIMEOUT", "45s"), "config", "check")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "idempotency.claim_ttl 30s must exceed worker.request_timeout 45s")
}

// workerConfig applies every setting; the worker gets what the file says.
func TestWorkerConfig_AppliesSettings(t *testing.T) {
	t.Parallel()
	env := credsEnv("CIOQ_WORKER_CONCURRENCY", "7", "CIOQ_WORKER_RETRY_CAP", "5m", "CIOQ_BREAKER_OPEN_TIMEOUT", "9s",
		"CIOQ_IDEMPOTENCY_CLAIM_TTL", "40s", "CIOQ_BATCH_MAX_OPS", "12", "CIOQ_DLQ_MAX_ENTRIES", "3")
	g := &globals{env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	cfg, err := config.Load(g.loadOptions(false))
	require.NoError(t, err)
	wc, closeRedis, err := workerConfig(cfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(closeRedis)
	require.Equal(t, 7, wc.Concurrency)
	require.Equal(t, worker.DefaultServers, wc.Servers)
	require.Equal(t, 5*time.Minute, wc.Retry.Cap)
	require.Equal(t, 9*time.Second, wc.BreakerTimeout)
	require.Equal(t, 40*time.Second, wc.ClaimTTL)
	require.Equal(t, 3, wc.DeadLetterMax)
	require.Equal(t, 12, wc.Workspaces[0].Batch.MaxOps)
	require.Equal(t, worker.DefaultBatchMaxWait, wc.Workspaces[0].Batch.MaxWait)
}
