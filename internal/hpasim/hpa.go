package hpasim

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Defaults of the HPA controller and of the autoscaling/v2 API.
const (
	// DefaultTolerance is the controller's tolerance: a usage ratio within
	// 10% of 1 changes nothing.
	DefaultTolerance = 0.1
	// DefaultSyncPeriod is how often the controller evaluates an HPA.
	DefaultSyncPeriod = 15 * time.Second
	// DefaultScaleDownWindow is the API default scale-down stabilization.
	DefaultScaleDownWindow = 300 * time.Second
)

// MetricType is the source of a metric, as in autoscaling/v2 MetricSpec.
type MetricType int

// Metric sources.
const (
	// Resource is a per-pod resource (CPU) as a percentage of the request.
	Resource MetricType = iota
	// Pods is a per-pod custom metric averaged over the pods.
	Pods
	// External is one metric from outside the pods (summed over series).
	External
)

// TargetType is how a metric's target is stated.
type TargetType int

// Target types.
const (
	// Utilization is a percentage of the pods' requests (Resource only).
	Utilization TargetType = iota
	// AverageValue is a value per pod.
	AverageValue
	// Value is a total value (External only here).
	Value
)

// Metric is one entry of an HPA's spec.metrics.
type Metric struct {
	// Type is the metric source.
	Type MetricType
	// Name names the metric; pods and external samples use it as key.
	Name string
	// Target says how Value is read.
	Target TargetType
	// Value is the target: a percentage for Utilization, else a value.
	Value float64
}

// PolicyType is a scaling policy's unit.
type PolicyType int

// Policy units.
const (
	// PolicyPods changes at most Value pods per period.
	PolicyPods PolicyType = iota
	// PolicyPercent changes at most Value percent of the pods per period.
	PolicyPercent
)

// Policy is one HPAScalingPolicy.
type Policy struct {
	// Type is the unit of Value.
	Type PolicyType
	// Value is the change allowed per Period.
	Value int
	// Period is the window over which changes are summed.
	Period time.Duration
}

// Select is an HPAScalingRules selectPolicy.
type Select string

// Select policies.
const (
	// SelectMax picks the policy allowing the largest change (the default).
	SelectMax Select = "Max"
	// SelectMin picks the policy allowing the smallest change.
	SelectMin Select = "Min"
	// SelectDisabled forbids changes in this direction.
	SelectDisabled Select = "Disabled"
)

// Rules is one direction's HPAScalingRules.
type Rules struct {
	// Window is the stabilization window; zero is no window.
	Window time.Duration
	// Select picks among Policies. Empty means SelectMax.
	Select Select
	// Policies limit the rate of change. Empty means the direction's API
	// default policies (see DefaultScaleUp, DefaultScaleDown).
	Policies []Policy
}

// DefaultScaleUp is the API default scale-up rules: no window; add 4 pods
// or double, whichever is more, per 15 s.
func DefaultScaleUp() Rules {
	return Rules{Select: SelectMax, Policies: []Policy{
		{Type: PolicyPods, Value: 4, Period: 15 * time.Second},
		{Type: PolicyPercent, Value: 100, Period: 15 * time.Second},
	}}
}

// DefaultScaleDown is the API default scale-down rules: 300 s window;
// remove up to 100% per 15 s.
func DefaultScaleDown() Rules {
	return Rules{Window: DefaultScaleDownWindow, Select: SelectMax, Policies: []Policy{
		{Type: PolicyPercent, Value: 100, Period: 15 * time.Second},
	}}
}

// Behavior is an HPA's spec.behavior.
type Behavior struct {
	// ScaleUp nil means DefaultScaleUp.
	ScaleUp *Rules
	// ScaleDown nil means DefaultScaleDown.
	ScaleDown *Rules
}

// Spec is the part of a HorizontalPodAutoscaler the algorithm reads.
type Spec struct {
	// Name labels the HPA in results.
	Name string
	// MinReplicas is the floor. Zero means 1 (the API default).
	MinReplicas int
	// MaxReplicas is the ceiling. Required.
	MaxReplicas int
	// Metrics are evaluated each sync; the largest proposal wins.
	Metrics []Metric
	// Behavior limits the rate of change.
	Behavior Behavior
	// Tolerance is the controller's tolerance. Zero means DefaultTolerance.
	Tolerance float64
}

// ErrInvalidSpec is returned (wrapped) by New for a spec it cannot run.
var ErrInvalidSpec = errors.New("hpasim: invalid HPA spec")

func (s Spec) withDefaults() Spec {
	s.MinReplicas = cmp.Or(s.MinReplicas, 1)
	s.Tolerance = cmp.Or(s.Tolerance, DefaultTolerance)
	return s
}

