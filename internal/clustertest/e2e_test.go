package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// site is one workspace's credentials at the shared fake.
func site(ws string) (id, key string) { return "site-" + ws, "key-" + ws }

// rig is a fake Track API with one site per workspace, and a worker serving
// every workspace over conn (asynq) and rdb (cioq's keys), each workspace at
// rate requests/s of up to maxOps ops.
type rig struct {
	fake       *fake.Server
	worker     *worker.Worker
	workspaces []string
}

func startRig(t *testing.T, conn asynq.RedisConnOpt, rdb redis.UniversalClient, workspaces []string, rate float64, maxOps int) *rig {
	t.Helper()
	creds := map[string]string{}
	for _, ws := range workspaces {
		id, key := site(ws)
		creds[id] = key
	}
	srv := stacktest.Fake(t, fake.Options{Credentials: creds})
	cfg := stacktest.WorkerConfigOn(conn, rdb)
	cfg.RequestTimeout = 2 * time.Second
	for _, ws := range workspaces {
		id, key := site(ws)
		cfg.Workspaces = append(cfg.Workspaces, worker.Workspace{Name: ws, Sender: stacktest.Sender(t, srv.URL, id, key, 2*time.Second),
			Limit: ratelimit.Limit{Rate: rate, Burst: 2}, Batch: worker.BatchConfig{MaxOps: maxOps, MaxWait: 20 * time.Millisecond}})
	}
	w := stacktest.StartWorker(t, cfg)
	return &rig{fake: srv, worker: w, workspaces: workspaces}
}

// op is the i-th op of a run: mostly events, every tenth a suppress (the
// critical lane). Its key makes a retried enqueue a reported no-op.
func op(run string, i int) producer.Op {
	person := fmt.Sprintf("%s-p%d", run, i%97)
	o := producer.Op{Key: fmt.Sprintf("%s-%d", run, i), Op: track.Op{Action: track.ActionEvent, Name: "viewed",
		Identifiers: &track.Identifiers{ID: person}, Attributes: map[string]any{"i": i}}}
	if i%10 == 9 {
		o.Op = track.Op{Action: track.ActionSuppress, Identifiers: &track.Identifiers{ID: person + "-gone"}}
	}
	return o
}

// enqueue enqueues ops [from, to) and retries an op Redis did not take (a
// failover in progress) for up to 30 s. It counts the ops per workspace in
// routed, as route picks them.
func enqueue(ctx context.Context, t *testing.T, p *producer.Producer, route func(*producer.Op) string, run string, from, to int, routed map[string]int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := from; i < to; i++ {
		o := op(run, i)
		for {
			_, err := p.Enqueue(ctx, o)
			if err == nil {
				routed[route(&o)]++
				break
			}
			require.ErrorIs(t, err, producer.ErrUnavailable, "op %d", i)
			require.True(t, time.Now().Before(deadline), "op %d not taken in 30s: %v", i, err)
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// waitDelivered waits until the fake holds want unique ops (deadline d),
// then checks nothing was lost, duplicated or sent to another workspace,
// and that every lane is empty.
func (r *rig) waitDelivered(t *testing.T, insp *asynq.Inspector, routed map[string]int, want int, d time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return r.fake.Ledger().UniqueOps >= int64(want) },
		d, 20*time.Millisecond, "delivered %d of %d", r.fake.Ledger().UniqueOps, want)
	l := r.fake.Ledger()
	require.EqualValues(t, want, l.UniqueOps, "lost or extra ops")
	require.Zero(t, l.DuplicateOps, "duplicates at Customer.io")
	for _, ws := range r.workspaces {
		id, _ := site(ws)
		require.EqualValues(t, routed[ws], l.PerWorkspace[id].UniqueOps, "workspace %s got exactly its own ops", ws)
	}
	require.Eventually(t, func() bool {
		for _, ws := range r.workspaces {
			c, d := task.Lanes(ws)
			for _, q := range []string{c, d} {
				info, err := insp.GetQueueInfo(q)
				if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
					return false
				}
				if err == nil && info.Pending+info.Active+info.Scheduled+info.Retry+info.Archived > 0 {
					return false
				}
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "every lane drains")
}
