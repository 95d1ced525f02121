package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track/fake"
)

// Every scenario follows one shape: start the processes, stream ops with
// unique content through the producer, provoke the fault while they flow,
// end it, and settle: count what the fake accepted and the dead-letter
// store holds against what cioq took.

// scenarioDown: Customer.io answers 503 to everything for 60 s while ops
// keep coming. The breaker opens (every worker honours the shared opening),
// ops wait in the queue with their retry budget intact, and all of them go
// out once it is back.
func scenarioDown(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s1")
	wait := f.goStream(context.Background(), p, 0, 3000, 46) // 65 s of traffic: ends with the outage
	time.Sleep(5 * time.Second)
	setFaults(t, c.fake, fake.Faults{Down: true})
	time.Sleep(5 * time.Second)
	requireCircuitOpen(t, c)
	time.Sleep(55 * time.Second)
	setFaults(t, c.fake, fake.Faults{})
	recovered := time.Now()
	require.NoError(t, wait())
	r := c.settle(f, recovered, 2*time.Minute)
	c.checkLogs()
	r.Note = fmt.Sprintf("%d requests answered 503 in 60 s: the open breaker, shared by both workers, held the rest back; /health/customerio said OPEN (503)",
		r.ledger.ServerErrors)
	return r
}

// requireCircuitOpen waits until a worker's /health/customerio reports an
// open circuit with status 503.
func requireCircuitOpen(t *testing.T, c *cluster) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, w := range c.running() {
			h, code, err := w.health()
			if err == nil && code == http.StatusServiceUnavailable && h.Customerio.CircuitState == "OPEN" {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "no worker reported an open circuit")
}

// scenarioErrorRate: 30% of requests fail with a random 5xx for the whole
// run. Failed batches are retried with backoff until accepted.
func scenarioErrorRate(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{faults: fake.Faults{ErrorRate: 0.3}})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s2")
	require.NoError(t, f.stream(context.Background(), p, 0, 2000, 200))
	last := time.Now()
	r := c.settle(f, last, 2*time.Minute)
	c.checkLogs()
	r.Note = fmt.Sprintf("%d of %d requests answered 5xx; the fault never ends, so drain counts from the last enqueue",
		r.ledger.ServerErrors, r.ledger.Requests)
	return r
}

// scenarioStorm: the fake's real limit drops to a quarter of the budget
// (10 req/s for a 40 req/s budget) with small batches, so the fleet wants
// more requests than Customer.io takes. 429s set a shared cool-down; ops
// go back without spending retry budget.
func scenarioStorm(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{
		faults: fake.Faults{RateLimit: fake.Rate(budget / 4)},
		env:    map[string]string{"CIOQ_BATCH_MAX_OPS": "10"},
	})
	c.startWorkers(3)
	p := c.producer("")
	f := newFeed("s3")
	require.NoError(t, f.stream(context.Background(), p, 0, 2000, 200))
	last := time.Now()
	r := c.settle(f, last, 3*time.Minute)
	c.checkLogs()
	l := r.ledger
	r.Note = fmt.Sprintf("fake limit %d req/s; %d of %d requests got 429 (%.1f%%); at most %d requests/s reached the fake; the fault never ends, drain counts from the last enqueue",
		budget/4, l.RateLimited, l.Requests, 100*float64(l.RateLimited)/float64(max(l.Requests, 1)), l.MaxReceivedPerSecond)
	return r
}

// scenarioSlow: for 30 s Customer.io answers after 2 s, beyond the 1 s
// client timeout. Timed-out requests are not processed by the fake (the
// client left); they count as failures, open the breaker, and are retried.
func scenarioSlow(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s4")
	wait := f.goStream(context.Background(), p, 0, 2000, 57) // 35 s of traffic: ends with the fault
	time.Sleep(5 * time.Second)
	setFaults(t, c.fake, fake.Faults{Latency: 2 * time.Second})
	time.Sleep(30 * time.Second)
	setFaults(t, c.fake, fake.Faults{})
	recovered := time.Now()
	require.NoError(t, wait())
	r := c.settle(f, recovered, 2*time.Minute)
	c.checkLogs()
	r.Note = fmt.Sprintf("%d requests abandoned by the client at its 1 s timeout (not processed)", r.ledger.Canceled)
	return r
}

// scenarioReset: 30% of connections are closed without an answer for the
// whole run: a network error, retried.
func scenarioReset(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{faults: fake.Faults{CloseConnection: 0.3}})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s5")
	require.NoError(t, f.stream(context.Background(), p, 0, 2000, 200))
	last := time.Now()
	r := c.settle(f, last, 2*time.Minute)
	c.checkLogs()
	r.Note = fmt.Sprintf("%d of %d connections closed without an answer; the fault never ends, drain counts from the last enqueue",
		r.ledger.Closed, r.ledger.Requests)
	return r
}

