package metrics

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Defaults of QueueConfig.
const (
	// DefaultLeaseKey follows the key prefix: the Redis key whose holder
	// exports the queue series.
	DefaultLeaseKey = "metrics:queue-exporter"
	// DefaultLeaseTTL is how long a lease lives without a scrape renewing
	// it: 60 s, above any usual scrape interval (15–30 s).
	DefaultLeaseTTL = 60 * time.Second
	// DefaultScrapeTimeout bounds the Redis work of one scrape: 5 s.
	DefaultScrapeTimeout = 5 * time.Second
	// DefaultSaturationBacklog is the pending tasks, at both ends of a
	// scrape interval, from which the fleet counts as saturated and its
	// processed rate as its throughput: 1000.
	DefaultSaturationBacklog = 1000
	// defaultKeyPrefix mirrors config.DefaultKeyPrefix (metrics does not
	// import config).
	defaultKeyPrefix = "cioq:"
)

// Queue states of cioq_queue_depth, as asynq names them.
const (
	StatePending     = "pending"
	StateActive      = "active"
	StateScheduled   = "scheduled"
	StateRetry       = "retry"
	StateArchived    = "archived"
	StateAggregating = "aggregating"
	StateCompleted   = "completed"
)

// Inspector is the part of *asynq.Inspector the collector reads.
type Inspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
	Servers() ([]*asynq.ServerInfo, error)
}

// QueueConfig configures a QueueCollector.
type QueueConfig struct {
	// Inspector reads the queues (asynq.NewInspectorFromRedisClient).
	// Required.
	Inspector Inspector
	// Redis holds the exporter lease. Required unless Force is set.
	Redis redis.Scripter
	// KeyPrefix starts the lease key. Empty means "cioq:".
	KeyPrefix string
	// LeaseKey is the lease key after KeyPrefix. Empty means
	// DefaultLeaseKey.
	LeaseKey string
	// LeaseTTL is how long the lease lives without a renewing scrape. Zero
	// means DefaultLeaseTTL (60s). Keep it above the scrape interval.
	LeaseTTL time.Duration
	// Instance names this replica in the lease. Empty means host name,
	// process id and a random suffix.
	Instance string
	// Force exports the queue series on every scrape without the lease:
	// for a single exporter (one worker, or a dedicated metrics pod).
	Force bool
	// Queues limits the queues exported. Empty means every queue asynq
	// knows (Inspector.Queues) plus Lanes.
	Queues []string
	// Lanes are queues exported from the first scrape, at 0 until asynq
	// knows them (a queue exists in Redis only once a task was enqueued),
	// so an autoscaler on cioq_queue_depth has a series on a fresh Redis:
	// the worker passes every configured lane (critical, default, bulk of
	// each workspace). Used when Queues is empty.
	Lanes []string
	// Replicas sets the cioq_desired_replicas formula.
	Replicas ReplicasConfig
	// SaturationBacklog is the pending tasks from which a throughput
	// measurement is taken. Zero means DefaultSaturationBacklog (1000).
	SaturationBacklog int
	// ScrapeTimeout bounds the Redis work of one scrape. Zero means
	// DefaultScrapeTimeout (5s).
	ScrapeTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger gets lease changes and scrape errors. Nil discards.
	Logger *slog.Logger
}

func (c QueueConfig) withDefaults() QueueConfig {
	c.KeyPrefix = cmp.Or(c.KeyPrefix, defaultKeyPrefix)
	c.LeaseKey = cmp.Or(c.LeaseKey, DefaultLeaseKey)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, DefaultLeaseTTL)
	c.SaturationBacklog = cmp.Or(c.SaturationBacklog, DefaultSaturationBacklog)
	c.ScrapeTimeout = cmp.Or(c.ScrapeTimeout, DefaultScrapeTimeout)
	if c.Instance == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Instance = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Replicas = c.Replicas.WithDefaults()
	return c
}

