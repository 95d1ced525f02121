package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/worker"
)

func queuedTasks(t *testing.T, db *redistest.DB) int {
	t.Helper()
	insp := asynq.NewInspector(db.ConnOpt())
	defer insp.Close()
	n := 0
	for _, q := range []string{task.QueueCritical, task.QueueDefault} {
		if info, err := insp.GetQueueInfo(q); err == nil {
			n += info.Size
		}
	}
	return n
}

func TestImport(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	lines := []string{
		`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"}}`,
		`{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"purchase","attributes":{"amount":10},"key":"order-1"}`,
		`{not json`,
		`{"type":"person","identifiers":{"id":"u2"},"action":"identify","attributes":{"bio":"` + strings.Repeat("x", 1001) + `"}}`,
		"{\"type\":\"person\",\"identifiers\":{\"id\":\"u3\"},\"action\":\"identify\",\"attributes\":{\"name\":\"\xff\"}}",
		`{"type":"person","identifiers":{"id":"u4"},"action":"teleport"}`,
		``,
		`{"type":"person","identifiers":{"email":"a@b.c"},"action":"suppress"}`,
	}
	file := filepath.Join(t.TempDir(), "ops.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600))

	r := run(t, nil, "import", file, "--json", "--bulk=false", "--redis", db.URL())
	require.Equal(t, exitFailure, r.code, r.stderr)
	var sum importSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	require.Equal(t, 7, sum.Read)
	require.Equal(t, 3, sum.Enqueued)
	require.Zero(t, sum.Duplicates)
	var bad []int
	for _, inv := range sum.Invalid {
		bad = append(bad, inv.Line)
		require.NotEmpty(t, inv.Error)
	}
	require.Equal(t, []int{3, 4, 5, 6}, bad)
	require.Equal(t, 3, queuedTasks(t, db), "invalid lines queue nothing")

	// The same file again: every valid line is already queued.
	r = run(t, nil, "import", file, "--json", "--bulk=false", "--redis", db.URL())
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	require.Zero(t, sum.Enqueued)
	require.Equal(t, 3, sum.Duplicates)
	require.Equal(t, 3, queuedTasks(t, db))
}

func TestImportStdinAllValid(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	in := `{"type":"person","identifiers":{"id":"s1"},"action":"identify","attributes":{"plan":"pro"}}` + "\n" +
		`{"type":"person","identifiers":{"id":"s1"},"action":"event","name":"x"}`
	var out, errOut syncBuffer
	lookup := func(string) (string, bool) { return "", false }
	code := execute(context.Background(), []string{"import", "-", "--redis", db.URL()},
		streams{in: strings.NewReader(in), out: &out, err: &errOut}, lookup)
	require.Equal(t, exitOK, code, errOut.String())
	require.Contains(t, out.String(), "read 2, enqueued 2, duplicates 0, invalid 0")
	require.Equal(t, 2, queuedTasks(t, db))
}

func TestDLQCommands(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	dl := worker.NewDeadLetters(db.Client, worker.DeadLetterConfig{})
	now := time.Now()
	entries := []worker.DeadLetter{
		{Workspace: "default", OpID: "op-1", Action: "event", Person: "id:u1", Status: 400, Reason: "batch_index 0: invalid",
			Attempts: 1, EnqueuedAt: now.Add(-time.Hour), DeadAt: now.Add(-time.Minute),
			Op: json.RawMessage(`{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"x","id":"01J0000000000000000000000A"}`)},
		{Workspace: "default", OpID: "op-2", Action: "identify", Person: "id:u2", Status: 422, Reason: "rejected",
			Attempts: 2, EnqueuedAt: now.Add(-time.Hour), DeadAt: now,
			Op: json.RawMessage(`{"type":"person","identifiers":{"id":"u2"},"action":"identify","attributes":{"a":1}}`)},
	}
	require.NoError(t, dl.Add(ctx, entries))

	r := run(t, nil, "dlq", "list", "--json", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	var got []worker.DeadLetter
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Len(t, got, 2)
	require.Equal(t, "op-2", got[0].OpID, "newest first")

	r = run(t, nil, "dlq", "list", "--action", "event", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "op-1")
	require.NotContains(t, r.stdout, "op-2")

	r = run(t, nil, "dlq", "show", "op-2", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, `"reason": "rejected"`)

	r = run(t, nil, "dlq", "show", "nope", "--redis", db.URL())
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "not found")

	r = run(t, nil, "dlq", "replay", "--redis", db.URL())
	require.Equal(t, exitUsage, r.code, "replay needs op ids or --all")

	r = run(t, nil, "dlq", "replay", "op-1", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "replayed 1 op(s)")
	require.Equal(t, 1, queuedTasks(t, db))
	n, err := dl.Count(ctx, "default")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	r = run(t, nil, "dlq", "export", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, 1, strings.Count(r.stdout, "\n"))

	r = run(t, nil, "dlq", "purge", "--all", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "purged 1 op(s)")
	n, err = dl.Count(ctx, "default")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestLoadWithInProcessFake(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	r := run(t, nil, "load", "--fake", "--ops", "800", "--json", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	var s loadSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), r.stdout)
	require.True(t, s.Ledger)
	require.EqualValues(t, 800, s.Enqueued)
	require.EqualValues(t, 800, s.Delivered)
	require.Zero(t, s.Lost)
	require.Zero(t, s.DuplicatesCIO)
	require.Greater(t, s.OpsPerRequest, 1.0)
}

func TestDemo(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "demo", "--ops", "400", "--rate", "400", "--outage", "500ms")
	require.Equal(t, exitOK, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "nothing lost, nothing duplicated")
	require.Regexp(t, `lost\s+0`, r.stdout)
	require.Regexp(t, `delivered \(unique at Customer\.io\)\s+[1-9]\d*\s+[1-9]\d*`, r.stdout, "both APIs receive ops")
}

