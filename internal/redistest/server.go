package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ServerOptions configures a private redis-server.
type ServerOptions struct {
	// AppendOnly turns on AOF with appendfsync everysec, so a SIGKILL loses at
	// most about one second of writes.
	AppendOnly bool
	// Args are more redis-server arguments ("--replicaof", "127.0.0.1",
	// "6380"), appended after cioq's own. Nil adds none.
	Args []string
}

// Server is a redis-server process owned by one test. It listens on a free
// loopback port and keeps its files in a temporary directory; it is killed at
// cleanup.
type Server struct {
	Addr string
	Port int

	tb   testing.TB
	dir  string
	opts ServerOptions
	cmd  *exec.Cmd
}

// StartServer starts a redis-server of the test's own. It fails the test when
// redis-server is not installed (`make test` installs it).
func StartServer(tb testing.TB, opts ServerOptions) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found in PATH (`make test` installs it): %v", err)
	}
	_ = bin
	s := &Server{tb: tb, dir: tb.TempDir(), opts: opts, Port: freePort(tb)}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	s.Start()
	tb.Cleanup(s.Kill)
	return s
}

// Start (re)starts the server on its port with its data directory.
func (s *Server) Start() {
	s.tb.Helper()
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--databases", "16", "--daemonize", "no",
		"--maxmemory-policy", "noeviction", "--logfile", filepath.Join(s.dir, "redis.log"),
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("redistest: start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.tb.Fatalf("redistest: redis-server on %s did not answer in 10s: %v\n%s", s.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_, _ = s.cmd.Process.Wait()
	s.cmd = nil
}

// Restart kills the server and starts it again on the same port and data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.Start()
}

// String names the server.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
