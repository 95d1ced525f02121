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