func TestLoadBulkWithInProcessFake(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	r := run(t, nil, "load", "--fake", "--bulk", "--ops", "5000", "--json", "--redis", db.URL())
	require.Equal(t, exitOK, r.code, r.stderr)
	var s loadSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), r.stdout)
	require.True(t, s.Bulk)
	require.EqualValues(t, 5000, s.Enqueued)
	require.EqualValues(t, 5000, s.Delivered)
	require.Zero(t, s.Lost)
	require.Zero(t, s.DuplicatesCIO)
	require.Greater(t, s.OpsPerRequest, 100.0, "bulk tasks go out as large batches")
}

// TestImportRepeatedLinesAreEachAnOp: a line repeating an earlier one
// (suppress, unsuppress, suppress; plan free, pro, free) is an op of its
// own, in bulk and one by one, from a file and from standard input; a
// re-run of the same input queues nothing twice.
func TestImportRepeatedLinesAreEachAnOp(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"type":"person","identifiers":{"id":"u1"},"action":"suppress"}`,
		`{"type":"person","identifiers":{"id":"u1"},"action":"unsuppress"}`,
		`{"type":"person","identifiers":{"id":"u1"},"action":"suppress"}`,
		`{"type":"person","identifiers":{"id":"u2"},"action":"identify","attributes":{"plan":"free"}}`,
		`{"type":"person","identifiers":{"id":"u2"},"action":"identify","attributes":{"plan":"pro"}}`,
		`{"type":"person","identifiers":{"id":"u2"},"action":"identify","attributes":{"plan":"free"}}`,
	}
	for _, tt := range []struct {
		name  string
		args  []string
		stdin bool
	}{
		{"FileBulk", []string{"--bulk=true"}, false},
		{"FileOneByOne", []string{"--bulk=false"}, false},
		{"Stdin", nil, true},
		{"StdinNamedRun", []string{"--run", "nightly-2026-12-03"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := redistest.New(t)
			file := writeLines(t, lines)
			do := func() importSummary {
				args := append([]string{"import", file, "--json", "--redis", db.URL()}, tt.args...)
				var in string
				if tt.stdin {
					args[1] = "-"
					in = strings.Join(lines, "\n") + "\n"
				}
				var out, errOut syncBuffer
				code := execute(context.Background(), args, streams{in: strings.NewReader(in), out: &out, err: &errOut},
					func(string) (string, bool) { return "", false })
				require.Equal(t, exitOK, code, errOut.String())
				var sum importSummary
				require.NoError(t, json.Unmarshal([]byte(out.String()), &sum), out.String())
				return sum
			}
			sum := do()
			require.Equal(t, 6, sum.Enqueued, "every line is its own op")
			require.Zero(t, sum.Duplicates)
			sum = do()
			require.Zero(t, sum.Enqueued, "a re-run sends nothing twice")
			require.Equal(t, 6, sum.Duplicates)
		})
	}
}
