package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// pipelinesLines mixes Track ops and Pipelines calls: a line says which by
// its "type" ("person" or a call type).
var pipelinesLines = []string{
	`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"}}`,
	`{"type":"track","userId":"u1","event":"Purchase","messageId":"imp-m-1","timestamp":"2024-01-02T03:04:05.678Z","properties":{"amount":10}}`,
	`{"type":"identify","userId":"u2","traits":{"plan":"free"}}`,
	`{"type":"page","userId":"u2","name":"Pricing","key":"page-u2"}`,
	`{"type":"track","userId":"u1"}`,
	`{"type":"track","userId":"u3","event":"User Deleted","messageId":"imp-del-u3"}`,
	`{"type":"track","userId":"u1","event":"Purchase","messageId":"imp-m-1","timestamp":"2024-01-02T03:04:05.678Z","properties":{"amount":10}}`,
}

// pipelinesOpen counts the tasks not yet settled in the default
// workspace's lanes.
func pipelinesOpen(t *testing.T, db *redistest.DB) int {
	t.Helper()
	insp := asynq.NewInspector(db.ConnOpt())
	defer insp.Close()
	n := 0
	for _, q := range []string{task.QueueCritical, task.QueueDefault, task.QueueBulk} {
		if info, err := insp.GetQueueInfo(q); err == nil {
			n += info.Pending + info.Active + info.Scheduled + info.Retry
		}
	}
	return n
}

// Pipelines calls are imported beside Track ops, with the same line keys: a
// line's key, else one derived from its content and repeat count, so a
// second run queues nothing; a call without a messageId gets one derived
// from that key. Delivered, every call reaches the fake Pipelines API once
// (a repeated line shares its messageId: Customer.io drops the resend).
func TestImportPipelinesCalls(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	env := map[string]string{"CUSTOMERIO_CDP_API_KEY": "cdp-k"}
	file := writeLines(t, pipelinesLines)
	r := run(t, env, "import", file, "--json", "--redis", db.URL())
	require.Equal(t, exitFailure, r.code, r.stderr)
	var sum importSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	require.Equal(t, 7, sum.Read)
	require.Equal(t, 6, sum.Enqueued)
	require.Len(t, sum.Invalid, 1)
	require.Equal(t, 5, sum.Invalid[0].Line)
	require.Contains(t, sum.Invalid[0].Error, "event: is required for track")

	insp := asynq.NewInspector(db.ConnOpt())
	defer insp.Close()
	infos, err := insp.ListPendingTasks(task.QueueBulk, asynq.PageSize(100))
	require.NoError(t, err)
	types := map[string]int{}
	for _, info := range infos {
		b, err := task.BulkFromTask(asynq.NewTask(info.Type, info.Payload))
		require.NoError(t, err)
		types[info.Type] += len(b.Ops)
	}
	require.Equal(t, map[string]int{task.TypeBulk: 1, task.TypeBulkPipelines: 4}, types, "Track ops and calls in bulk tasks of their own")
	crit, err := insp.ListPendingTasks(task.QueueCritical)
	require.NoError(t, err)
	require.Len(t, crit, 1)
	require.Equal(t, "cio:pipelines:delete", crit[0].Type, "User Deleted goes alone to the critical lane")

	r = run(t, env, "import", file, "--json", "--redis", db.URL())
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	require.Zero(t, sum.Enqueued, "a second run queues nothing")
	require.Equal(t, 6, sum.Duplicates)

	cs := cdpfake.NewServer(cdpfake.Options{Keys: map[string]string{"cdp-k": "default"}})
	t.Cleanup(cs.Close)
	tr := stacktest.Fake(t, fake.Options{})
	client := stacktest.Sender(t, tr.URL, "s", "k", 0)
	pl, err := cdp.NewClient(cdp.Config{APIKey: "cdp-k", BaseURL: cs.URL})
	require.NoError(t, err)
	rdb := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	stacktest.StartWorker(t, worker.Config{Redis: db.ConnOpt(), Client: rdb, Concurrency: 50, Servers: 1,
		Workspaces: []worker.Workspace{{Name: "default", Sender: client, Pipelines: pl, Limit: ratelimit.Limit{Rate: 100}}}})
	require.Eventually(t, func() bool { return pipelinesOpen(t, db) == 0 }, 60*time.Second, 20*time.Millisecond)
	l := cs.Ledger()
	require.EqualValues(t, 4, l.UniqueCalls, "purchase, identify, page, User Deleted")
	require.EqualValues(t, 1, l.ResentCalls, "the repeated line is an op of its own under the same messageId")
	require.Zero(t, l.DuplicateCalls)
	require.EqualValues(t, 1, tr.Ledger().UniqueOps)
	var derived string
	for _, req := range cs.Requests() {
		for _, c := range req.Calls {
			if c.Type == cdp.TypeIdentify {
				derived = c.MessageID
			}
		}
	}
	require.Len(t, derived, 26, "a call without a messageId gets a ULID derived from its line key")
}

func TestImportPipelinesCallWithoutAKeyIsInvalid(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	file := writeLines(t, pipelinesLines[:3])
	r := run(t, nil, "import", file, "--json", "--redis", db.URL())
	require.Equal(t, exitFailure, r.code, r.stderr)
	var sum importSummary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	require.Equal(t, 1, sum.Enqueued, "the Track op")
	require.Len(t, sum.Invalid, 2)
	require.Contains(t, sum.Invalid[0].Error, `workspace "default" has no Pipelines API key`)
}

func TestConfigCheckRedactsThePipelinesKey(t *testing.T) {
	t.Parallel()
	const cdpKey = "cdp-s3cr3t-value"
	r := run(t, credsEnv("CUSTOMERIO_CDP_API_KEY", cdpKey, "CUSTOMERIO_CDP_URL", "http://127.0.0.1:8081/v1"), "config", "check")
	require.Equal(t, exitOK, r.code, r.outputs)
	require.NotContains(t, r.outputs, cdpKey)
	require.Contains(t, r.stdout, "cdp_api_key: REDACTED")
	require.Contains(t, r.stdout, "cdp_url: http://127.0.0.1:8081\n")
}
