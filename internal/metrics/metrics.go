package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names. docs/metrics.md documents each one.
const (
	NameOps              = "cioq_ops_total"
	NameRequests         = "cioq_requests_total"
	NameRequestDuration  = "cioq_request_duration_seconds"
	NameBatchSize        = "cioq_batch_ops"
	NameBatchBytes       = "cioq_batch_bytes"
	NameLimiterDelays    = "cioq_limiter_delays_total"
	NameCoolDowns        = "cioq_rate_limit_cooldowns_total"
	NameRateEffective    = "cioq_rate_effective"
	NameRateBudget       = "cioq_rate_budget"
	NameBreakerState     = "cioq_breaker_state"
	NameDedupeSkips      = "cioq_dedupe_skips_total"
	NameTombstoneDrops   = "cioq_tombstone_drops_total"
	NameDeadLetters      = "cioq_dead_letters_total"
	NameDeadLetterDepth  = "cioq_dead_letter_depth"
	NameWorkspacePaused  = "cioq_workspace_unauthorized"
	NameInFlightOps      = "cioq_inflight_ops"
	NameEndToEndLatency  = "cioq_delivery_latency_seconds"
	NameQueueDepth       = "cioq_queue_depth"
	NameQueueLatency     = "cioq_queue_latency_seconds"
	NameEnqueued         = "cioq_producer_enqueued_total"
	NameEnqueueDuration  = "cioq_producer_enqueue_duration_seconds"
	NameDesiredReplicas  = "cioq_desired_replicas"
	NameQueueExporter    = "cioq_queue_exporter"
	NameDeferred         = "cioq_deferred_total"
	NameUnknownWorkspace = "cioq_unknown_workspace_total"
	NameSpoolOps         = "cioq_producer_spool_ops"
	NameSpoolBytes       = "cioq_producer_spool_bytes"
	NameSpoolReplayed    = "cioq_producer_spool_replayed_total"
	NameSpoolDropped     = "cioq_producer_spool_dropped_total"
	NameSpoolRejected    = "cioq_producer_spool_rejected_total"
)

// Outcome label values of cioq_ops_total.
const (
	OutcomeDelivered  = "delivered"   // accepted by Customer.io
	OutcomeSkipped    = "skipped"     // a done-marker existed: already delivered
	OutcomeDropped    = "dropped"     // older than a delete/suppress for the same person
	OutcomeDeadLetter = "dead_letter" // rejected permanently, kept in the dead-letter store
	OutcomeRetry      = "retry"       // failed, will be retried (counts against the retry budget)
	OutcomeDeferred   = "deferred"    // sent back without a failure (rate limit, breaker, claim, pause)
)

// Worker holds the worker's metrics.
type Worker struct {
	Ops             *prometheus.CounterVec   // workspace, api, action, outcome
	Requests        *prometheus.CounterVec   // workspace, api, status ("200", "429", "error" for transport)
	RequestDuration *prometheus.HistogramVec // workspace
	BatchSize       *prometheus.HistogramVec // workspace, lane
	BatchBytes      *prometheus.HistogramVec // workspace
	LimiterDelays   *prometheus.CounterVec   // workspace, lane
	CoolDowns       *prometheus.CounterVec   // workspace
	RateEffective   *prometheus.GaugeVec     // workspace: the adaptive rate, req/s
	RateBudget      *prometheus.GaugeVec     // workspace: the configured rate, req/s
	BreakerState    *prometheus.GaugeVec     // workspace, api (0 closed, 1 half-open, 2 open)
	DedupeSkips     *prometheus.CounterVec   // workspace
	TombstoneDrops  *prometheus.CounterVec   // workspace
	DeadLetters     *prometheus.CounterVec   // workspace, reason class
	DeadLetterDepth *prometheus.GaugeVec     // workspace: ops held in the dead-letter store
	Unauthorized    *prometheus.GaugeVec     // workspace, api (1 while paused for 401/403)
	InFlight        *prometheus.GaugeVec     // workspace
	Deferred        *prometheus.CounterVec   // workspace, reason
	Latency         *prometheus.HistogramVec // workspace, lane: enqueue → accepted
	Unknown         prometheus.Counter
}

