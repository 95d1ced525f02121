package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the Sentinel of StartSentinel monitors.
const SentinelMaster = "cioq-master"

// Sentinel is one master, one replica and one Sentinel (quorum 1), private
// processes owned by one test and killed at cleanup.
type Sentinel struct {
	// Master and Replica are the data nodes as started; after Failover their
	// roles are swapped.
	Master, Replica *Server
	// Addr is the Sentinel's host:port.
	Addr string

	tb  testing.TB
	cmd *exec.Cmd
}

// StartSentinel starts a master, a replica of it and a Sentinel monitoring
// them as SentinelMaster, and waits until the replica is in sync and the
// Sentinel knows the master. It skips the test, saying why, when
// redis-server is not installed.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	requireBinaries(tb, "redis-server")
	master := StartServer(tb, ServerOptions{})
	replica := StartServer(tb, ServerOptions{Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}})
	s := &Sentinel{Master: master, Replica: replica, tb: tb}
	ctx := context.Background()
	waitFor(tb, 20*time.Second, "replica in sync", func() (bool, string) {
		info := infoOf(ctx, replica.Addr, "replication")
		return strings.Contains(info, "master_link_status:up"), info
	})

	dir := tb.TempDir()
	port := freePort(tb)
	s.Addr = hostPort(port)
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %s 5000
sentinel failover-timeout %s 15000
sentinel known-replica %s 127.0.0.1 %d
`, port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, master.Port, SentinelMaster, SentinelMaster, SentinelMaster, replica.Port)
	file := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		tb.Fatalf("redistest: sentinel config: %v", err)
	}
	s.cmd = exec.Command("redis-server", file, "--sentinel")
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("redistest: start redis sentinel: %v", err)
	}
	tb.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
	})
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer sc.Close()
	waitFor(tb, 20*time.Second, "sentinel sees the replica", func() (bool, string) {
		reps, err := sc.Replicas(ctx, SentinelMaster).Result()
		if err != nil || len(reps) == 0 {
			return false, fmt.Sprint(reps, err)
		}
		return reps[0]["flags"] == "slave" && reps[0]["master-link-status"] == "ok", fmt.Sprint(reps)
	})
	return s
}

// URL returns redis-sentinel://addr?master=SentinelMaster as
// internal/config reads it.
func (s *Sentinel) URL() string { return "redis-sentinel://" + s.Addr + "?master=" + SentinelMaster }

// ConnOpt returns asynq connection options through the Sentinel.
func (s *Sentinel) ConnOpt() asynq.RedisFailoverClientOpt {
	return asynq.RedisFailoverClientOpt{MasterName: SentinelMaster, SentinelAddrs: []string{s.Addr}}
}

// Failover moves the master role to the replica without losing an
// acknowledged write, as Redis's own FAILOVER command does it: pause writes
// on the master, wait until the replica has every byte, then SENTINEL
// FAILOVER, point the old master at the new one and lift the pause. Clients
// blocked on the old master get their connections killed (by Sentinel) or
// READONLY, and go-redis's failover client follows +switch-master. Master
// and Replica are swapped when it returns.
func (s *Sentinel) Failover(ctx context.Context) {
	s.tb.Helper()
	old, next := s.Master, s.Replica
	oc := redis.NewClient(&redis.Options{Addr: old.Addr})
	defer oc.Close()
	if err := oc.Do(ctx, "CLIENT", "PAUSE", "20000", "WRITE").Err(); err != nil {
		s.tb.Fatalf("redistest: pause writes on %s: %v", old.Addr, err)
	}
	waitFor(s.tb, 20*time.Second, "replica caught up", func() (bool, string) {
		m, r := infoField(ctx, old.Addr, "master_repl_offset"), infoField(ctx, next.Addr, "master_repl_offset")
		return m != "" && m == r, "master " + m + ", replica " + r
	})
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer sc.Close()
	if err := sc.Failover(ctx, SentinelMaster).Err(); err != nil {
		s.tb.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	waitFor(s.tb, 20*time.Second, "sentinel switched the master", func() (bool, string) {
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		return err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(next.Port), fmt.Sprint(addr, err)
	})
	waitFor(s.tb, 20*time.Second, "new master writable", func() (bool, string) {
		info := infoOf(ctx, next.Addr, "replication")
		return strings.Contains(info, "role:master"), info
	})
	if err := oc.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(next.Port)).Err(); err != nil {
		s.tb.Fatalf("redistest: REPLICAOF on the old master: %v", err)
	}
	if err := oc.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		s.tb.Fatalf("redistest: unpause %s: %v", old.Addr, err)
	}
	s.Master, s.Replica = next, old
}

// infoOf returns one INFO section of the server at addr ("" on error).
func infoOf(ctx context.Context, addr, section string) string {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	s, _ := c.Info(ctx, section).Result()
	return s
}

// infoField returns one field of INFO replication at addr.
func infoField(ctx context.Context, addr, field string) string {
	for _, line := range strings.Split(infoOf(ctx, addr, "replication"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// waitFor polls cond until it holds or fails tb after d with what cond last
// reported.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: %s: not after %s: %s", what, d, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
