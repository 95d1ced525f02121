package hpasim

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cioq/cioq/internal/metrics"
)

// Defaults of Model.
const (
	// DefaultBudget is a workspace's request budget: 80 requests/s.
	DefaultBudget = 80.0
	// DefaultStartupDelay is how long a new pod takes to become ready: 30 s.
	DefaultStartupDelay = 30 * time.Second
	// DefaultStep is the simulation's time step: 1 s.
	DefaultStep = time.Second
	// DefaultCPUIdle is an idle pod's CPU, in percent of its request: 10.
	DefaultCPUIdle = 10.0
	// DrainedBelow is the backlog (ops) under which a queue counts as
	// drained: 1000.
	DrainedBelow = 1000.0
)

// Names of the metrics the signals scale on.
const (
	MetricCPU             = "cpu"
	MetricQueueDepth      = "cio_queue_depth"
	MetricDesiredReplicas = metrics.NameDesiredReplicas
)

// Model is the worker fleet and the workspace the traffic goes to.
type Model struct {
	// PodThroughput is the ops/s one ready pod delivers given work and
	// budget. Zero means metrics.DefaultPodThroughput (5000).
	PodThroughput float64
	// Budget is the workspace's request budget in requests/s. Zero means
	// DefaultBudget (80).
	Budget float64
	// OpsPerRequest is the ops one request carries. Zero means
	// metrics.DefaultOpsPerRequest (500).
	OpsPerRequest float64
	// DrainTime is the cioq_desired_replicas drain target. Zero means
	// metrics.DefaultDrainTime (5m).
	DrainTime time.Duration
	// StartupDelay is how long a new pod is pending. Zero means
	// DefaultStartupDelay (30s).
	StartupDelay time.Duration
	// SyncPeriod is the HPA controller's period. Zero means
	// DefaultSyncPeriod (15s).
	SyncPeriod time.Duration
	// Step is the simulation step. Zero means DefaultStep (1s).
	Step time.Duration
	// CPUIdle is an idle pod's CPU in percent of its request; a pod working
	// at PodThroughput uses 100%. Zero means DefaultCPUIdle (10).
	CPUIdle float64
	// RowEvery is the spacing of the rows kept in a Result. Zero means
	// one row per sync period.
	RowEvery time.Duration
}

// WithDefaults returns m with its zero fields set to the defaults.
func (m Model) WithDefaults() Model {
	m.PodThroughput = cmp.Or(m.PodThroughput, metrics.DefaultPodThroughput)
	m.Budget = cmp.Or(m.Budget, DefaultBudget)
	m.OpsPerRequest = cmp.Or(m.OpsPerRequest, metrics.DefaultOpsPerRequest)
	m.DrainTime = cmp.Or(m.DrainTime, metrics.DefaultDrainTime)
	m.StartupDelay = cmp.Or(m.StartupDelay, DefaultStartupDelay)
	m.SyncPeriod = cmp.Or(m.SyncPeriod, DefaultSyncPeriod)
	m.Step = cmp.Or(m.Step, DefaultStep)
	m.CPUIdle = cmp.Or(m.CPUIdle, DefaultCPUIdle)
	m.RowEvery = cmp.Or(m.RowEvery, m.SyncPeriod)
	return m
}

// ErrInvalidModel is returned (wrapped) by Run for a model it cannot run.
var ErrInvalidModel = errors.New("hpasim: invalid model")

func (m Model) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"pod throughput", m.PodThroughput}, {"budget", m.Budget}, {"ops per request", m.OpsPerRequest}} {
		if f.v <= 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%w: %s must be a positive number", ErrInvalidModel, f.name))
		}
	}
	if m.Step <= 0 || m.SyncPeriod < m.Step || m.SyncPeriod%m.Step != 0 {
		errs = append(errs, fmt.Errorf("%w: sync period %s must be a positive multiple of the step %s", ErrInvalidModel, m.SyncPeriod, m.Step))
	}
	if m.DrainTime < 0 || m.StartupDelay < 0 || m.RowEvery < 0 {
		errs = append(errs, fmt.Errorf("%w: durations must not be negative", ErrInvalidModel))
	}
	return errors.Join(errs...)
}

// BudgetOps is the ops/s the budget can take: Budget × OpsPerRequest.
func (m Model) BudgetOps() float64 { return m.Budget * m.OpsPerRequest }

// Export says how a Pods metric of queue depth reaches the HPA.
type Export int

// Exports of the queue depth.
const (
	// ExportOne: one pod (cioq's lease holder) reports the depth, the other
	// pods report nothing (missing samples).
	ExportOne Export = iota
	// ExportEvery: every pod reports the whole queue's depth (the trap of
	// OPS_FACTS §11: the average is the whole depth).
	ExportEvery
)

// Signal is an HPA and how its metrics are fed.
type Signal struct {
	// Name labels the signal in results.
	Name string
	// Spec is the HPA.
	Spec Spec
	// DepthExport says how MetricQueueDepth is exported (Pods metrics).
	DepthExport Export
}

