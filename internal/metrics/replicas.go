package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults of ReplicasConfig.
const (
	// DefaultDrainTime is how soon the backlog should be gone: 5 minutes.
	DefaultDrainTime = 5 * time.Minute
	// DefaultPodThroughput is the ops/s one worker pod delivers when it has
	// work and budget, used until a measurement exists. Issue 5's target
	// for one worker on 2 cores is 10,000 ops/s; a pod is usually given
	// about one core, hence 5,000. Replace it with the figure of
	// docs/BENCHMARKS.md for your pod size (worker flag
	// --scaling-pod-throughput).
	DefaultPodThroughput = 5000.0
	// DefaultOpsPerRequest is the ops one v2 batch request carries when a
	// Budget names none: the default batch size (500).
	DefaultOpsPerRequest = 500.0
	// DefaultMinReplicas is the smallest answer of Desired: 1.
	DefaultMinReplicas = 1
)

// ErrInvalidReplicasConfig is returned (wrapped) by ReplicasConfig.Validate.
var ErrInvalidReplicasConfig = errors.New("metrics: invalid replicas config")

// Budget is one workspace's rate budget as the scaling signal sees it.
type Budget struct {
	// Workspace names the workspace (for documentation and logs only).
	Workspace string
	// Rate is the workspace's request budget in requests/s, shared by every
	// replica. Zero or negative means the workspace adds no ops to the
	// budget cap.
	Rate float64
	// OpsPerRequest is how many ops one request carries (the batch size).
	// Zero means DefaultOpsPerRequest (500).
	OpsPerRequest float64
}

// ReplicasConfig sets the cioq_desired_replicas formula (docs/scaling.md):
//
//	need     = (arrival rate + backlog / DrainTime) / per-pod throughput
//	feed     = Σ budgets (Rate × OpsPerRequest) / per-pod throughput
//	desired  = clamp(min(ceil(need), ceil(feed)), MinReplicas, MaxReplicas)
type ReplicasConfig struct {
	// DrainTime is how soon the backlog should be gone. Zero means
	// DefaultDrainTime (5m).
	DrainTime time.Duration
	// PodThroughput is the ops/s one pod delivers. Zero means the measured
	// value passed to Desired, or DefaultPodThroughput (5000) before there
	// is one.
	PodThroughput float64
	// Budgets are the workspaces' rate budgets. Empty means no budget cap.
	Budgets []Budget
	// MinReplicas is the smallest answer. Zero means DefaultMinReplicas (1).
	MinReplicas int
	// MaxReplicas is the largest answer. Zero means no bound but the budget.
	MaxReplicas int
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c ReplicasConfig) WithDefaults() ReplicasConfig {
	c.DrainTime = cmp.Or(c.DrainTime, DefaultDrainTime)
	c.MinReplicas = cmp.Or(c.MinReplicas, DefaultMinReplicas)
	b := make([]Budget, len(c.Budgets))
	for i, w := range c.Budgets {
		w.OpsPerRequest = cmp.Or(w.OpsPerRequest, DefaultOpsPerRequest)
		b[i] = w
	}
	c.Budgets = b
	return c
}

// Validate reports every problem of a config after WithDefaults.
func (c ReplicasConfig) Validate() error {
	var errs []error
	if c.DrainTime < 0 {
		errs = append(errs, fmt.Errorf("%w: drain time %s is negative", ErrInvalidReplicasConfig, c.DrainTime))
	}
	if c.PodThroughput < 0 || math.IsNaN(c.PodThroughput) || math.IsInf(c.PodThroughput, 0) {
		errs = append(errs, fmt.Errorf("%w: pod throughput %v must be a positive number", ErrInvalidReplicasConfig, c.PodThroughput))
	}
	if c.MinReplicas < 0 || c.MaxReplicas < 0 {
		errs = append(errs, fmt.Errorf("%w: min/max replicas must not be negative", ErrInvalidReplicasConfig))
	}
	if c.MaxReplicas > 0 && c.MaxReplicas < c.MinReplicas {
		errs = append(errs, fmt.Errorf("%w: max replicas %d below min replicas %d", ErrInvalidReplicasConfig, c.MaxReplicas, c.MinReplicas))
	}
	for _, b := range c.Budgets {
		if b.OpsPerRequest < 0 {
			errs = append(errs, fmt.Errorf("%w: workspace %q: ops per request %v is negative", ErrInvalidReplicasConfig, b.Workspace, b.OpsPerRequest))
		}
	}
	return errors.Join(errs...)
}

