package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// TestCriticalOpsGoFirstWhenBudgetIsTight fills the default lane with a
// backlog that needs far more requests than the budget allows, then
// enqueues suppress ops: they must be delivered long before the backlog.
func TestCriticalOpsGoFirstWhenBudgetIsTight(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	const bulk = 300
	enqueueEvents(t, e.prod, "bulk", bulk) // 60 requests at 3 ops each: 6 s at 10 req/s
	e.startWorker(t, func(c *worker.Config) {
		c.Workspaces[0].Limit = ratelimit.Limit{Rate: 10, Burst: 1}
		c.Workspaces[0].Batch.MaxOps = 5
	})
	require.Eventually(t, func() bool { return e.fake.Ledger().OpsAccepted > 0 }, 10*time.Second, 10*time.Millisecond)
	ctx := context.Background()
	enqueuedAt := time.Now()
	for i := range 5 {
		_, err := e.prod.Suppress(ctx, fmt.Sprintf("leaver-%d", i))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return e.fake.Ledger().OpsByAction[string(track.ActionSuppress)] == 5
	}, 10*time.Second, 10*time.Millisecond)
	waited := time.Since(enqueuedAt)
	bulkDone := e.fake.Ledger().OpsByAction[string(track.ActionEvent)]
	require.Less(t, bulkDone, int64(bulk*2/3), "suppress ops overtook the bulk backlog")
	require.Less(t, waited, 3*time.Second)
	e.waitDrained(t, 60*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), bulk+5)
}

// TestPersonOrderWithinBatch: the ops of one person keep their enqueue order
// inside every request.
func TestPersonOrderWithinBatch(t *testing.T) {
	t.Parallel()
	e := setup(t, fake.Options{})
	ctx := context.Background()
	const people, perPerson = 10, 40
	for i := range perPerson {
		for p := range people {
			_, err := e.prod.Track(ctx, fmt.Sprintf("ordered-%d", p), "step", map[string]any{"seq": i})
			require.NoError(t, err)
		}
	}
	e.startWorker(t, nil)
	e.waitDrained(t, 30*time.Second)
	requireExactlyOnce(t, e.fake.Ledger(), people*perPerson)
	for _, r := range e.fake.Requests() {
		last := map[string]float64{}
		for _, op := range r.Ops {
			seq, err := op.Attributes["seq"].(interface{ Float64() (float64, error) }).Float64()
			require.NoError(t, err)
			id := op.Identifiers.ID
			if prev, ok := last[id]; ok {
				require.Greater(t, seq, prev, "ops of %s out of enqueue order within a request", id)
			}
			last[id] = seq
		}
	}
}