// SeedHPA is the seed's HPA (k8s/hpa.yaml of seed 003) exactly: CPU 70%
// and the Pods metric cio_queue_depth at an average of 500, 2–20 pods, up
// 4 pods per 60 s after a 60 s window, down 2 pods per 120 s after 300 s.
func SeedHPA() Spec {
	return Spec{Name: "seed", MinReplicas: 2, MaxReplicas: 20,
		Metrics: []Metric{
			{Type: Resource, Name: MetricCPU, Target: Utilization, Value: 70},
			{Type: Pods, Name: MetricQueueDepth, Target: AverageValue, Value: 500},
		},
		Behavior: Behavior{
			ScaleUp: &Rules{Window: 60 * time.Second,
				Policies: []Policy{{Type: PolicyPods, Value: 4, Period: 60 * time.Second}}},
			ScaleDown: &Rules{Window: 300 * time.Second,
				Policies: []Policy{{Type: PolicyPods, Value: 2, Period: 120 * time.Second}}},
		},
	}
}

// CioqHPA is cioq's HPA as k8s/components/hpa-rate-aware ships it: the
// External metric cioq_desired_replicas with target AverageValue 1
// (desired = the gauge), 2–20 pods; up at once (no window, double or +4
// pods per 30 s, whichever is more); down after a 300 s window by at most
// 20% per 60 s.
func CioqHPA() Spec {
	return Spec{Name: "cioq", MinReplicas: 2, MaxReplicas: 20,
		Metrics: []Metric{{Type: External, Name: MetricDesiredReplicas, Target: AverageValue, Value: 1}},
		Behavior: Behavior{
			ScaleUp: &Rules{Select: SelectMax, Policies: []Policy{
				{Type: PolicyPercent, Value: 100, Period: 30 * time.Second},
				{Type: PolicyPods, Value: 4, Period: 30 * time.Second},
			}},
			ScaleDown: &Rules{Window: 300 * time.Second, Select: SelectMin,
				Policies: []Policy{{Type: PolicyPercent, Value: 20, Period: 60 * time.Second}}},
		},
	}
}

// Signals are the signals `cioq sim hpa` compares: the seed's HPA with one
// exporter of the depth (cioq's lease), the same HPA with every pod
// exporting the depth (the trap), and cioq's HPA.
func Signals() []Signal {
	return []Signal{
		{Name: "seed (depth from 1 pod)", Spec: SeedHPA(), DepthExport: ExportOne},
		{Name: "seed (depth from every pod)", Spec: SeedHPA(), DepthExport: ExportEvery},
		{Name: "cioq desired_replicas", Spec: CioqHPA()},
	}
}

// Row is the state at one moment of a run.
type Row struct {
	// At is the time since the start.
	At time.Duration `json:"-"`
	// Arrival is the ops/s arriving.
	Arrival float64 `json:"arrival_ops_per_second"`
	// Backlog is the ops waiting.
	Backlog float64 `json:"backlog_ops"`
	// Pods is spec.replicas; Ready the pods serving.
	Pods  int `json:"pods"`
	Ready int `json:"ready"`
	// Delivered is the ops/s accepted over the last step.
	Delivered float64 `json:"delivered_ops_per_second"`
	// OverBudget is the requests/s the pods had work and capacity for but
	// the budget could not take (429s, or limiter waits with cioq).
	OverBudget float64 `json:"over_budget_requests_per_second"`
	// CPU is a ready pod's CPU in percent of its request.
	CPU float64 `json:"cpu_percent"`
	// Desired is cioq_desired_replicas as the collector would export it.
	Desired int `json:"desired_replicas"`
}

// Summary sums up a run.
type Summary struct {
	// Profile and Signal name the run.
	Profile string `json:"profile"`
	Signal  string `json:"signal"`
	// Drained says the backlog was below DrainedBelow at the end.
	Drained bool `json:"drained"`
	// DrainTime is the longest stretch the backlog stayed at or above
	// DrainedBelow: how long the worst backlog took to drain (to the end
	// of the run when not Drained).
	DrainTime time.Duration `json:"-"`
	// PeakBacklog is the largest backlog.
	PeakBacklog float64 `json:"peak_backlog_ops"`
	// PeakPods is the largest spec.replicas.
	PeakPods int `json:"peak_pods"`
	// PodMinutes is spec.replicas integrated over time (pods cost from the
	// moment they are asked for).
	PodMinutes float64 `json:"pod_minutes"`
	// Delivered is the ops accepted.
	Delivered float64 `json:"delivered_ops"`
	// OverBudget is the requests beyond the budget (see Row.OverBudget).
	OverBudget float64 `json:"over_budget_requests"`
	// Scalings is how many times spec.replicas changed.
	Scalings int `json:"scalings"`
}

// Result is one profile run through one signal.
type Result struct {
	Summary Summary `json:"summary"`
	// Rows are kept every Model.RowEvery.
	Rows []Row `json:"rows"`
}

type pod struct{ readyAt time.Duration }