func (s Spec) validate() error {
	var errs []error
	if s.MaxReplicas < s.MinReplicas {
		errs = append(errs, fmt.Errorf("%w: %s: maxReplicas %d below minReplicas %d", ErrInvalidSpec, s.Name, s.MaxReplicas, s.MinReplicas))
	}
	if len(s.Metrics) == 0 {
		errs = append(errs, fmt.Errorf("%w: %s: no metrics", ErrInvalidSpec, s.Name))
	}
	for _, m := range s.Metrics {
		if m.Value <= 0 {
			errs = append(errs, fmt.Errorf("%w: %s: metric %s: target must be positive", ErrInvalidSpec, s.Name, m.Name))
		}
		if (m.Target == Utilization) != (m.Type == Resource) {
			errs = append(errs, fmt.Errorf("%w: %s: metric %s: Utilization is for Resource metrics only", ErrInvalidSpec, s.Name, m.Name))
		}
	}
	return errors.Join(errs...)
}

func rulesOr(r *Rules, def Rules) Rules {
	if r == nil {
		return def
	}
	out := *r
	out.Select = cmp.Or(out.Select, SelectMax)
	if len(out.Policies) == 0 {
		out.Policies = def.Policies
	}
	return out
}

// Pod is one pod of the target as the metrics pipeline sees it.
type Pod struct {
	// Pending is true until the pod's containers run: the controller
	// ignores it.
	Pending bool
	// Ready is the pod's readiness; an unready pod's CPU is ignored.
	Ready bool
	// Metrics holds the pod's samples by metric name (CPU as a percentage
	// of its request). A name absent from the map is a missing sample.
	Metrics map[string]float64
}

// Observation is what the controller reads at one sync.
type Observation struct {
	// At is the time since the simulation started.
	At time.Duration
	// Replicas is the target's current spec.replicas.
	Replicas int
	// Pods are the target's pods.
	Pods []Pod
	// External holds each external metric's value (summed over its
	// series) by name; an absent name is a metric that cannot be read.
	External map[string]float64
}

// Proposal is one metric's replica proposal.
type Proposal struct {
	// Metric names the metric.
	Metric string
	// Replicas is the proposal; meaningful only when Err is empty.
	Replicas int
	// Err says why the metric gave no proposal.
	Err string
}

// Decision is the outcome of one sync.
type Decision struct {
	// Desired is the new spec.replicas.
	Desired int
	// Recommendation is the largest valid proposal before stabilization
	// and rate limits (0 when none).
	Recommendation int
	// Proposals lists each metric's proposal.
	Proposals []Proposal
	// Reason says what bounded Desired: "DesiredWithinRange",
	// "ScaleUpLimit", "ScaleDownLimit", "TooManyReplicas", "TooFewReplicas",
	// "Stabilized" or "NoMetrics".
	Reason string
}

type recommendation struct {
	replicas int
	at       time.Duration
}

type scaleEvent struct {
	change int
	at     time.Duration
}

// Autoscaler runs the HPA v2 algorithm for one Spec, keeping the
// controller's memory (recommendations and scale events) between syncs.
type Autoscaler struct {
	spec       Spec
	up, down   Rules
	recs       []recommendation
	upEvents   []scaleEvent
	downEvents []scaleEvent
}

// New returns an Autoscaler for spec.
func New(spec Spec) (*Autoscaler, error) {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	return &Autoscaler{
		spec: spec,
		up:   rulesOr(spec.Behavior.ScaleUp, DefaultScaleUp()),
		down: rulesOr(spec.Behavior.ScaleDown, DefaultScaleDown()),
	}, nil
}

// Spec returns the spec with its defaults.
func (a *Autoscaler) Spec() Spec { return a.spec }

// Sync evaluates the HPA once (reconcileAutoscaler) and returns the new
// replica count; the caller applies it.
func (a *Autoscaler) Sync(o Observation) Decision {
	cur := o.Replicas
	var d Decision
	switch {
	case cur > a.spec.MaxReplicas:
		d.Desired, d.Reason = a.spec.MaxReplicas, "TooManyReplicas"
	case cur < a.spec.MinReplicas:
		d.Desired, d.Reason = a.spec.MinReplicas, "TooFewReplicas"
	default:
		rec, invalid := 0, 0
		for _, m := range a.spec.Metrics {
			p := proposal(m, o, a.spec.Tolerance)
			d.Proposals = append(d.Proposals, p)
			if p.Err != "" {
				invalid++
				continue
			}
			rec = max(rec, p.Replicas)
		}
		d.Recommendation = rec
		// computeReplicasForMetrics fails when every metric failed, or when
		// some failed and the rest would scale down: nothing changes.
		if invalid == len(a.spec.Metrics) || (invalid > 0 && rec < cur) {
			d.Desired, d.Reason = cur, "NoMetrics"
			return d
		}
		d.Desired, d.Reason = a.normalize(o.At, cur, rec)
	}
	if d.Desired != cur {
		a.storeEvent(o.At, cur, d.Desired)
	}
	return d
}

