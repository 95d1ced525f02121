package clustertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/producer"
)

// TestSentinelFailover delivers ops through a master found by Sentinel,
// moves the master role to the replica mid-run (SENTINEL FAILOVER), and
// checks that the producer and the worker follow it with nothing lost and
// nothing sent twice.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	red := config.Redis{URL: s.URL()}
	conn, err := red.ConnOpt()
	require.NoError(t, err)
	require.IsType(t, asynq.RedisFailoverClientOpt{}, conn)
	rdb, err := red.UniversalClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	workspaces := []string{"us-a", "eu-b"}
	route := producer.HashRouter(workspaces...)
	p, err := producer.New(producer.Config{Redis: conn, Workspace: workspaces[0], Workspaces: workspaces, Route: route})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(ctx) })
	insp := asynq.NewInspector(conn)
	t.Cleanup(func() { _ = insp.Close() })
	// 2 workspaces × 5 requests/s × 10 ops: 400 ops take about 4 s, so the
	// failover lands while the worker is delivering.
	r := startRig(t, conn, rdb, workspaces, 5, 10)

	const half = 400
	routed := map[string]int{}
	enqueue(ctx, t, p, route, "s", 0, half, routed)
	require.Eventually(t, func() bool { return r.fake.Ledger().UniqueOps > 0 }, 20*time.Second, 10*time.Millisecond)

	s.Failover(ctx)
	at := r.fake.Ledger().UniqueOps
	t.Logf("failover done with %d of %d ops delivered", at, half)
	require.Less(t, at, int64(half), "the failover happened mid-delivery")
	require.Equal(t, "master", role(ctx, t, s.Master.Addr))
	require.Equal(t, "slave", role(ctx, t, s.Replica.Addr))

	enqueue(ctx, t, p, route, "s", half, 2*half, routed)
	r.waitDelivered(t, insp, routed, 2*half, 30*time.Second)
	n, err := redis.NewClient(&redis.Options{Addr: s.Master.Addr}).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Positive(t, n, "the new master holds the data")
}

// role returns INFO replication's role of the server at addr.
func role(ctx context.Context, t *testing.T, addr string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	v, err := c.Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	return v[0].(string)
}
