package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// bulkQueued returns the tasks in the bulk lane and the ops they carry.
func bulkQueued(t *testing.T, db *redistest.DB) (tasks, ops int) {
	t.Helper()
	insp := asynq.NewInspector(db.ConnOpt())
	defer insp.Close()
	infos, err := insp.ListPendingTasks(task.QueueBulk, asynq.PageSize(1000))
	if err != nil {
		return 0, 0
	}
	for _, info := range infos {
		b, err := task.DecodeBulk(info.Payload)
		require.NoError(t, err)
		ops += len(b.Ops)
	}
	return len(infos), ops
}

// bulkOpen returns the tasks of the bulk lane in any state.
func bulkOpen(t *testing.T, db *redistest.DB) int {
	t.Helper()
	insp := asynq.NewInspector(db.ConnOpt())
	defer insp.Close()
	info, err := insp.GetQueueInfo(task.QueueBulk)
	if err != nil {
		return 0
	}
	return info.Size
}

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ops.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	return file
}

func TestImportBulk(t *testing.T) {
	t.Parallel()

	t.Run("IsTheDefaultForAFile", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		lines := []string{
			`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"}}`,
			`{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"purchase","attributes":{"amount":10},"key":"order-1"}`,
			`{not json`,
			`{"type":"person","identifiers":{"id":"u2"},"action":"identify","attributes":{"bio":"` + strings.Repeat("x", 1001) + `"}}`,
			``,
			`{"type":"person","identifiers":{"email":"a@b.c"},"action":"suppress"}`,
			`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"}}`, // line 1 again
		}
		file := writeLines(t, lines)
		r := run(t, nil, "import", file, "--json", "--redis", db.URL())
		require.Equal(t, exitFailure, r.code, r.stderr)
		var sum importSummary
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
		require.Equal(t, 6, sum.Read)
		require.Equal(t, 4, sum.Enqueued, "line 7 repeats line 1: an op of its own")
		require.Zero(t, sum.Duplicates)
		require.Equal(t, []invalidLine{{Line: 3}, {Line: 4}}, func() []invalidLine {
			var out []invalidLine
			for _, inv := range sum.Invalid {
				require.NotEmpty(t, inv.Error)
				out = append(out, invalidLine{Line: inv.Line})
			}
			return out
		}())
		tasks, ops := bulkQueued(t, db)
		require.Equal(t, 1, tasks)
		require.Equal(t, 3, ops)
		require.Equal(t, 1, queuedTasks(t, db), "the suppress alone on the critical lane")

		// The same file again: nothing is queued twice.
		r = run(t, nil, "import", file, "--json", "--redis", db.URL())
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
		require.Zero(t, sum.Enqueued)
		require.Equal(t, 4, sum.Duplicates)
		tasks, _ = bulkQueued(t, db)
		require.Equal(t, 1, tasks)
	})

	t.Run("BulkFalseQueuesOneTaskPerOp", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		file := writeLines(t, []string{
			`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"}}`,
			`{"type":"person","identifiers":{"id":"u2"},"action":"identify","attributes":{"plan":"pro"}}`,
		})
		r := run(t, nil, "import", file, "--bulk=false", "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Equal(t, 2, queuedTasks(t, db))
		tasks, _ := bulkQueued(t, db)
		require.Zero(t, tasks)
	})

	t.Run("InterruptedAndRunAgainDeliversEveryOpOnce", func(t *testing.T) {
		t.Parallel()
		db := redistest.New(t)
		const n = 5000
		lines := make([]string, n)
		for i := range lines {
			lines[i] = fmt.Sprintf(`{"type":"person","identifiers":{"id":"u%d"},"action":"event","name":"imported","attributes":{"i":%d}}`, i%300, i)
		}
		// The first run stops after 3,100 lines (a cut file stands for
		// the interruption): its last, partial bulk task differs from the
		// full run's.
		part := writeLines(t, lines[:3100])
		whole := writeLines(t, lines)
		r := run(t, nil, "import", part, "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)

		srv := stacktest.Fake(t, fake.Options{})
		client := stacktest.Sender(t, srv.URL, "s", "k", 20*time.Second)
		rdb := redis.NewClient(db.Options())
		t.Cleanup(func() { _ = rdb.Close() })
		stacktest.StartWorker(t, worker.Config{Redis: db.ConnOpt(), Client: rdb, RequestTimeout: 20 * time.Second,
			Workspaces:  []worker.Workspace{{Name: "default", Sender: client, Limit: ratelimit.Limit{Rate: 100}}},
			Concurrency: 50, Servers: 1})
		require.Eventually(t, func() bool { return srv.Ledger().UniqueOps > 0 }, 30*time.Second, 10*time.Millisecond)

		r = run(t, nil, "import", whole, "--redis", db.URL())
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Eventually(t, func() bool {
			return bulkOpen(t, db) == 0 && queuedTasks(t, db) == 0 && srv.Ledger().UniqueOps >= n
		}, 60*time.Second, 20*time.Millisecond)
		l := srv.Ledger()
		require.EqualValues(t, n, l.UniqueOps)
		require.Zero(t, l.DuplicateOps)
	})
}