// BudgetOps is the ops/s the budgets can feed: Σ Rate × OpsPerRequest.
// Zero means no budget is known.
func (c ReplicasConfig) BudgetOps() float64 {
	var sum float64
	for _, b := range c.Budgets {
		if b.Rate > 0 {
			sum += b.Rate * cmp.Or(b.OpsPerRequest, DefaultOpsPerRequest)
		}
	}
	return sum
}

// ReplicasInput is what the queue says at one moment.
type ReplicasInput struct {
	// Backlog is the tasks waiting or running now (pending + active).
	Backlog float64
	// ArrivalRate is the ops/s arriving (see ArrivalRate). Zero when unknown.
	ArrivalRate float64
	// MeasuredThroughput is a measured per-pod ops/s, used when
	// ReplicasConfig.PodThroughput is zero. Zero means no measurement.
	MeasuredThroughput float64
}

// Limits say which bound decided a Replicas answer.
const (
	LimitNone   = ""       // the backlog and arrival rate decided
	LimitBudget = "budget" // more pods would only wait for rate tokens (or meet 429s)
	LimitMin    = "min"    // MinReplicas
	LimitMax    = "max"    // MaxReplicas
)

// Replicas is the answer of ReplicasConfig.Desired.
type Replicas struct {
	// Replicas is the pod count to export as cioq_desired_replicas.
	Replicas int
	// Need is the fractional pod count the backlog and arrivals need.
	Need float64
	// BudgetCap is the most pods the budgets can feed; 0 when no budget.
	BudgetCap int
	// Throughput is the per-pod ops/s the answer used.
	Throughput float64
	// Limit says which bound decided (LimitNone, LimitBudget, ...).
	Limit string
}

// epsilon keeps float noise (4.0000000001) from adding a pod.
const epsilon = 1e-9

// Desired computes the pods needed to take the arrivals and drain the
// backlog within DrainTime, capped by what the budgets can feed and by
// MinReplicas/MaxReplicas. c is used as given after WithDefaults.
func (c ReplicasConfig) Desired(in ReplicasInput) Replicas {
	c = c.WithDefaults()
	thr := c.PodThroughput
	if thr <= 0 {
		thr = in.MeasuredThroughput
	}
	if thr <= 0 || math.IsNaN(thr) || math.IsInf(thr, 0) {
		thr = DefaultPodThroughput
	}
	rate := max(in.ArrivalRate, 0) + max(in.Backlog, 0)/c.DrainTime.Seconds()
	r := Replicas{Need: rate / thr, Throughput: thr}
	r.Replicas = int(math.Ceil(r.Need - epsilon))
	if feed := c.BudgetOps(); feed > 0 {
		r.BudgetCap = max(1, int(math.Ceil(feed/thr-epsilon)))
		if r.Replicas > r.BudgetCap {
			r.Replicas, r.Limit = r.BudgetCap, LimitBudget
		}
	}
	if r.Replicas < c.MinReplicas {
		r.Replicas, r.Limit = c.MinReplicas, LimitMin
	}
	if c.MaxReplicas > 0 && r.Replicas > c.MaxReplicas {
		r.Replicas, r.Limit = c.MaxReplicas, LimitMax
	}
	return r
}

// QueueSample is one reading of the queues, for ArrivalRate.
type QueueSample struct {
	// At is when the sample was taken.
	At time.Time
	// Backlog is pending + active tasks.
	Backlog float64
	// Processed is the cumulative count of processed tasks (asynq's
	// ProcessedTotal summed over the queues).
	Processed float64
}

// ArrivalRate estimates the ops/s arriving between two samples: what was
// processed plus what the backlog grew (or minus what it shrank). ok is
// false when the samples cannot tell (no time between them, or the
// processed counter went back).
func ArrivalRate(prev, cur QueueSample) (rate float64, ok bool) {
	dt := cur.At.Sub(prev.At).Seconds()
	if dt <= 0 || cur.Processed < prev.Processed {
		return 0, false
	}
	rate = (cur.Processed-prev.Processed)/dt + (cur.Backlog-prev.Backlog)/dt
	return max(rate, 0), true
}
