package faults_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// The workspace every scenario delivers to.
const (
	siteID    = "fault-site"
	apiKey    = "fault-key-7c1e"
	workspace = producer.DefaultWorkspace
	// budget is CIOQ_RATE_LIMIT of every worker: requests/s shared by the
	// fleet. The limiter's burst is then ceil(budget/10).
	budget      = 40
	budgetBurst = 4
	// realLimit is the fake's own limit: Customer.io's fair use per
	// workspace, above the budget.
	realLimit = 100
)

// buildCioq builds the cioq binary once for the whole suite.
func buildCioq(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the fault suite builds cmd/cioq with the go tool")
	bin := filepath.Join(t.TempDir(), "cioq")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/cioq/cioq/cmd/cioq")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/cioq: %s", out)
	return bin
}

// clusterOptions shape one scenario's processes.
type clusterOptions struct {
	// appendOnly runs Redis with AOF everysec (scenarios that kill Redis).
	appendOnly bool
	// fakeRate is the fake's real limit; zero means realLimit.
	fakeRate float64
	// faults are active in the fake from the start.
	faults fake.Faults
	// env are extra CIOQ_* settings for the workers.
	env map[string]string
}

// cluster is one scenario's world: a private Redis, the fake Track API, and
// the worker processes.
type cluster struct {
	t       *testing.T
	bin     string
	dir     string
	redis   *redistest.Server
	fake    *fake.Server
	rdb     *redis.Client
	insp    *asynq.Inspector
	dlq     *worker.DeadLetters
	opts    clusterOptions
	workers []*proc
	nProcs  int
}

func newCluster(t *testing.T, bin string, o clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: bin, dir: t.TempDir(), opts: o}
	c.redis = redistest.StartServer(t, redistest.ServerOptions{AppendOnly: o.appendOnly})
	c.fake = stacktest.Fake(t, fake.Options{
		Credentials:   map[string]string{siteID: apiKey},
		RateLimit:     cmp.Or(o.fakeRate, realLimit),
		Faults:        o.faults,
		RequestLog:    50_000,
		RequestLogOps: 400_000,
	})
	c.rdb = redis.NewClient(&redis.Options{Addr: c.redis.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.rdb.Close() })
	c.insp = asynq.NewInspector(c.connOpt())
	t.Cleanup(func() { _ = c.insp.Close() })
	c.dlq = worker.NewDeadLetters(c.rdb, worker.DeadLetterConfig{Prefix: "cioq:"})
	// Workers go first at cleanup (cleanups run last-in first-out).
	t.Cleanup(func() {
		for _, w := range c.workers {
			w.kill()
		}
	})
	return c
}

func (c *cluster) connOpt() asynq.RedisClientOpt { return asynq.RedisClientOpt{Addr: c.redis.Addr} }

func (c *cluster) redisURL() string { return "redis://" + c.redis.Addr + "/0" }

// producer returns an in-process producer on the cluster's Redis; mod, when
// given, changes its configuration.
func (c *cluster) producer(spoolDir string, mod ...func(*producer.Config)) *producer.Producer {
	c.t.Helper()
	cfg := producer.Config{Redis: c.connOpt()}
	if spoolDir != "" {
		cfg.Spool = producer.SpoolConfig{Dir: spoolDir}
	}
	for _, m := range mod {
		m(&cfg)
	}
	return stacktest.NewProducer(c.t, cfg)
}

// baseEnv is the environment of every cioq process: the test's own minus
// anything that would point cioq elsewhere.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CIOQ_") || strings.HasPrefix(k, "REDIS_") || strings.HasPrefix(k, "CUSTOMERIO_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// workerEnv is the configuration of a worker process: short timeouts so a
// scenario runs in seconds, the documented variables only.
func (c *cluster) workerEnv(key string) []string {
	settings := map[string]string{
		"REDIS_URL":                        c.redisURL(),
		"CUSTOMERIO_SITE_ID":               siteID,
		"CUSTOMERIO_TRACK_API_KEY":         key,
		"CUSTOMERIO_TRACK_URL":             c.fake.URL,
		"CIOQ_RATE_LIMIT":                  strconv.Itoa(budget),
		"CIOQ_WORKER_CONCURRENCY":          "300",
		"CIOQ_WORKER_DEFAULT_SERVERS":      "1",
		"CIOQ_WORKER_RETRY_BASE":           "200ms",
		"CIOQ_WORKER_RETRY_CAP":            "3s",
		"CIOQ_WORKER_REQUEST_TIMEOUT":      "1s",
		"CIOQ_WORKER_SHUTDOWN_TIMEOUT":     "10s",
		"CIOQ_IDEMPOTENCY_CLAIM_TTL":       "5s",
		"CIOQ_BREAKER_OPEN_TIMEOUT":        "2s",
		"CIOQ_BATCH_MAX_OPS":               "50",
		"CIOQ_LOG_LEVEL":                   "warn",
		"CIOQ_WORKER_CRITICAL_CONCURRENCY": "20",
	}
	for k, v := range c.opts.env {
		settings[k] = v
	}
	env := baseEnv()
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	return env
}

