package clustertest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/worker"
)

// TestCluster runs three workspaces, hash-routed by person, through a
// three-master Redis Cluster configured by a redis-cluster:// URL.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	red := config.Redis{URL: c.URL()}
	conn, err := red.ConnOpt()
	require.NoError(t, err)
	rdb, err := red.UniversalClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	_, isCluster := rdb.(*redis.ClusterClient)
	require.True(t, isCluster, "a redis-cluster:// URL gives a cluster client, not %T", rdb)
	ctx := context.Background()
	workspaces := []string{"us-a", "us-b", "eu-c"}

	t.Run("DeliversEveryOpOnceWithNoneLost", func(t *testing.T) {
		route := producer.HashRouter(workspaces...)
		p, err := producer.New(producer.Config{Redis: conn, Workspace: workspaces[0], Workspaces: workspaces, Route: route})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close(ctx) })
		insp := asynq.NewInspector(conn)
		t.Cleanup(func() { _ = insp.Close() })

		const n = 900
		routed := map[string]int{}
		enqueue(ctx, t, p, route, "c", 0, n, routed)
		for _, ws := range workspaces {
			require.Positive(t, routed[ws], "HashRouter sends some ops to %s", ws)
		}
		again, err := p.Enqueue(ctx, op("c", 7))
		require.NoError(t, err)
		require.True(t, again.Duplicate, "a repeated key of a queued op is a no-op on a cluster too")
		r := startRig(t, conn, rdb, workspaces, 200, 50)
		r.waitDelivered(t, insp, routed, n, 30*time.Second)

		// Once delivered, the task is gone but its done-marker is not: the
		// same op enqueued again is skipped by the worker.
		accepted := r.fake.Ledger().OpsAccepted
		again, err = p.Enqueue(ctx, op("c", 7))
		require.NoError(t, err)
		require.False(t, again.Duplicate)
		r.waitDelivered(t, insp, routed, n, 30*time.Second)
		require.Equal(t, accepted, r.fake.Ledger().OpsAccepted, "a delivered op is not sent again")

		// cioq's keys of one workspace share its slot, and the workspaces
		// spread over the masters.
		nodes := map[string][]string{}
		for _, ws := range workspaces {
			keys := scanAll(ctx, t, rdb, "cioq:{"+ws+"}:*")
			require.NotEmpty(t, keys, "%s has done-markers", ws)
			slots := map[int64]bool{}
			for _, k := range keys {
				slot, err := rdb.ClusterKeySlot(ctx, k).Result()
				require.NoError(t, err)
				slots[slot] = true
			}
			require.Len(t, slots, 1, "%s: every cioq key in one slot", ws)
			for addr, ks := range scanByNode(ctx, t, rdb.(*redis.ClusterClient), "cioq:{"+ws+"}:*") {
				if len(ks) > 0 {
					nodes[addr] = append(nodes[addr], ws)
				}
			}
		}
		t.Logf("workspaces by node: %v", nodes)
		require.Greater(t, len(nodes), 1, "the workspaces use more than one master")
	})

	t.Run("DeadLettersPipelineAcrossNodes", func(t *testing.T) {
		dl := worker.NewDeadLetters(rdb, worker.DeadLetterConfig{Prefix: "cioq:dltest:", Max: 2})
		var entries []worker.DeadLetter
		now := time.Now()
		for _, ws := range workspaces {
			for i := range 3 {
				entries = append(entries, worker.DeadLetter{Workspace: ws, OpID: fmt.Sprintf("%s-op%d", ws, i),
					Action: "event", Reason: "test", DeadAt: now.Add(time.Duration(i) * time.Second), Op: []byte(`{}`)})
			}
		}
		require.NoError(t, dl.Add(ctx, entries))
		for _, ws := range workspaces {
			n, err := dl.Count(ctx, ws)
			require.NoError(t, err)
			require.EqualValues(t, 2, n, "%s trimmed to Max", ws)
			got, err := dl.List(ctx, ws, worker.DeadLetterFilter{})
			require.NoError(t, err)
			ids := []string{got[0].OpID, got[1].OpID}
			require.Equal(t, []string{ws + "-op2", ws + "-op1"}, ids, "newest first, oldest trimmed")
			removed, err := dl.Remove(ctx, ws, ws+"-op1", ws+"-op2")
			require.NoError(t, err)
			require.Equal(t, 2, removed)
		}
	})
}

// scanAll returns every key matching pattern on every master.
func scanAll(ctx context.Context, t *testing.T, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	var out []string
	for _, ks := range scanByNode(ctx, t, rdb.(*redis.ClusterClient), pattern) {
		out = append(out, ks...)
	}
	return out
}

// scanByNode returns the keys matching pattern on each master, by address.
func scanByNode(ctx context.Context, t *testing.T, cc *redis.ClusterClient, pattern string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var mu sync.Mutex
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		var keys []string
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		mu.Lock()
		out[c.Options().Addr] = keys
		mu.Unlock()
		return iter.Err()
	})
	require.NoError(t, err)
	return out
}
