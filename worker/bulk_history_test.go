package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// TestBulkHistoryKeepsOnlyTheOpsThatNeedIt: by default a backfill records
// history for the ops that did not go straight through (here: dead-lettered)
// and none for the ones simply delivered; HistoryDelivered records them all.
func TestBulkHistoryKeepsOnlyTheOpsThatNeedIt(t *testing.T) {
	t.Parallel()
	for _, all := range []bool{false, true} {
		e := setup(t, fake.Options{Faults: fake.Faults{RejectAttribute: "poison"}})
		ops := bulkOps("bh", 200, 50) // ops 49, 99, 149, 199 are rejected by the fake
		e.enqueueBulk(t, ops)
		w := e.startWorker(t, func(c *worker.Config) { c.Bulk.HistoryDelivered = all })
		e.waitBulkDrained(t, 60*time.Second)
		requireExactlyOnce(t, e.fake.Ledger(), 196)
		ctx := context.Background()
		require.Eventually(t, func() bool {
			op, err := w.History().Get(ctx, producer.DefaultWorkspace, ops[49].Key)
			return err == nil && op.Summary().State == history.StateDeadLettered
		}, 10*time.Second, 20*time.Millisecond, "a dead-lettered bulk op has its history")
		// The bulk task's ops were settled in one send, whose history is one
		// write: with the dead letter's history there, a delivered op's would
		// be there too if it were recorded.
		_, err := w.History().Get(ctx, producer.DefaultWorkspace, ops[0].Key)
		if all {
			require.NoError(t, err, "HistoryDelivered records delivered bulk ops too")
		} else {
			require.True(t, errors.Is(err, history.ErrNotFound), "no history for a delivered bulk op by default: %v", err)
		}
	}
}
