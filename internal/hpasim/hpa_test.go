package hpasim_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/hpasim"
)

const sec = time.Second

// readyPods returns n ready pods reporting metric = v each.
func readyPods(n int, metric string, v float64) []hpasim.Pod {
	pods := make([]hpasim.Pod, n)
	for i := range pods {
		pods[i] = hpasim.Pod{Ready: true, Metrics: map[string]float64{metric: v}}
	}
	return pods
}

func external(v float64) map[string]float64 {
	return map[string]float64{hpasim.MetricDesiredReplicas: v}
}

// noLimits lets the algorithm's raw proposal through: no windows, any rate.
func noLimits(metrics ...hpasim.Metric) hpasim.Spec {
	free := &hpasim.Rules{Policies: []hpasim.Policy{{Type: hpasim.PolicyPercent, Value: 1000, Period: 15 * sec}}}
	return hpasim.Spec{Name: "t", MinReplicas: 1, MaxReplicas: 100, Metrics: metrics,
		Behavior: hpasim.Behavior{ScaleUp: free, ScaleDown: free}}
}

var (
	cpu70    = hpasim.Metric{Type: hpasim.Resource, Name: "cpu", Target: hpasim.Utilization, Value: 70}
	depth500 = hpasim.Metric{Type: hpasim.Pods, Name: "depth", Target: hpasim.AverageValue, Value: 500}
	desired1 = hpasim.Metric{Type: hpasim.External, Name: hpasim.MetricDesiredReplicas, Target: hpasim.AverageValue, Value: 1}
	extValue = hpasim.Metric{Type: hpasim.External, Name: hpasim.MetricDesiredReplicas, Target: hpasim.Value, Value: 100}
)

func TestProposals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		metric hpasim.Metric
		obs    hpasim.Observation
		want   int
	}{
		{"CPUWithinToleranceKeepsReplicas", cpu70, hpasim.Observation{Replicas: 4, Pods: readyPods(4, "cpu", 76)}, 4},
		{"CPUJustOutsideToleranceScales", cpu70, hpasim.Observation{Replicas: 4, Pods: readyPods(4, "cpu", 78)}, 5},
		{"CPUScalesDown", cpu70, hpasim.Observation{Replicas: 4, Pods: readyPods(4, "cpu", 35)}, 2},
		{"CPUPendingPodsCountAsIdleOnScaleUp", cpu70, hpasim.Observation{Replicas: 4,
			Pods: append(readyPods(2, "cpu", 140), hpasim.Pod{Pending: true}, hpasim.Pod{Pending: true})}, 4},
		{"PodsAverageOverPods", depth500, hpasim.Observation{Replicas: 2, Pods: readyPods(2, "depth", 1000)}, 4},
		{"PodsTrapEveryPodReportsTheWholeDepth", depth500,
			hpasim.Observation{Replicas: 10, Pods: readyPods(10, "depth", 5000)}, 100},
		{"PodsOneExporterScalesUpRight", depth500, hpasim.Observation{Replicas: 4,
			Pods: append(readyPods(1, "depth", 5000), hpasim.Pod{Ready: true}, hpasim.Pod{Ready: true}, hpasim.Pod{Ready: true})}, 10},
		{"PodsOneExporterCannotScaleDownFromTen", depth500, hpasim.Observation{Replicas: 10,
			Pods: append(readyPods(1, "depth", 0), make9Missing()...)}, 10},
		{"ExternalAverageValueIsValueOverTarget", desired1, hpasim.Observation{Replicas: 3, External: external(8)}, 8},
		{"ExternalAverageValueWithinTolerance", desired1, hpasim.Observation{Replicas: 10, External: external(10.9)}, 10},
		// 1 - 1.1 is 0.10000000000000009 in float64, as in the controller.
		{"ExternalAverageValueAtTenPercentScales", desired1, hpasim.Observation{Replicas: 10, External: external(11)}, 11},
		{"ExternalAverageValueScalesDown", desired1, hpasim.Observation{Replicas: 10, External: external(8.5)}, 9},
		{"ExternalValueScalesWithReadyPods", extValue, hpasim.Observation{Replicas: 4, Pods: readyPods(4, "x", 0),
			External: external(200)}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := hpasim.New(noLimits(tt.metric))
			require.NoError(t, err)
			d := a.Sync(tt.obs)
			require.Equal(t, tt.want, d.Recommendation, "proposals %+v", d.Proposals)
		})
	}
}

func make9Missing() []hpasim.Pod {
	pods := make([]hpasim.Pod, 9)
	for i := range pods {
		pods[i] = hpasim.Pod{Ready: true}
	}
	return pods
}

func TestMissingMetricNeverScalesDown(t *testing.T) {
	t.Parallel()
	a, err := hpasim.New(noLimits(desired1, cpu70))
	require.NoError(t, err)
	// CPU would scale down to 2; the external metric is unreadable.
	d := a.Sync(hpasim.Observation{At: 15 * sec, Replicas: 8, Pods: readyPods(8, "cpu", 10)})
	require.Equal(t, hpasim.Decision{Desired: 8, Recommendation: 2, Reason: "NoMetrics", Proposals: d.Proposals}, d)
	// But it scales up on the metrics it has.
	d = a.Sync(hpasim.Observation{At: 30 * sec, Replicas: 8, Pods: readyPods(8, "cpu", 140)})
	require.Equal(t, 16, d.Desired)
}

// step is one sync of a scripted run: the metric says want, the HPA
// should answer got.
type step struct {
	at   time.Duration
	want float64 // cioq_desired_replicas
	got  int
}