// scenarioRedisRestart: Redis (AOF, appendfsync everysec) is SIGKILLed while
// the producer enqueues and the workers deliver, and started again 2 s later
// on the same data. The workers and the producer reconnect by themselves;
// the producer's callers retry ErrUnavailable with the same key.
func scenarioRedisRestart(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{appendOnly: true})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s6")
	wait := f.goStream(context.Background(), p, 0, 2000, 100) // 20 s of traffic
	time.Sleep(12 * time.Second)
	c.redis.Kill()
	time.Sleep(2 * time.Second)
	c.redis.Start()
	recovered := time.Now()
	require.NoError(t, wait())
	r := c.settle(f, recovered, 2*time.Minute)
	require.Len(t, c.running(), 2, "the workers survived the restart")
	c.checkLogs()
	r.Note = fmt.Sprintf("%d enqueue calls answered ErrUnavailable during the restart and were retried with the same key; both workers reconnected on their own",
		f.unavailable)
	return r
}

// scenarioKillWorker: one of three workers is SIGKILLed with batches in
// flight. asynq gives its leased tasks to the others once the lease has
// expired (30 s) and the recoverer's 30 s cutoff passed; done-markers and
// claims keep each op single.
func scenarioKillWorker(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{faults: fake.Faults{Latency: 300 * time.Millisecond}})
	c.startWorkers(3)
	p := c.producer("")
	f := newFeed("s7")
	wait := f.goStream(context.Background(), p, 0, 3000, 300) // 10 s of traffic
	require.Eventually(t, func() bool { return c.fake.Ledger().OpsAccepted >= 600 }, 60*time.Second, 5*time.Millisecond)
	c.workers[0].kill()
	killed := time.Now()
	require.NoError(t, wait())
	r := c.settle(f, killed, 4*time.Minute)
	c.checkLogs()
	r.Note = "drain counts from the kill: the dead worker's leased tasks come back after asynq's 30 s lease + 30 s recovery cutoff"
	if r.Repeated > 0 {
		r.Note += fmt.Sprintf("; %d events were in flight at the kill and sent again under their original event id, which Customer.io drops", r.Repeated)
	}
	return r
}

// scenarioWorkersStopped: every worker is stopped (SIGTERM) for 30 s while
// the producer keeps enqueuing; new workers drain the backlog.
func scenarioWorkersStopped(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s8")
	wait := f.goStream(context.Background(), p, 0, 1750, 50) // 35 s of traffic: ends when new workers start
	time.Sleep(5 * time.Second)
	var wg sync.WaitGroup
	for _, w := range c.running() {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop(t) }()
	}
	wg.Wait()
	stopped := time.Now()
	time.Sleep(30 * time.Second)
	open, _, _ := c.queued()
	c.startWorkers(2)
	recovered := time.Now()
	require.NoError(t, wait())
	r := c.settle(f, recovered, 2*time.Minute)
	c.checkLogs()
	r.Note = fmt.Sprintf("%d ops queued up while no worker ran (%.0f s); drain counts from the new workers' start",
		open, recovered.Sub(stopped).Seconds())
	return r
}

// scenarioSpool: Redis is down for 20 s while the application keeps
// enqueuing; the producer's on-disk spool takes the ops (Enqueue never
// blocks the app) and replays them in order when Redis is back.
func scenarioSpool(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{appendOnly: true})
	c.startWorkers(2)
	p := c.producer(t.TempDir())
	f := newFeed("s9")
	wait := f.goStream(context.Background(), p, 0, 1500, 50) // 30 s of traffic: ends when Redis is back
	time.Sleep(10 * time.Second)
	c.redis.Kill()
	time.Sleep(20 * time.Second)
	c.redis.Start()
	recovered := time.Now()
	require.NoError(t, wait())
	require.Eventually(t, func() bool { return p.SpoolStats().Depth == 0 }, time.Minute, 50*time.Millisecond, "spool replayed")
	r := c.settle(f, recovered, 2*time.Minute)
	require.Len(t, c.running(), 2, "the workers survived the outage")
	c.checkLogs()
	st := p.SpoolStats()
	r.Note = fmt.Sprintf("%d ops went to the producer's spool while Redis was down (%d ErrUnavailable), %d replayed, %d corrupt",
		f.spooled, f.unavailable, st.Replayed, st.Dropped)
	require.Zero(t, f.unavailable, "with a spool the app never sees ErrUnavailable")
	require.Zero(t, st.Dropped)
	return r
}
