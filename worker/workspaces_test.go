package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// region is one workspace with its own fake Track API: two in the US, one
// in the EU, each answering only its own site id.
type region struct {
	name, site, key string
	fake            *fake.Server
}

// TestWorkspacesAreIsolated runs three workspaces through one worker: one
// is down, one gets a quarter of its budget from the fake (429s), and the
// healthy one must keep its full rate. Nothing is lost anywhere and no op
// crosses workspaces or regions.
func TestWorkspacesAreIsolated(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	const budget, perWS = 20.0, 400
	regions := []*region{
		{name: "us-main", site: "site-us-main", key: "key-us-main"},
		{name: "us-down", site: "site-us-down", key: "key-us-down"},
		{name: "eu-slow", site: "site-eu-slow", key: "key-eu-slow"},
	}
	for _, r := range regions {
		r.fake = stacktest.Fake(t, fake.Options{Credentials: map[string]string{r.site: r.key}})
	}
	require.NoError(t, regions[1].fake.SetFaults(fake.Faults{Down: true}))
	require.NoError(t, regions[2].fake.SetFaults(fake.Faults{RateLimit: fake.Rate(budget / 4)}))

	names := []string{regions[0].name, regions[1].name, regions[2].name}
	p := stacktest.NewProducer(t, producer.Config{Redis: db.ConnOpt(), Workspace: names[0], Workspaces: names})
	ctx := context.Background()
	for i := range perWS {
		for _, r := range regions {
			_, err := p.Enqueue(ctx, producer.Op{Workspace: r.name, Op: track.Op{
				Action: track.ActionEvent, Name: "viewed", Identifiers: &track.Identifiers{ID: fmt.Sprintf("%s-u%d", r.name, i%40)},
				Attributes: map[string]any{"i": i, "ws": r.name},
			}})
			require.NoError(t, err)
		}
	}
	_, err := p.Enqueue(ctx, producer.Op{Workspace: "nowhere", Op: track.Op{Action: track.ActionSuppress, Identifiers: &track.Identifiers{ID: "x"}}})
	require.ErrorIs(t, err, track.ErrInvalidOp, "an op for a workspace no worker serves is refused")

	cfg := stacktest.WorkerConfig(t, db)
	cfg.Concurrency = 300
	for _, r := range regions {
		cfg.Workspaces = append(cfg.Workspaces, worker.Workspace{Name: r.name, Sender: stacktest.Sender(t, r.fake.URL, r.site, r.key, time.Second),
			Limit: ratelimit.Limit{Rate: budget, Burst: 2}, Batch: worker.BatchConfig{MaxOps: 4, MaxWait: 20 * time.Millisecond}})
	}
	w := stacktest.StartWorker(t, cfg)

	// The healthy workspace drains at its budget while the others struggle.
	healthy := regions[0].fake
	require.Eventually(t, func() bool { return healthy.Ledger().UniqueOps == perWS }, 60*time.Second, 20*time.Millisecond)
	hl := healthy.Ledger()
	active := hl.LastAccept.Sub(hl.FirstAccept).Seconds()
	rate := float64(hl.Accepted) / active
	t.Logf("healthy workspace: %d requests in %.1fs = %.1f req/s (budget %.0f, max %d in 1 s)", hl.Accepted, active, rate, budget, hl.MaxRequestsPerSecond)
	// Its lane's share is 0.8 × budget; a starved workspace would fall to the
	// troubled ones' pace (≤ 0.25 × budget). The floor leaves room for a
	// loaded machine (measured 15.8 req/s when it is quiet).
	require.GreaterOrEqual(t, rate, 0.5*budget, "the healthy workspace keeps its rate")
	require.LessOrEqual(t, hl.MaxRequestsPerSecond, int(budget)+2)
	h, _ := w.Health(ctx)
	require.Equal(t, "OPEN", h.Workspaces["us-down"].CircuitState)
	require.Equal(t, "CLOSED", h.Workspaces["us-main"].CircuitState)

	// Recovery: every workspace ends with exactly its own ops.
	require.NoError(t, regions[1].fake.SetFaults(fake.Faults{}))
	insp := asynqInspector(t, db)
	require.Eventually(t, func() bool {
		for _, r := range regions {
			c, d := task.Lanes(r.name)
			for _, q := range []string{c, d} {
				if info, err := insp.GetQueueInfo(q); err == nil && info.Pending+info.Active+info.Scheduled+info.Retry > 0 {
					return false
				}
			}
		}
		return true
	}, 120*time.Second, 50*time.Millisecond)
	for _, r := range regions {
		l := r.fake.Ledger()
		require.EqualValues(t, perWS, l.UniqueOps, "%s: unique ops", r.name)
		require.Zero(t, l.DuplicateOps, "%s: duplicates", r.name)
		require.Len(t, l.PerWorkspace, 1, "%s: only its own site id", r.name)
		for _, req := range r.fake.Requests() {
			for _, op := range req.Ops {
				require.True(t, strings.HasPrefix(op.Identifiers.ID, r.name+"-"), "%s received %s", r.name, op.Identifiers.ID)
				require.Equal(t, r.name, op.Attributes["ws"])
			}
		}
	}
	require.Positive(t, regions[2].fake.Ledger().RateLimited, "the slow workspace did meet 429s")
}

func asynqInspector(t *testing.T, db *redistest.DB) *asynq.Inspector {
	t.Helper()
	insp := asynq.NewInspector(db.ConnOpt())
	t.Cleanup(func() { _ = insp.Close() })
	return insp
}