func runSteps(t *testing.T, spec hpasim.Spec, start int, steps []step) {
	t.Helper()
	a, err := hpasim.New(spec)
	require.NoError(t, err)
	cur := start
	var got, want []int
	for _, s := range steps {
		d := a.Sync(hpasim.Observation{At: s.at, Replicas: cur, External: external(s.want)})
		cur = d.Desired
		got = append(got, cur)
		want = append(want, s.got)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replicas per sync (-want +got):\n%s", diff)
	}
}

func TestBehavior(t *testing.T) {
	t.Parallel()
	spec := func(up, down *hpasim.Rules) hpasim.Spec {
		return hpasim.Spec{Name: "t", MinReplicas: 2, MaxReplicas: 20, Metrics: []hpasim.Metric{desired1},
			Behavior: hpasim.Behavior{ScaleUp: up, ScaleDown: down}}
	}
	pods4per60 := &hpasim.Rules{Window: 60 * sec, Policies: []hpasim.Policy{{Type: hpasim.PolicyPods, Value: 4, Period: 60 * sec}}}
	noWindowDown := &hpasim.Rules{}

	t.Run("DefaultScaleUpDoublesOrAddsFourPer15s", func(t *testing.T) {
		t.Parallel()
		runSteps(t, spec(nil, nil), 2, []step{
			{15 * sec, 100, 6}, // max(2+4, 2×2)
			{30 * sec, 100, 12},
			{45 * sec, 100, 20}, // max replicas
		})
	})
	t.Run("SeedScaleUpFourPodsPer60sAfterA60sWindow", func(t *testing.T) {
		t.Parallel()
		runSteps(t, spec(pods4per60, nil), 2, []step{
			{15 * sec, 20, 6},  // first sync: only this recommendation in the window
			{30 * sec, 20, 6},  // 4 pods already added in this 60 s
			{74 * sec, 20, 6},  // the 15 s event is inside the period (14 s, 74 s]
			{75 * sec, 20, 10}, // and out of (15 s, 75 s]
			{90 * sec, 8, 10},  // lower recommendation: the window keeps the lowest, 8 < 10, no scale-down (that is the down rules)
		})
	})
	t.Run("UpWindowTakesTheLowestRecentRecommendation", func(t *testing.T) {
		t.Parallel()
		up := &hpasim.Rules{Window: 60 * sec, Policies: []hpasim.Policy{{Type: hpasim.PolicyPods, Value: 100, Period: 15 * sec}}}
		runSteps(t, spec(up, nil), 2, []step{
			{15 * sec, 5, 5},
			{30 * sec, 12, 5}, // min(5, 12)
			{45 * sec, 9, 5},  // min(5, 12, 9)
			{76 * sec, 12, 9}, // 15 s left the window: min(12, 9, 12)
			{106 * sec, 12, 12},
		})
	})
	t.Run("DownWindowTakesTheHighestRecentRecommendation", func(t *testing.T) {
		t.Parallel()
		runSteps(t, spec(nil, nil), 10, []step{
			{15 * sec, 10, 10},
			{30 * sec, 3, 10}, // the 300 s window still holds 10
			{316 * sec, 3, 3}, // 10 (at 15 s) left the window
		})
	})
	t.Run("SeedScaleDownTwoPodsPer120s", func(t *testing.T) {
		t.Parallel()
		down := &hpasim.Rules{Policies: []hpasim.Policy{{Type: hpasim.PolicyPods, Value: 2, Period: 120 * sec}}}
		runSteps(t, spec(nil, down), 10, []step{
			{15 * sec, 2, 8},
			{30 * sec, 2, 8},
			{134 * sec, 2, 8}, // the 15 s event is inside (14 s, 134 s]
			{135 * sec, 2, 6},
		})
	})
	t.Run("SelectMinTakesTheSmallerChange", func(t *testing.T) {
		t.Parallel()
		up := &hpasim.Rules{Select: hpasim.SelectMin, Policies: []hpasim.Policy{
			{Type: hpasim.PolicyPods, Value: 4, Period: 15 * sec},
			{Type: hpasim.PolicyPercent, Value: 100, Period: 15 * sec}}}
		runSteps(t, spec(up, noWindowDown), 10, []step{{15 * sec, 20, 14}}) // min(10+4, 20)
	})
	t.Run("PercentDownRoundsTowardFewerRemovals", func(t *testing.T) {
		t.Parallel()
		down := &hpasim.Rules{Policies: []hpasim.Policy{{Type: hpasim.PolicyPercent, Value: 50, Period: 60 * sec}}}
		runSteps(t, spec(nil, down), 9, []step{{15 * sec, 2, 4}, {30 * sec, 2, 4}, {76 * sec, 2, 2}}) // int(9×0.5)=4
	})
	t.Run("DisabledForbidsTheDirection", func(t *testing.T) {
		t.Parallel()
		runSteps(t, spec(nil, &hpasim.Rules{Select: hpasim.SelectDisabled}), 10, []step{{15 * sec, 2, 10}, {400 * sec, 2, 10}})
	})
	t.Run("MinAndMaxBoundTheAnswer", func(t *testing.T) {
		t.Parallel()
		runSteps(t, spec(nil, noWindowDown), 25, []step{{15 * sec, 30, 20}, {30 * sec, 0.5, 2}})
	})
}

func TestNewRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	_, err := hpasim.New(hpasim.Spec{Name: "bad", MinReplicas: 5, MaxReplicas: 2,
		Metrics: []hpasim.Metric{{Type: hpasim.Pods, Name: "x", Target: hpasim.Utilization}}})
	require.True(t, errors.Is(err, hpasim.ErrInvalidSpec))
	require.ErrorContains(t, err, "maxReplicas 2 below minReplicas 5")
	require.ErrorContains(t, err, "target must be positive")
	require.ErrorContains(t, err, "Utilization is for Resource metrics only")
}