// NewWorker creates the worker metrics and registers them on reg (nil: not
// registered, still usable).
func NewWorker(reg prometheus.Registerer) *Worker {
	m := &Worker{
		Ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameOps,
			Help: "Operations handled by the worker, by workspace, API (track or pipelines), action and outcome."},
			[]string{"workspace", "api", "action", "outcome"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameRequests,
			Help: "HTTP requests to Customer.io, by workspace, API (track or pipelines) and status (\"error\" when no answer)."},
			[]string{"workspace", "api", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameRequestDuration,
			Help:    "Duration of Track API requests.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
			[]string{"workspace"}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameBatchSize,
			Help:    "Operations per v2 batch request.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000}},
			[]string{"workspace", "lane"}),
		BatchBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameBatchBytes,
			Help:    "Body size of v2 batch requests in bytes.",
			Buckets: prometheus.ExponentialBuckets(512, 2, 11)},
			[]string{"workspace"}),
		LimiterDelays: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameLimiterDelays,
			Help: "Batches whose ops were sent back because no rate token came in time."},
			[]string{"workspace", "lane"}),
		CoolDowns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameCoolDowns,
			Help: "429 answers from the Track API; each feeds the workspace's adaptive rate."},
			[]string{"workspace"}),
		RateEffective: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameRateEffective,
			Help: "Effective request rate (req/s) the fleet sends at, shared by every replica: the budget, or less after 429s."},
			[]string{"workspace"}),
		RateBudget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameRateBudget,
			Help: "Configured request budget (req/s, CIOQ_RATE_LIMIT): the ceiling of the effective rate."},
			[]string{"workspace"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameBreakerState,
			Help: "Circuit breaker state per workspace and API: 0 closed, 1 half-open, 2 open."},
			[]string{"workspace", "api"}),
		DedupeSkips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameDedupeSkips,
			Help: "Operations skipped because a done-marker showed them delivered."},
			[]string{"workspace"}),
		TombstoneDrops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameTombstoneDrops,
			Help: "Operations dropped because a newer delete/suppress exists for the person."},
			[]string{"workspace"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameDeadLetters,
			Help: "Operations dead-lettered, by workspace and reason class."},
			[]string{"workspace", "reason"}),
		DeadLetterDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameDeadLetterDepth,
			Help: "Ops held in the dead-letter store per workspace (bounded by dlq.max_entries; the oldest are trimmed beyond it)."},
			[]string{"workspace"}),
		Unauthorized: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameWorkspacePaused,
			Help: "1 while a workspace's sends to an API are paused because Customer.io answered 401/403."},
			[]string{"workspace", "api"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameInFlightOps,
			Help: "Operations held by this worker's batchers (waiting or being sent)."},
			[]string{"workspace"}),
		Deferred: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameDeferred,
			Help: "Operations sent back to the queue without counting a failure, by reason."},
			[]string{"workspace", "reason"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameEndToEndLatency,
			Help:    "Time from enqueue to acceptance by Customer.io.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}},
			[]string{"workspace", "lane"}),
		Unknown: prometheus.NewCounter(prometheus.CounterOpts{Name: NameUnknownWorkspace,
			Help: "Tasks naming a workspace this worker is not configured for."}),
	}
	if reg != nil {
		reg.MustRegister(m.Ops, m.Requests, m.RequestDuration, m.BatchSize, m.BatchBytes,
			m.LimiterDelays, m.CoolDowns, m.RateEffective, m.RateBudget, m.BreakerState, m.DedupeSkips, m.TombstoneDrops,
			m.DeadLetters, m.DeadLetterDepth, m.Unauthorized, m.InFlight, m.Deferred, m.Latency, m.Unknown)
	}
	return m
}

// Ingest metric names (cioq ingest, the Track-compatible HTTP endpoint).
const (
	NameIngestRequests        = "cioq_ingest_requests_total"
	NameIngestRequestDuration = "cioq_ingest_request_duration_seconds"
	NameIngestOps             = "cioq_ingest_ops_total"
	NameIngestInFlight        = "cioq_ingest_inflight_requests"
)

