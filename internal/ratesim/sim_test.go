package ratesim_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/ratesim"
	"github.com/cioq/cioq/internal/redistest"
)

func TestRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StormCutsOnceAndRecovers", func(t *testing.T) {
		t.Parallel()
		res, err := ratesim.Run(ctx, ratesim.Model{Budget: 80, Redis: redistest.New(t).Client, Phases: []ratesim.Phase{
			{Name: "before", Duration: 3 * time.Second, Limit: 80},
			{Name: "storm", Duration: 10 * time.Second, Limit: 5},
			{Name: "after", Duration: 8 * time.Second, Limit: 80},
		}})
		require.NoError(t, err)
		require.Len(t, res.Seconds, 21)
		before, storm, after := res.Phases[0], res.Phases[1], res.Phases[2]
		t.Logf("%+v\n%+v\n%+v", before, storm, after)
		require.Zero(t, before.Throttled, "at a real limit equal to the budget, no 429")
		require.InDelta(t, 0.8, before.Used, 0.05, "bulk traffic uses its lane's 80%% of the budget")
		require.LessOrEqual(t, storm.Share429, 0.12)
		require.GreaterOrEqual(t, storm.Used, 0.8, "the fleet keeps using the low limit")
		require.LessOrEqual(t, res.Seconds[12].Rate, 8.0, "the effective rate found the real limit")
		require.Zero(t, after.Throttled)
		require.GreaterOrEqual(t, after.From5s, 0.75, "back at the budget (bulk: 80%% of it) from 5 s on")
		require.Equal(t, 80.0, res.Seconds[20].Rate)
	})

	t.Run("SteadyLimitBelowTheBudgetDoesNotOscillate", func(t *testing.T) {
		t.Parallel()
		m := ratesim.Steady(80, 0.5, 20*time.Second)
		m.Redis = redistest.New(t).Client
		res, err := ratesim.Run(ctx, m)
		require.NoError(t, err)
		p := res.Phases[0]
		t.Logf("%+v", p)
		require.LessOrEqual(t, p.Share429, 0.02)
		require.GreaterOrEqual(t, p.Used, 0.85)
	})

	t.Run("RunsOnAnEmbeddedRedis", func(t *testing.T) {
		t.Parallel()
		res, err := ratesim.Run(ctx, ratesim.Steady(10, 0.5, 3*time.Second))
		require.NoError(t, err)
		require.Len(t, res.Seconds, 3)
		require.Positive(t, res.Phases[0].Accepted)
	})

	t.Run("RejectsAModelThatCannotRun", func(t *testing.T) {
		t.Parallel()
		_, err := ratesim.Run(ctx, ratesim.Model{})
		require.ErrorIs(t, err, ratesim.ErrInvalidModel)
		_, err = ratesim.Run(ctx, ratesim.Model{Phases: []ratesim.Phase{{Duration: time.Second, Limit: -1}}})
		require.ErrorIs(t, err, ratesim.ErrInvalidModel)
	})
}
