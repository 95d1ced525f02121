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

func TestSimRate(t *testing.T) {
	t.Parallel()
	t.Run("RunsWithNoRedis", func(t *testing.T) {
		t.Parallel()
		r := run(t, map[string]string{"CIOQ_REDIS_URL": "redis://127.0.0.1:1"},
			"sim", "rate", "--budget", "20", "--storm", "3s", "--steady", "3s")
		require.Equal(t, exitOK, r.code, r.stderr)
		for _, want := range []string{"budget 20 req/s; 3 replicas × 8 slots", "effective rate", "before", "storm", "after", "steady", "429 share"} {
			require.Contains(t, r.stdout, want)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		r := run(t, nil, "sim", "rate", "--profile", "steady", "--budget", "10", "--share", "0.5", "--steady", "4s", "--json")
		require.Equal(t, exitOK, r.code, r.stderr)
		var out []struct {
			Seconds []map[string]any `json:"seconds"`
			Phases  []struct {
				Name  string  `json:"name"`
				Limit float64 `json:"limit"`
			} `json:"phases"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
		require.Len(t, out, 1)
		require.Len(t, out[0].Seconds, 4)
		require.Equal(t, "steady", out[0].Phases[0].Name)
		require.Equal(t, 5.0, out[0].Phases[0].Limit)
	})
	t.Run("UnknownProfileIsAUsageError", func(t *testing.T) {
		t.Parallel()
		r := run(t, nil, "sim", "rate", "--profile", "spiky")
		require.Equal(t, exitUsage, r.code)
		require.Contains(t, r.stderr, `unknown profile "spiky"`)
	})
}