func (c QueueConfig) validate() error {
	var errs []error
	if c.Inspector == nil {
		errs = append(errs, errors.New("metrics: queue collector needs an Inspector"))
	}
	if c.Redis == nil && !c.Force {
		errs = append(errs, errors.New("metrics: queue collector needs Redis for its lease (or Force)"))
	}
	if c.LeaseTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("metrics: lease TTL %s is below 1ms", c.LeaseTTL))
	}
	if err := c.Replicas.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// leaseScript takes the lease when it is free (SET NX PX) or renews it when
// this instance holds it; 1 means this instance holds it now.
var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)

// releaseScript deletes the lease only if this instance holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// QueueCollector is a prometheus.Collector that reads asynq's queues on
// every scrape and exports cioq_queue_depth, cioq_queue_latency_seconds and
// cioq_desired_replicas from exactly one replica: the holder of a Redis
// lease, taken with SET NX PX and renewed by each scrape. Every replica
// exports cioq_queue_exporter (1 on the holder, 0 elsewhere).
type QueueCollector struct {
	cfg      QueueConfig
	key      string
	depth    *prometheus.Desc
	latency  *prometheus.Desc
	desired  *prometheus.Desc
	exporter *prometheus.Desc

	mu       sync.Mutex // serializes scrapes and guards the fields below
	leader   bool
	prev     QueueSample
	havePrev bool
	// prevPending is the pending count of prev.
	prevPending float64
	measured    float64 // per-pod ops/s; 0 until measured
}

// NewQueueCollector returns a collector for cfg; register it on the
// worker's registry.
func NewQueueCollector(cfg QueueConfig) (*QueueCollector, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &QueueCollector{
		cfg: cfg,
		key: cfg.KeyPrefix + cfg.LeaseKey,
		depth: prometheus.NewDesc(NameQueueDepth,
			"Tasks per asynq queue and state, exported by one replica only (the lease holder).",
			[]string{"queue", "state"}, nil),
		latency: prometheus.NewDesc(NameQueueLatency,
			"Age of the oldest pending task per queue, exported by one replica only.",
			[]string{"queue"}, nil),
		desired: prometheus.NewDesc(NameDesiredReplicas,
			"Worker pods needed to drain the backlog within the drain time, capped by the rate budgets (docs/scaling.md).",
			nil, nil),
		exporter: prometheus.NewDesc(NameQueueExporter,
			"1 on the replica that exports the queue series, 0 on the others.",
			nil, nil),
	}, nil
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.latency
	ch <- c.desired
	ch <- c.exporter
}

// Collect implements prometheus.Collector. On the lease holder it reads
// every queue; elsewhere it exports cioq_queue_exporter 0 and nothing else.
// Redis errors become invalid metrics (on the holder, or when the lease
// itself cannot be read).
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ScrapeTimeout)
	defer cancel()

	leader, err := c.acquire(ctx)
	if err != nil {
		c.cfg.Logger.WarnContext(ctx, "queue metrics lease failed", "error", err.Error())
		ch <- prometheus.NewInvalidMetric(c.exporter, fmt.Errorf("queue exporter lease: %w", err))
		return
	}
	if leader != c.leader {
		c.cfg.Logger.InfoContext(ctx, "queue metrics exporter changed", "exporter", leader, "instance", c.cfg.Instance)
		c.leader = leader
		c.havePrev = false // samples from an earlier term are stale
	}
	ch <- prometheus.MustNewConstMetric(c.exporter, prometheus.GaugeValue, b2f(leader))
	if !leader {
		return
	}
	if err := c.collectQueues(ctx, ch); err != nil {
		c.cfg.Logger.WarnContext(ctx, "queue metrics scrape failed", "error", err.Error())
		ch <- prometheus.NewInvalidMetric(c.depth, err)
	}
}

