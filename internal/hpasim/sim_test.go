package hpasim_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/hpasim"
)

func profile(t *testing.T, name string) hpasim.Profile {
	t.Helper()
	p, err := hpasim.ProfileByName(name)
	require.NoError(t, err)
	return p
}

// bySignal runs p through every built-in signal.
func bySignal(t *testing.T, p hpasim.Profile, m hpasim.Model) map[string]hpasim.Result {
	t.Helper()
	out := map[string]hpasim.Result{}
	for _, s := range hpasim.Signals() {
		r, err := hpasim.Run(p, s, m)
		require.NoError(t, err)
		out[s.Name] = r
	}
	return out
}

const (
	seedOne   = "seed (depth from 1 pod)"
	seedEvery = "seed (depth from every pod)"
	cioq      = "cioq desired_replicas"
)

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("CioqNeverAsksForMorePodsThanTheBudgetFeeds", func(t *testing.T) {
		t.Parallel()
		r := bySignal(t, profile(t, "spike"), hpasim.Model{})
		// 80 req/s × 500 ops = 40,000 ops/s feed 8 pods of 5,000 ops/s.
		require.Equal(t, 8, r[cioq].Summary.PeakPods)
		require.Zero(t, r[cioq].Summary.OverBudget)
		require.Equal(t, 20, r[seedOne].Summary.PeakPods)
		require.Greater(t, r[seedOne].Summary.OverBudget, 0.0)
		// Beyond the budget the extra pods drain nothing faster.
		require.InDelta(t, r[seedOne].Summary.DrainTime.Seconds(), r[cioq].Summary.DrainTime.Seconds(), 120)
		require.Less(t, r[cioq].Summary.PodMinutes, r[seedEvery].Summary.PodMinutes/2)
	})

	t.Run("OneExporterPodsMetricCannotScaleDownFromTwenty", func(t *testing.T) {
		t.Parallel()
		r := bySignal(t, profile(t, "spike"), hpasim.Model{})
		last := func(name string) hpasim.Row { rows := r[name].Rows; return rows[len(rows)-1] }
		require.Equal(t, 20, last(seedOne).Pods, "missing pods count as at target on scale-down")
		require.Equal(t, 2, last(seedEvery).Pods)
		require.Equal(t, 2, last(cioq).Pods)
	})

	t.Run("EveryPodExportingTheDepthMultipliesIt", func(t *testing.T) {
		t.Parallel()
		// Slow pods: the depth stays high long enough for the trap to show.
		m := hpasim.Model{PodThroughput: 500}
		r := bySignal(t, profile(t, "backlog"), m)
		require.Equal(t, 20, r[seedEvery].Summary.PeakPods)
		require.Equal(t, 20, r[seedOne].Summary.PeakPods)
		// cioq: 1M ops in 5 min + 2,000 ops/s = 5,333 ops/s → 11 pods of 500.
		require.Equal(t, 11, r[cioq].Summary.PeakPods)
	})

	t.Run("BacklogDrainsWithinTheTargetWithCioq", func(t *testing.T) {
		t.Parallel()
		for _, thr := range []float64{500, 1000, 5000} {
			r, err := hpasim.Run(profile(t, "backlog"), hpasim.Signals()[2], hpasim.Model{PodThroughput: thr})
			require.NoError(t, err)
			require.True(t, r.Summary.Drained)
			// 5 min target, plus scale-up syncs and the pods' startup.
			require.LessOrEqual(t, r.Summary.DrainTime, 7*time.Minute, "pod throughput %v", thr)
		}
	})

	t.Run("OpsAreConserved", func(t *testing.T) {
		t.Parallel()
		for _, p := range hpasim.Profiles() {
			var arrived float64
			for at := time.Duration(0); at <= p.Duration; at += time.Second {
				arrived += p.Rate(at)
			}
			for name, r := range bySignal(t, p, hpasim.Model{}) {
				end := r.Rows[len(r.Rows)-1].Backlog
				if p.Duration%time.Minute == 0 { // last row is the last step
					require.InDelta(t, p.Backlog+arrived, r.Summary.Delivered+end, 1e-6*(p.Backlog+arrived), "%s/%s", p.Name, name)
				}
				require.False(t, math.IsNaN(r.Summary.PodMinutes))
			}
		}
	})

	t.Run("SteadyTrafficInsideTheBudgetHasNoOverBudgetRequests", func(t *testing.T) {
		t.Parallel()
		for name, r := range bySignal(t, profile(t, "steady"), hpasim.Model{}) {
			require.Zero(t, r.Summary.OverBudget, name)
			require.True(t, r.Summary.Drained, name)
		}
	})

	t.Run("RowsAndSummaryAsJSON", func(t *testing.T) {
		t.Parallel()
		r, err := hpasim.Run(profile(t, "backlog"), hpasim.Signals()[2], hpasim.Model{RowEvery: 10 * time.Minute})
		require.NoError(t, err)
		require.Len(t, r.Rows, 4) // 0, 10, 20, 30 min
		b, err := json.Marshal(r)
		require.NoError(t, err)
		var back struct {
			Summary map[string]any   `json:"summary"`
			Rows    []map[string]any `json:"rows"`
		}
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, 600.0, back.Rows[1]["at_seconds"])
		require.Equal(t, r.Summary.DrainTime.Seconds(), back.Summary["drain_time_seconds"])
		require.Equal(t, "backlog", back.Summary["profile"])
	})

	t.Run("RejectsABadModel", func(t *testing.T) {
		t.Parallel()
		_, err := hpasim.Run(profile(t, "steady"), hpasim.Signals()[0], hpasim.Model{Budget: -1, SyncPeriod: 1500 * time.Millisecond})
		require.True(t, errors.Is(err, hpasim.ErrInvalidModel))
		require.ErrorContains(t, err, "budget")
		require.ErrorContains(t, err, "multiple of the step")
	})

	t.Run("UnknownProfile", func(t *testing.T) {
		t.Parallel()
		_, err := hpasim.ProfileByName("nope")
		require.True(t, errors.Is(err, hpasim.ErrUnknownProfile))
		require.ErrorContains(t, err, "steady, spike, daily, backlog")
	})
}
