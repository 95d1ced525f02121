package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// scenarioRetriesRunOut: ops get a retry budget of one (CIOQ_WORKER_MAX_RETRY=1
// in an application's producer). Customer.io answers 503 for 5 s, then 429
// to everything for 8 s. Ops that failed once wait out the 429s (a delay
// never spends retries); ops that fail twice go to cioq's dead-letter store
// with their reason. asynq archives nothing.
func scenarioRetriesRunOut(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{})
	c.startWorkers(2)
	p := c.producer("", func(cfg *producer.Config) { cfg.MaxRetry = 1 })
	f := newFeed("s12")
	wait := f.goStream(context.Background(), p, 0, 1500, 100) // 15 s of traffic
	time.Sleep(2 * time.Second)
	setFaults(t, c.fake, fake.Faults{Down: true})
	time.Sleep(5 * time.Second)
	setFaults(t, c.fake, fake.Faults{Storm429: true})
	time.Sleep(8 * time.Second)
	setFaults(t, c.fake, fake.Faults{})
	recovered := time.Now()
	require.NoError(t, wait())
	r := c.settle(f, recovered, 2*time.Minute)
	c.checkLogs()
	dls, err := c.deadLettered()
	require.NoError(t, err)
	for _, dl := range dls {
		require.Contains(t, dl.Reason, "retries exhausted", dl.OpID)
	}
	r.Note = fmt.Sprintf("%d requests answered 503 and %d answered 429; %d ops spent their one retry on 503s and were dead-lettered with "+
		"their reason (cioq's store, not asynq's archive); every other op waited out the 429s and was delivered",
		r.ledger.ServerErrors, r.ledger.RateLimited, r.DeadLettered)
	return r
}

// scenarioIngestRedisRestart: clients post v2 batches of 10 ops (without
// ids) to `cioq ingest` (no spool) and retry the same body until they get a
// 200; Redis is SIGKILLed and restarted 5 s later (longer than ingest's 3 s
// enqueue timeout, so some requests are answered 503 and posted again). A request is all or
// nothing and ingest retries it with the same op ids while Redis is away,
// so no op is queued twice however the clients retry.
func scenarioIngestRedisRestart(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{appendOnly: true})
	c.startWorkers(2)
	env := append(baseEnv(), "REDIS_URL="+c.redisURL(), "CUSTOMERIO_SITE_ID="+siteID,
		"CUSTOMERIO_TRACK_API_KEY="+apiKey, "CIOQ_LOG_LEVEL=warn")
	in := c.startProc("ingest", env, "ingest", "--write-timeout", "6s")
	f := newFeed("s13")
	const clients, batches, size = 4, 150, 10
	var retried, failed sync.Map
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			for b := range batches {
				start := (cl*batches + b) * size
				ops := make([]track.Op, size)
				for k := range ops {
					ops[k] = f.op(start + k).Op
					// Each client has people of its own: the order of one
					// person's ops is the order one client sent them.
					ops[k].Identifiers = &track.Identifiers{ID: fmt.Sprintf("s13-c%d-p%d", cl, (start+k)%25)}
					ops[k].Type, ops[k].Timestamp = "person", time.Now().Unix()
				}
				body, err := json.Marshal(map[string]any{"batch": ops})
				if err != nil {
					failed.Store(start, err.Error())
					return
				}
				for attempt := 0; ; attempt++ {
					status := postBatch(in.addr, body)
					if status == http.StatusOK {
						f.record(ops...)
						break
					}
					retried.Store(fmt.Sprint(start, "-", attempt), status)
					if attempt > 600 {
						failed.Store(start, fmt.Sprint("gave up after status ", status))
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	time.Sleep(4 * time.Second)
	c.redis.Kill()
	time.Sleep(5 * time.Second)
	c.redis.Start()
	recovered := time.Now()
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("batch %v: %v", k, v); return true })
	r := c.settle(f, recovered, 2*time.Minute)
	c.checkLogs()
	n := 0
	retried.Range(func(any, any) bool { n++; return true })
	r.Note = fmt.Sprintf("%d batches of %d ops without ids from %d clients; %d answers were not 200 during the restart and the "+
		"client posted the same body again (a 503 means none of its ops was queued); within its 3 s enqueue timeout ingest "+
		"tried each request again with the same op ids",
		clients*batches, size, clients, n)
	return r
}

// postBatch posts body to ingest's /api/v2/batch and returns the status (0
// when no answer came).
func postBatch(addr string, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v2/batch", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.SetBasicAuth(siteID, apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// scenarioPersonOrder: 40 people get identifies, events, deletes,
// suppresses and unsuppresses in a random order (2,000 ops) while 30% of
// requests fail with a 5xx. Critical and default ops travel in different
// lanes and retry at different times; at the end every person holds the
// state of the ops in the order they were enqueued (the suite checks it for
// every scenario), and the ops a later delete or suppress made obsolete were
// dropped, not sent.
func scenarioPersonOrder(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{faults: fake.Faults{ErrorRate: 0.3}})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s14")
	base := time.Now()
	f.gen = func(i int) producer.Op {
		rng := rand.New(rand.NewPCG(uint64(i), 14))
		seq := f.seq(i)
		op := track.Op{Identifiers: &track.Identifiers{ID: fmt.Sprintf("s14-p%d", rng.IntN(40))}}
		// A second of its own per op: two deletes of one person are two
		// ops, not one repeated (same content, same second) in the fake's
		// ledger.
		ts := base.Add(time.Duration(i) * time.Second)
		switch x := rng.IntN(100); {
		case x < 50:
			op.Action, op.Attributes = track.ActionIdentify, map[string]any{"seq": seq, "n": i}
		case x < 75:
			op.Action, op.Name, op.Attributes = track.ActionEvent, "fault_event", map[string]any{"seq": seq}
		case x < 85:
			op.Action = track.ActionDelete
		case x < 92:
			op.Action = track.ActionSuppress
		default:
			op.Action = track.ActionUnsuppress
		}
		return producer.Op{Op: op, Key: seq, Timestamp: ts}
	}
	require.NoError(t, f.stream(context.Background(), p, 0, 2000, 200))
	last := time.Now()
	r := c.settle(f, last, 3*time.Minute)
	c.checkLogs()
	r.Note = fmt.Sprintf("%d of %d requests answered 5xx; %d updates dropped as obsolete (a later delete or suppress of their "+
		"person, or queued while it was suppressed); every one of the 40 people ends in the state of the ops in enqueue order",
		r.ledger.ServerErrors, r.ledger.Requests, r.Obsolete)
	return r
}