// acquire takes or renews the lease; Force always holds it.
func (c *QueueCollector) acquire(ctx context.Context) (bool, error) {
	if c.cfg.Force {
		return true, nil
	}
	n, err := leaseScript.Run(ctx, c.cfg.Redis, []string{c.key}, c.cfg.Instance, c.cfg.LeaseTTL.Milliseconds()).Int()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// Release gives the lease up if this replica holds it, so another replica
// takes over at its next scrape instead of after LeaseTTL. Call it on
// shutdown.
func (c *QueueCollector) Release(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader, c.havePrev = false, false
	if c.cfg.Force {
		return nil
	}
	if err := releaseScript.Run(ctx, c.cfg.Redis, []string{c.key}, c.cfg.Instance).Err(); err != nil {
		return fmt.Errorf("metrics: release queue exporter lease: %w", err)
	}
	return nil
}

func (c *QueueCollector) collectQueues(ctx context.Context, ch chan<- prometheus.Metric) error {
	// asynq knows a queue once a task was enqueued to it; GetQueueInfo
	// fails for any other, which is exported empty (asynq's error type for
	// that is internal, so the list decides).
	known, err := c.cfg.Inspector.Queues()
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	queues := c.cfg.Queues
	if len(queues) == 0 {
		queues = known
		for _, q := range c.cfg.Lanes {
			if !slices.Contains(known, q) {
				queues = append(queues, q)
			}
		}
	}
	now := c.cfg.Now()
	cur := QueueSample{At: now}
	var pending float64
	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return err
		}
		info := &asynq.QueueInfo{Queue: q} // configured but never used: empty
		if slices.Contains(known, q) {
			if info, err = c.cfg.Inspector.GetQueueInfo(q); err != nil {
				return fmt.Errorf("queue %s: %w", q, err)
			}
		}
		for _, s := range []struct {
			state string
			n     int
		}{
			{StatePending, info.Pending}, {StateActive, info.Active}, {StateScheduled, info.Scheduled},
			{StateRetry, info.Retry}, {StateArchived, info.Archived}, {StateAggregating, info.Aggregating},
			{StateCompleted, info.Completed},
		} {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.n), q, s.state)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
		pending += float64(info.Pending)
		cur.Backlog += float64(info.Pending + info.Active)
		cur.Processed += float64(info.ProcessedTotal)
	}

	in := ReplicasInput{Backlog: cur.Backlog}
	if c.havePrev {
		if rate, ok := ArrivalRate(c.prev, cur); ok {
			in.ArrivalRate = rate
			c.measure(ctx, cur, pending)
		}
	}
	in.MeasuredThroughput = c.measured
	c.prev, c.havePrev = cur, true
	c.prevPending = pending
	r := c.cfg.Replicas.Desired(in)
	ch <- prometheus.MustNewConstMetric(c.desired, prometheus.GaugeValue, float64(r.Replicas))
	return nil
}

// measure updates the per-pod throughput from the fleet's processed rate
// between the previous sample and cur, when that rate says what the pods
// can do: the fleet was saturated (at least SaturationBacklog pending at
// both ends) and the budgets were not the bottleneck (processed rate below
// 90% of what they feed). Skipped when PodThroughput is configured.
func (c *QueueCollector) measure(ctx context.Context, cur QueueSample, pending float64) {
	if c.cfg.Replicas.PodThroughput > 0 {
		return
	}
	sat := float64(c.cfg.SaturationBacklog)
	if c.prevPending < sat || pending < sat {
		return
	}
	dt := cur.At.Sub(c.prev.At).Seconds()
	rate := (cur.Processed - c.prev.Processed) / dt
	if feed := c.cfg.Replicas.BudgetOps(); rate <= 0 || (feed > 0 && rate >= 0.9*feed) {
		return
	}
	servers, err := c.cfg.Inspector.Servers()
	if err != nil {
		c.cfg.Logger.WarnContext(ctx, "queue metrics: list servers failed", "error", err.Error())
		return
	}
	pods := countPods(servers)
	if pods == 0 {
		return
	}
	perPod := rate / float64(pods)
	if c.measured == 0 {
		c.measured = perPod
	} else {
		c.measured = (c.measured + perPod) / 2 // smooth one noisy interval
	}
}

// countPods counts the worker processes (host + pid) among asynq's servers:
// a cioq worker runs several servers, one per lane.
func countPods(servers []*asynq.ServerInfo) int {
	seen := make(map[string]struct{}, len(servers))
	for _, s := range servers {
		seen[fmt.Sprintf("%s/%d", s.Host, s.PID)] = struct{}{}
	}
	return len(seen)
}

// MeasuredThroughput is the per-pod ops/s measured so far; 0 before the
// first measurement.
func (c *QueueCollector) MeasuredThroughput() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.measured
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