// Run replays profile p through signal s against model m.
func Run(p Profile, s Signal, m Model) (Result, error) {
	m = m.WithDefaults()
	if err := m.validate(); err != nil {
		return Result{}, err
	}
	if p.Rate == nil || p.Duration <= 0 {
		return Result{}, fmt.Errorf("%w: profile %q has no rate or duration", ErrInvalidModel, p.Name)
	}
	hpa, err := New(s.Spec)
	if err != nil {
		return Result{}, err
	}
	spec := hpa.Spec()
	replicas := metrics.ReplicasConfig{PodThroughput: m.PodThroughput, DrainTime: m.DrainTime,
		Budgets: []metrics.Budget{{Workspace: "sim", Rate: m.Budget, OpsPerRequest: m.OpsPerRequest}}}

	res := Result{Summary: Summary{Profile: p.Name, Signal: s.Name}}
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pods := make([]pod, spec.MinReplicas) // the run starts with MinReplicas ready pods
	backlog := p.Backlog
	var processed float64
	prev := metrics.QueueSample{At: epoch, Backlog: backlog}
	dt := m.Step.Seconds()
	var last Row
	episode := time.Duration(-1) // start of the current backlog episode
	if backlog >= DrainedBelow {
		episode = 0
	}

	for t := time.Duration(0); t <= p.Duration; t += m.Step {
		// Pods serve during the step.
		ready := 0
		for _, pd := range pods {
			if pd.readyAt <= t {
				ready++
			}
		}
		arrival := max(p.Rate(t), 0)
		backlog += arrival * dt
		capacity := float64(ready) * m.PodThroughput
		attempt := min(backlog/dt, capacity) // ops/s the pods work on
		delivered := min(attempt, m.BudgetOps())
		backlog -= delivered * dt
		processed += delivered * dt
		over := (attempt - delivered) / m.OpsPerRequest
		cpu := m.CPUIdle
		if ready > 0 {
			cpu += (100 - m.CPUIdle) * attempt / capacity
		}
		last = Row{At: t, Arrival: arrival, Backlog: backlog, Pods: len(pods), Ready: ready,
			Delivered: delivered, OverBudget: over, CPU: cpu, Desired: last.Desired}

		sum := &res.Summary
		sum.Delivered += delivered * dt
		sum.OverBudget += over * dt
		sum.PodMinutes += float64(len(pods)) * dt / 60
		sum.PeakBacklog = max(sum.PeakBacklog, backlog)
		sum.PeakPods = max(sum.PeakPods, len(pods))
		switch {
		case backlog >= DrainedBelow && episode < 0:
			episode = t
		case backlog < DrainedBelow && episode >= 0:
			sum.DrainTime = max(sum.DrainTime, t+m.Step-episode)
			episode = -1
		}

		// The controller syncs at the end of each period.
		if (t+m.Step)%m.SyncPeriod == 0 {
			now := t + m.Step
			cur := metrics.QueueSample{At: epoch.Add(now), Backlog: backlog, Processed: processed}
			rate, _ := metrics.ArrivalRate(prev, cur)
			prev = cur
			last.Desired = replicas.Desired(metrics.ReplicasInput{Backlog: backlog, ArrivalRate: rate}).Replicas
			o := observe(pods, now, backlog, cpu, s.DepthExport)
			o.External = map[string]float64{MetricDesiredReplicas: float64(last.Desired)}
			d := hpa.Sync(o)
			if d.Desired != len(pods) {
				sum.Scalings++
			}
			pods = resize(pods, d.Desired, now+m.StartupDelay)
		}
		if t%m.RowEvery == 0 {
			res.Rows = append(res.Rows, last)
		}
	}
	if episode >= 0 {
		res.Summary.DrainTime = max(res.Summary.DrainTime, p.Duration+m.Step-episode)
	}
	res.Summary.Drained = episode < 0
	return res, nil
}

// observe builds the controller's view of the pods.
func observe(pods []pod, now time.Duration, backlog, cpu float64, export Export) Observation {
	o := Observation{At: now, Replicas: len(pods)}
	exporter := true
	for _, pd := range pods {
		if pd.readyAt > now {
			o.Pods = append(o.Pods, Pod{Pending: true})
			continue
		}
		ms := map[string]float64{MetricCPU: cpu}
		if export == ExportEvery || exporter {
			ms[MetricQueueDepth] = backlog
			exporter = false
		}
		o.Pods = append(o.Pods, Pod{Ready: true, Metrics: ms})
	}
	return o
}

// resize scales to n pods: new pods are ready at readyAt; removals take
// the newest (not yet ready) pods first.
func resize(pods []pod, n int, readyAt time.Duration) []pod {
	for len(pods) < n {
		pods = append(pods, pod{readyAt: readyAt})
	}
	return pods[:n]
}

// MarshalJSON writes At in seconds (at_seconds).
func (r Row) MarshalJSON() ([]byte, error) {
	type row Row
	return json.Marshal(struct {
		AtSeconds float64 `json:"at_seconds"`
		row
	}{r.At.Seconds(), row(r)})
}

// MarshalJSON writes DrainTime in seconds (drain_time_seconds).
func (s Summary) MarshalJSON() ([]byte, error) {
	type summary Summary
	return json.Marshal(struct {
		summary
		DrainSeconds float64 `json:"drain_time_seconds"`
	}{summary(s), s.DrainTime.Seconds()})
}