// normalize is normalizeDesiredReplicasWithBehaviors: stabilize, then
// apply the rate policies and min/max.
func (a *Autoscaler) normalize(now time.Duration, cur, desired int) (int, string) {
	stabilized := a.stabilize(now, cur, desired)
	reason := "DesiredWithinRange"
	if stabilized != desired {
		reason = "Stabilized"
	}
	switch {
	case stabilized > cur:
		limit := max(a.scaleUpLimit(now, cur), cur)
		maxAllowed, why := a.spec.MaxReplicas, "TooManyReplicas"
		if maxAllowed > limit {
			maxAllowed, why = limit, "ScaleUpLimit"
		}
		if stabilized > maxAllowed {
			return maxAllowed, why
		}
	case stabilized < cur:
		limit := min(a.scaleDownLimit(now, cur), cur)
		minAllowed, why := a.spec.MinReplicas, "TooFewReplicas"
		if minAllowed < limit {
			minAllowed, why = limit, "ScaleDownLimit"
		}
		if stabilized < minAllowed {
			return minAllowed, why
		}
	}
	return stabilized, reason
}

// stabilize is stabilizeRecommendationWithBehaviors: scale up to at most
// the lowest recommendation within the up window, down to at least the
// highest within the down window; then record this recommendation.
func (a *Autoscaler) stabilize(now time.Duration, cur, desired int) int {
	upRec, downRec := desired, desired
	upCutoff, downCutoff := now-a.up.Window, now-a.down.Window
	for _, r := range a.recs {
		if r.at > upCutoff {
			upRec = min(upRec, r.replicas)
		}
		if r.at > downCutoff {
			downRec = max(downRec, r.replicas)
		}
	}
	out := cur
	if out < upRec {
		out = upRec
	}
	if out > downRec {
		out = downRec
	}
	// Keep only what a window can still see (the controller reuses the
	// slot of a sample older than both windows).
	keep := max(a.up.Window, a.down.Window)
	a.recs = slices.DeleteFunc(a.recs, func(r recommendation) bool { return r.at <= now-keep })
	a.recs = append(a.recs, recommendation{replicas: desired, at: now})
	return out
}

func changeInPeriod(events []scaleEvent, now, period time.Duration) int {
	n := 0
	for _, e := range events {
		if e.at > now-period {
			n += e.change
		}
	}
	return n
}

// scaleUpLimit is calculateScaleUpLimitWithScalingRules.
func (a *Autoscaler) scaleUpLimit(now time.Duration, cur int) int {
	if a.up.Select == SelectDisabled {
		return cur
	}
	pick, result := maxInt, math.MinInt
	if a.up.Select == SelectMin {
		pick, result = minInt, math.MaxInt
	}
	for _, p := range a.up.Policies {
		start := cur - changeInPeriod(a.upEvents, now, p.Period) + changeInPeriod(a.downEvents, now, p.Period)
		var proposed int
		if p.Type == PolicyPods {
			proposed = start + p.Value
		} else {
			proposed = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is calculateScaleDownLimitWithBehaviors.
func (a *Autoscaler) scaleDownLimit(now time.Duration, cur int) int {
	if a.down.Select == SelectDisabled {
		return cur
	}
	pick, result := minInt, math.MaxInt
	if a.down.Select == SelectMin {
		pick, result = maxInt, math.MinInt
	}
	for _, p := range a.down.Policies {
		start := cur - changeInPeriod(a.upEvents, now, p.Period) + changeInPeriod(a.downEvents, now, p.Period)
		var proposed int
		if p.Type == PolicyPods {
			proposed = start - p.Value
		} else {
			proposed = int(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

// storeEvent is storeScaleEvent: remember the change for the policies,
// dropping events older than the direction's longest policy period.
func (a *Autoscaler) storeEvent(now time.Duration, prev, next int) {
	longest := func(r Rules) time.Duration {
		var l time.Duration
		for _, p := range r.Policies {
			l = max(l, p.Period)
		}
		return l
	}
	if next > prev {
		l := longest(a.up)
		a.upEvents = slices.DeleteFunc(a.upEvents, func(e scaleEvent) bool { return e.at < now-l })
		a.upEvents = append(a.upEvents, scaleEvent{change: next - prev, at: now})
		return
	}
	l := longest(a.down)
	a.downEvents = slices.DeleteFunc(a.downEvents, func(e scaleEvent) bool { return e.at < now-l })
	a.downEvents = append(a.downEvents, scaleEvent{change: prev - next, at: now})
}

func maxInt(a, b int) int { return max(a, b) }
func minInt(a, b int) int { return min(a, b) }