// proc is one cioq process the test started.
type proc struct {
	name string
	addr string // worker: host:port of its HTTP listener
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startWorkers starts n worker processes with the right API key.
func (c *cluster) startWorkers(n int) {
	c.t.Helper()
	for range n {
		c.startWorker(apiKey)
	}
}

// startWorker starts one `cioq worker` process using key and waits until it
// is ready (/readyz).
func (c *cluster) startWorker(key string) *proc {
	c.t.Helper()
	c.nProcs++
	p := c.startProc(fmt.Sprintf("worker-%d", c.nProcs), c.workerEnv(key), "worker", "--monitoring=false")
	c.workers = append(c.workers, p)
	return p
}

// startProc starts `cioq <args...> --addr <free port>` with env as name and
// waits until its /readyz answers 200. It is killed at cleanup.
func (c *cluster) startProc(name string, env []string, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(c.t)))}
	p.log = filepath.Join(c.dir, p.name+".log")
	lf, err := os.Create(p.log)
	require.NoError(c.t, err)
	p.cmd = exec.Command(c.bin, append(args, "--addr", p.addr)...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	require.NoError(c.t, p.cmd.Start())
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		_ = lf.Close()
		close(p.done)
	}()
	c.t.Cleanup(p.kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			c.t.Fatalf("%s exited before it was ready: %v\n%s", p.name, p.err, p.tail())
		default:
		}
		if resp, err := http.Get("http://" + p.addr + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready after 30s\n%s", p.name, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running returns the workers still running.
func (c *cluster) running() []*proc {
	var out []*proc
	for _, p := range c.workers {
		if !p.exited() {
			out = append(out, p)
		}
	}
	return out
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (graceful: in-flight batches finish or go back) and
// waits; past 30 s it kills.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Errorf("%s did not stop within 30s of SIGTERM\n%s", p.name, p.tail())
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// tail returns the end of the process's log.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// health reads the worker's /health/customerio.
func (p *proc) health() (worker.Health, int, error) {
	var h worker.Health
	resp, err := http.Get("http://" + p.addr + "/health/customerio")
	if err != nil {
		return h, 0, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&h)
	return h, resp.StatusCode, err
}

// checkLogs fails the test when a worker logged a panic or a fatal asynq
// error: the suite counts outcomes, but a crash is a bug even when nothing
// was lost.
func (c *cluster) checkLogs() {
	c.t.Helper()
	for _, p := range c.workers {
		b, _ := os.ReadFile(p.log)
		if bytes.Contains(b, []byte("panic:")) || bytes.Contains(b, []byte("fatal=true")) {
			c.t.Errorf("%s crashed:\n%s", p.name, p.tail())
		}
	}
}

// queued counts tasks still open (pending, active, scheduled, retry,
// aggregating) and archived, over every queue (the lanes, and any bulk
// queue). ok is false when Redis did not answer.
func (c *cluster) queued() (open, archived int, ok bool) {
	queues, err := c.insp.Queues()
	if err != nil {
		return 0, 0, false
	}
	queues = append(queues, task.QueueCritical, task.QueueDefault)
	slices.Sort(queues)
	for _, q := range slices.Compact(queues) {
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			if strings.Contains(err.Error(), "does not exist") {
				continue
			}
			return 0, 0, false
		}
		open += info.Pending + info.Active + info.Scheduled + info.Retry + info.Aggregating
		archived += info.Archived
	}
	return open, archived, true
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