// Outcome label values of cioq_ingest_ops_total.
const (
	IngestQueued    = "queued"    // enqueued durably
	IngestDuplicate = "duplicate" // already queued under the same key: a no-op
	IngestRejected  = "rejected"  // invalid, reported to the client, not queued
	IngestFailed    = "failed"    // the queue did not take it (the client got 503)
)

// Ingest holds the ingest handler's metrics.
type Ingest struct {
	Requests        *prometheus.CounterVec   // path (route pattern), status
	RequestDuration *prometheus.HistogramVec // path
	Ops             *prometheus.CounterVec   // workspace, api, action, outcome
	InFlight        *prometheus.GaugeVec     // workspace
}

// NewIngest creates the ingest metrics and registers them on reg (nil: not
// registered, still usable).
func NewIngest(reg prometheus.Registerer) *Ingest {
	m := &Ingest{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameIngestRequests,
			Help: "Track and Pipelines API requests answered by ingest, by route pattern and status."},
			[]string{"path", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameIngestRequestDuration,
			Help:    "Time from request to answer in ingest (the answer comes once every op is durable).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}},
			[]string{"path"}),
		Ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameIngestOps,
			Help: "Operations received by ingest, by workspace, API (track or pipelines), action and outcome."},
			[]string{"workspace", "api", "action", "outcome"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: NameIngestInFlight,
			Help: "Requests ingest is handling, by workspace."},
			[]string{"workspace"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.RequestDuration, m.Ops, m.InFlight)
	}
	return m
}

// Producer holds the producer's spool metrics.
type Producer struct {
	SpoolOps      prometheus.Gauge   // ops in the spool, not yet replayed
	SpoolBytes    prometheus.Gauge   // bytes of spool files on disk
	SpoolReplayed prometheus.Counter // ops replayed from the spool into Redis
	SpoolDropped  prometheus.Counter // spooled ops found corrupt and skipped
	SpoolRejected prometheus.Counter // enqueues refused because the spool was full
	// Enqueued counts Enqueue calls by workspace and outcome: queued,
	// duplicate, spooled, invalid, failed.
	Enqueued *prometheus.CounterVec
	// EnqueueDuration is how long Enqueue took (invalid ops excluded).
	EnqueueDuration prometheus.Histogram
}

// NewProducer creates the producer metrics and registers them on reg (nil:
// not registered, still usable). Unlike NewWorker it returns the
// registration error instead of panicking (a library must not panic in its
// caller's process), and registers all or none.
func NewProducer(reg prometheus.Registerer) (*Producer, error) {
	m := &Producer{
		SpoolOps: prometheus.NewGauge(prometheus.GaugeOpts{Name: NameSpoolOps,
			Help: "Operations in the producer's on-disk spool, waiting to be replayed into Redis."}),
		SpoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: NameSpoolBytes,
			Help: "Size of the producer's spool files on disk in bytes."}),
		SpoolReplayed: prometheus.NewCounter(prometheus.CounterOpts{Name: NameSpoolReplayed,
			Help: "Operations replayed from the producer's spool into Redis."}),
		SpoolDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: NameSpoolDropped,
			Help: "Spooled operations found corrupt on disk and skipped."}),
		SpoolRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: NameSpoolRejected,
			Help: "Enqueues refused because Redis was unavailable and the spool was full."}),
		Enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameEnqueued,
			Help: "Producer Enqueue calls by workspace and outcome (queued, duplicate, spooled, invalid, failed)."},
			[]string{"workspace", "outcome"}),
		EnqueueDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: NameEnqueueDuration,
			Help:    "Time one producer Enqueue took, invalid ops excluded.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 5}}),
	}
	if err := m.Register(reg); err != nil {
		return nil, err
	}
	return m, nil
}

// Register registers the metrics on reg (nil: nothing), all or none.
func (m *Producer) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{m.SpoolOps, m.SpoolBytes, m.SpoolReplayed, m.SpoolDropped, m.SpoolRejected,
		m.Enqueued, m.EnqueueDuration}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}
