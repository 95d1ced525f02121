package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of private redis-server processes (masters
// only), owned by one test and killed at cleanup.
type Cluster struct {
	// Nodes are the masters, each with a share of the 16384 slots.
	Nodes []*Server
}

// StartCluster starts n (≥ 3) cluster-enabled redis-servers on free loopback
// ports and joins them with `redis-cli --cluster create --cluster-replicas
// 0`, then waits until every node reports cluster_state:ok. It skips the
// test, saying why, when redis-server or redis-cli is not installed (both
// come with Debian's redis-server package; redis-cli alone with
// redis-tools).
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", n)
	}
	requireBinaries(tb, "redis-server", "redis-cli")
	c := &Cluster{}
	for range n {
		c.Nodes = append(c.Nodes, StartServer(tb, ServerOptions{Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(freePort(tb)), "--cluster-node-timeout", "5000",
		}}))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range c.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				_ = rdb.Close()
				tb.Fatalf("redistest: cluster node %s not ok after 20s: %v\n%s", s.Addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = rdb.Close()
	}
	return c
}

// Addrs lists the nodes' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// URL returns redis-cluster://n1,n2,... as internal/config reads it.
func (c *Cluster) URL() string { return "redis-cluster://" + strings.Join(c.Addrs(), ",") }

// ConnOpt returns asynq connection options for the cluster.
func (c *Cluster) ConnOpt() asynq.RedisClusterClientOpt {
	return asynq.RedisClusterClientOpt{Addrs: c.Addrs()}
}

// Client returns a go-redis cluster client, closed at cleanup.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// requireBinaries skips tb, saying which program is missing and how to get
// it, unless every name is in PATH.
func requireBinaries(tb testing.TB, names ...string) {
	tb.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			tb.Skipf("redistest: %s not in PATH, so this test cannot start its Redis nodes "+
				"(install Debian's redis-server package, which brings redis-tools; "+
				"docs/scaling.md gives the manual procedure): %v", name, err)
		}
	}
}

// hostPort joins 127.0.0.1 and port.
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// String names the cluster.
func (c *Cluster) String() string {
	return fmt.Sprintf("redis cluster %s", strings.Join(c.Addrs(), ","))
}
