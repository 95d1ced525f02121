package metrics_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/metrics"
)

func TestReplicasConfigDesired(t *testing.T) {
	t.Parallel()
	budget80 := []metrics.Budget{{Workspace: "a", Rate: 80}} // 80 × 500 = 40,000 ops/s
	tests := []struct {
		name string
		cfg  metrics.ReplicasConfig
		in   metrics.ReplicasInput
		want metrics.Replicas
	}{
		{
			name: "EmptyQueueGivesMinReplicas",
			cfg:  metrics.ReplicasConfig{PodThroughput: 5000},
			want: metrics.Replicas{Replicas: 1, Throughput: 5000, Limit: metrics.LimitMin},
		},
		{
			name: "BacklogDrainsWithinDrainTime",
			// 1,500,000 ops / 300 s = 5,000 ops/s: 5 pods of 1,000 ops/s.
			cfg:  metrics.ReplicasConfig{PodThroughput: 1000},
			in:   metrics.ReplicasInput{Backlog: 1_500_000},
			want: metrics.Replicas{Replicas: 5, Need: 5, Throughput: 1000},
		},
		{
			name: "ArrivalsAddToTheDrainRate",
			cfg:  metrics.ReplicasConfig{PodThroughput: 1000, DrainTime: time.Minute},
			in:   metrics.ReplicasInput{Backlog: 60_000, ArrivalRate: 2500},
			want: metrics.Replicas{Replicas: 4, Need: 3.5, Throughput: 1000},
		},
		{
			name: "ExactMultipleAddsNoPod",
			cfg:  metrics.ReplicasConfig{PodThroughput: 3000},
			in:   metrics.ReplicasInput{ArrivalRate: 9000},
			want: metrics.Replicas{Replicas: 3, Need: 3, Throughput: 3000},
		},
		{
			name: "BudgetCapsThePods",
			// 40,000 ops/s of budget feed 8 pods of 5,000; the backlog wants 20.
			cfg:  metrics.ReplicasConfig{PodThroughput: 5000, Budgets: budget80},
			in:   metrics.ReplicasInput{Backlog: 30_000_000},
			want: metrics.Replicas{Replicas: 8, Need: 20, BudgetCap: 8, Throughput: 5000, Limit: metrics.LimitBudget},
		},
		{
			name: "BudgetsOfWorkspacesAddUp",
			cfg: metrics.ReplicasConfig{PodThroughput: 5000, Budgets: []metrics.Budget{
				{Workspace: "a", Rate: 80}, {Workspace: "b", Rate: 10, OpsPerRequest: 100}, {Workspace: "off"}}},
			in:   metrics.ReplicasInput{ArrivalRate: 1_000_000},
			want: metrics.Replicas{Replicas: 9, Need: 200, BudgetCap: 9, Throughput: 5000, Limit: metrics.LimitBudget},
		},
		{
			name: "SmallBudgetStillFeedsOnePod",
			cfg:  metrics.ReplicasConfig{PodThroughput: 5000, Budgets: []metrics.Budget{{Rate: 1, OpsPerRequest: 1}}},
			in:   metrics.ReplicasInput{ArrivalRate: 50_000},
			want: metrics.Replicas{Replicas: 1, Need: 10, BudgetCap: 1, Throughput: 5000, Limit: metrics.LimitBudget},
		},
		{
			name: "MaxReplicasWinsOverBudget",
			cfg:  metrics.ReplicasConfig{PodThroughput: 5000, Budgets: budget80, MaxReplicas: 6},
			in:   metrics.ReplicasInput{ArrivalRate: 100_000},
			want: metrics.Replicas{Replicas: 6, Need: 20, BudgetCap: 8, Throughput: 5000, Limit: metrics.LimitMax},
		},
		{
			name: "MinReplicasWinsOverBudget",
			cfg:  metrics.ReplicasConfig{PodThroughput: 5000, Budgets: []metrics.Budget{{Rate: 1}}, MinReplicas: 3},
			in:   metrics.ReplicasInput{ArrivalRate: 100_000},
			want: metrics.Replicas{Replicas: 3, Need: 20, BudgetCap: 1, Throughput: 5000, Limit: metrics.LimitMin},
		},
		{
			name: "MeasuredThroughputWhenNoneConfigured",
			in:   metrics.ReplicasInput{ArrivalRate: 10_000, MeasuredThroughput: 2000},
			want: metrics.Replicas{Replicas: 5, Need: 5, Throughput: 2000},
		},
		{
			name: "ConfiguredThroughputBeatsMeasured",
			cfg:  metrics.ReplicasConfig{PodThroughput: 10_000},
			in:   metrics.ReplicasInput{ArrivalRate: 10_000, MeasuredThroughput: 2000},
			want: metrics.Replicas{Replicas: 1, Need: 1, Throughput: 10_000},
		},
		{
			name: "DefaultThroughputBeforeAnyMeasurement",
			in:   metrics.ReplicasInput{ArrivalRate: 3 * metrics.DefaultPodThroughput},
			want: metrics.Replicas{Replicas: 3, Need: 3, Throughput: metrics.DefaultPodThroughput},
		},
		{
			name: "NegativeInputsCountAsZero",
			cfg:  metrics.ReplicasConfig{PodThroughput: 100, MinReplicas: 2},
			in:   metrics.ReplicasInput{Backlog: -5, ArrivalRate: -1},
			want: metrics.Replicas{Replicas: 2, Throughput: 100, Limit: metrics.LimitMin},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.cfg.Desired(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Desired(%+v) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestReplicasConfigValidate(t *testing.T) {
	t.Parallel()
	t.Run("DefaultsAreValid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, metrics.ReplicasConfig{}.WithDefaults().Validate())
	})
	t.Run("ReportsEveryProblem", func(t *testing.T) {
		t.Parallel()
		err := metrics.ReplicasConfig{DrainTime: -time.Second, PodThroughput: -1, MinReplicas: 5, MaxReplicas: 2,
			Budgets: []metrics.Budget{{Workspace: "w", OpsPerRequest: -1}}}.Validate()
		require.True(t, errors.Is(err, metrics.ErrInvalidReplicasConfig))
		for _, want := range []string{"drain time", "pod throughput", "max replicas 2 below min replicas 5", `workspace "w"`} {
			require.ErrorContains(t, err, want)
		}
	})
}

func TestArrivalRate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		prev, cur metrics.QueueSample
		want      float64
		wantOK    bool
	}{
		{"ProcessedPlusGrowth", metrics.QueueSample{At: t0, Backlog: 100, Processed: 1000},
			metrics.QueueSample{At: t0.Add(10 * time.Second), Backlog: 600, Processed: 3000}, 250, true},
		{"ShrinkingBacklogLowersTheRate", metrics.QueueSample{At: t0, Backlog: 5000, Processed: 0},
			metrics.QueueSample{At: t0.Add(10 * time.Second), Backlog: 1000, Processed: 10000}, 600, true},
		{"NeverNegative", metrics.QueueSample{At: t0, Backlog: 5000},
			metrics.QueueSample{At: t0.Add(time.Second), Backlog: 0}, 0, true},
		{"NoTimeBetween", metrics.QueueSample{At: t0}, metrics.QueueSample{At: t0, Processed: 5}, 0, false},
		{"CounterWentBack", metrics.QueueSample{At: t0, Processed: 10},
			metrics.QueueSample{At: t0.Add(time.Second), Processed: 2}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := metrics.ArrivalRate(tt.prev, tt.cur)
			require.Equal(t, tt.wantOK, ok)
			require.InDelta(t, tt.want, got, 1e-9)
		})
	}
}
