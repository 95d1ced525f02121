package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSimHPA(t *testing.T) {
	t.Parallel()
	t.Run("RunsWithNoArgumentsAndNoRedis", func(t *testing.T) {
		t.Parallel()
		r := run(t, map[string]string{"CIOQ_REDIS_URL": "redis://127.0.0.1:1"}, "sim", "hpa")
		require.Equal(t, exitOK, r.code, r.stderr)
		for _, want := range []string{"profile steady", "profile spike", "profile daily", "profile backlog",
			"summary", "seed (depth from 1 pod)", "seed (depth from every pod)", "cioq desired_replicas",
			"time to drain", "pod-minutes", "requests over budget"} {
			require.Contains(t, r.stdout, want)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		r := run(t, nil, "sim", "hpa", "--profile", "spike", "--budget", "40", "--pod-throughput", "2000", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		var out struct {
			Model map[string]float64 `json:"model"`
			Runs  []struct {
				Profile string `json:"profile"`
				Results []struct {
					Summary map[string]any `json:"summary"`
					Rows    []any          `json:"rows"`
				} `json:"results"`
			} `json:"runs"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
		require.Equal(t, 20000.0, out.Model["budget_ops_per_second"])
		require.Len(t, out.Runs, 1)
		require.Len(t, out.Runs[0].Results, 3)
		// 40 req/s × 500 ops feed 10 pods of 2,000 ops/s.
		require.Equal(t, 10.0, out.Runs[0].Results[2].Summary["peak_pods"])
		require.NotEmpty(t, out.Runs[0].Results[2].Rows)
	})
	t.Run("UnknownProfileIsAUsageError", func(t *testing.T) {
		t.Parallel()
		r := run(t, nil, "sim", "hpa", "--profile", "weekly")
		require.Equal(t, exitUsage, r.code)
		require.Contains(t, r.stderr, `unknown profile "weekly"`)
	})
}
