package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
)

func TestLoadAcrossWorkspaces(t *testing.T) {
	t.Parallel()

	t.Run("SpreadsOpsByPersonAndReportsEachWorkspace", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		r := run(t, nil, "load", "--fake", "--ops", "900", "--json", "--workspaces", "us-a,us-b,eu-c", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		var s loadSummary
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), r.stdout)
		require.EqualValues(t, 900, s.Enqueued)
		require.EqualValues(t, 900, s.Delivered)
		require.Zero(t, s.Lost)
		require.Zero(t, s.DuplicatesCIO)
		require.Len(t, s.Workspaces, 3)
		var enq int64
		for i, want := range []string{"us-a", "us-b", "eu-c"} {
			w := s.Workspaces[i]
			require.Equal(t, want, w.Name)
			require.True(t, w.Ledger, want)
			require.Positive(t, w.Enqueued, "%s gets a share of the people", want)
			require.Equal(t, w.Enqueued, w.Delivered, "%s delivers exactly its own ops", want)
			require.Zero(t, w.Lost, want)
			require.Zero(t, w.DuplicatesCIO, want)
			require.Positive(t, w.Requests, want)
			enq += w.Enqueued
		}
		require.EqualValues(t, 900, enq)
	})

	t.Run("PrintsOneLinePerWorkspace", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		r := run(t, nil, "load", "--fake", "--ops", "200", "--workspaces", "w1,w2", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Regexp(t, `(?m)^  workspace w1: enqueued \d+, \d+ unique at \d+ ops/s, 0 duplicates, 0 lost;`, r.stdout)
		require.Regexp(t, `(?m)^  workspace w2: enqueued \d+, `, r.stdout)
	})

	t.Run("RefusesAnInvalidWorkspaceName", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		r := run(t, nil, "load", "--fake", "--ops", "10", "--workspaces", "ok,bad{name}", "--redis", db.URL())
		require.Equal(t, exitUsage, r.code, r.stdout+r.stderr)
	})
}

func TestLoadPipelines(t *testing.T) {
	t.Parallel()

	t.Run("DeliversEveryCallOnceToTheFakePipelinesAPI", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		r := run(t, nil, "load", "--fake", "--api", "pipelines", "--ops", "1200", "--json", "--workspaces", "p1,p2", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		var s loadSummary
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), r.stdout)
		require.Equal(t, "pipelines", s.API)
		require.EqualValues(t, 1200, s.Enqueued)
		require.True(t, s.Ledger)
		require.EqualValues(t, 1200, s.Delivered, "counted at the fake Pipelines API")
		require.Zero(t, s.Lost)
		require.Zero(t, s.DuplicatesCIO)
		require.Positive(t, s.Requests)
		require.Greater(t, s.OpsPerRequest, 1.0, "calls are batched")
		require.Len(t, s.Workspaces, 2)
		for _, w := range s.Workspaces {
			require.True(t, w.Ledger, w.Name)
			require.Equal(t, w.Enqueued, w.Delivered, w.Name)
		}
	})

	t.Run("RefusesAnUnknownAPI", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		r := run(t, nil, "load", "--fake", "--api", "cdp", "--ops", "10", "--redis", db.URL())
		require.Equal(t, exitUsage, r.code, r.stdout+r.stderr)
	})
}
