package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// importSummary is `cioq import --json`'s summary.
type importSummary struct {
	Read     int `json:"read"`
	Enqueued int `json:"enqueued"`
	Invalid  []struct {
		Line  int    `json:"line"`
		Error string `json:"error"`
	} `json:"invalid"`
}

// scenarioPoison: bad input at every door. The producer refuses an
// oversize attribute, invalid UTF-8, an unknown action and an oversize
// event name with track.ErrInvalidOp (nothing queued); `cioq import` skips
// bad JSON, an unknown action, an oversize attribute and invalid UTF-8,
// lists each line and exits 1, and queues the good lines; one op the fake
// rejects permanently is dead-lettered with its reason while the ops in its
// batch are accepted in that same request.
func scenarioPoison(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{faults: fake.Faults{RejectAttribute: "poison"}})
	c.startWorkers(2)
	p := c.producer("")
	f := newFeed("s10")
	ctx := context.Background()
	wait := f.goStream(ctx, p, 0, 1000, 500)

	refused := 0
	for name, enqueue := range map[string]func() (producer.Result, error){
		"oversize attribute": func() (producer.Result, error) {
			return p.Identify(ctx, "s10-big", map[string]any{"bio": strings.Repeat("x", 1001)})
		},
		"invalid UTF-8": func() (producer.Result, error) {
			return p.Identify(ctx, "s10-utf", map[string]any{"name": "caf\xe9"})
		},
		"unknown action": func() (producer.Result, error) {
			return p.Enqueue(ctx, producer.Op{Op: track.Op{Action: "frobnicate", Identifiers: &track.Identifiers{ID: "s10-act"}}})
		},
		"oversize event name": func() (producer.Result, error) {
			return p.Track(ctx, "s10-name", strings.Repeat("n", 101), nil)
		},
	} {
		_, err := enqueue()
		require.ErrorIs(t, err, track.ErrInvalidOp, "%s: a typed error, nothing queued", name)
		refused++
	}

	poison := producer.Op{Key: "s10-poison", Op: track.Op{Action: track.ActionEvent, Name: "fault_event",
		Identifiers: &track.Identifiers{ID: "s10-p1"}, Attributes: map[string]any{"seq": "s10-poison", "poison": true}}}
	_, err := p.Enqueue(ctx, poison)
	require.NoError(t, err)
	f.add(poison.Key)

	sum, bad := runImport(t, c, f)
	require.NoError(t, wait())
	r := c.settle(f, time.Now(), 2*time.Minute)
	c.checkLogs()

	dls, err := c.deadLettered()
	require.NoError(t, err)
	require.Len(t, dls, 1)
	dl, ok := dls[poison.Key]
	require.True(t, ok, "the poison op is the one dead-lettered")
	require.Contains(t, dl.Reason, "batch_index")
	require.NotZero(t, dl.Status)
	l := r.ledger
	require.Equal(t, l.Requests, l.Accepted, "every request was answered 2xx: no other op waited for a retry")
	require.EqualValues(t, 1, l.OpsRejected)
	r.Note = fmt.Sprintf("%d ops refused at enqueue with track.ErrInvalidOp (oversize attribute, invalid UTF-8, unknown action, oversize name); "+
		"cioq import queued %d lines and listed %d bad ones (bad JSON, unknown action, oversize attribute, invalid UTF-8) with exit 1; "+
		"the op the fake rejects is dead-lettered (status %d, %q), the %d requests were all 2xx",
		refused, sum.Enqueued, bad, dl.Status, dl.Reason, l.Requests)
	return r
}

// runImport runs `cioq import --json` on a file of good and bad lines and
// checks that it queues the good ones and reports each bad one.
func runImport(t *testing.T, c *cluster, f *feed) (importSummary, int) {
	t.Helper()
	var lines [][]byte
	var good []string
	for i := range 200 {
		seq := fmt.Sprintf("%s-imp-%05d", f.run, i)
		good = append(good, seq)
		b, err := json.Marshal(map[string]any{"type": "person", "identifiers": map[string]string{"id": "s10-imp"},
			"action": "event", "name": "imported", "attributes": map[string]string{"seq": seq}, "key": seq})
		require.NoError(t, err)
		lines = append(lines, b)
		if i%50 == 25 {
			lines = append(lines, nil) // a bad line goes here
		}
	}
	badLines := [][]byte{
		[]byte(`{"type":"person","identifiers":{"id":"s10-x"},"action":`),
		[]byte(`{"type":"person","identifiers":{"id":"s10-x"},"action":"frobnicate"}`),
		[]byte(`{"type":"person","identifiers":{"id":"s10-x"},"action":"identify","attributes":{"bio":"` + strings.Repeat("x", 1001) + `"}}`),
		[]byte("{\"type\":\"person\",\"identifiers\":{\"id\":\"s10-x\"},\"action\":\"identify\",\"attributes\":{\"name\":\"caf\xe9\"}}"),
	}
	var want []int
	var buf bytes.Buffer
	k := 0
	for n, l := range lines {
		if l == nil {
			l = badLines[k]
			k++
			want = append(want, n+1)
		}
		buf.Write(l)
		buf.WriteByte('\n')
	}
	require.Equal(t, len(badLines), k)
	path := filepath.Join(t.TempDir(), "ops.jsonl")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))

	cmd := exec.Command(c.bin, "import", "--json", path)
	cmd.Env = append(baseEnv(), "REDIS_URL="+c.redisURL())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee) && ee.ExitCode() == 1, "cioq import exits 1 on invalid lines: %v\n%s", err, stderr.String())
	var sum importSummary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum), "%s", stdout.String())
	require.Equal(t, len(good), sum.Enqueued)
	var got []int
	for _, inv := range sum.Invalid {
		got = append(got, inv.Line)
		require.NotEmpty(t, inv.Error)
	}
	require.Equal(t, want, got, "every bad line is listed with its number")
	f.add(good...)
	return sum, len(got)
}

// scenarioUnauthorized: the workers run with a wrong API key. Customer.io
// answers 401; each worker pauses the workspace (no retry loop, nothing
// dead-lettered, no retry budget spent), /health/customerio says
// unauthorized; once workers with the right key run, every op goes out.
func scenarioUnauthorized(t *testing.T, bin string) row {
	c := newCluster(t, bin, clusterOptions{})
	bad := []*proc{c.startWorker("wrong-key"), c.startWorker("wrong-key")}
	p := c.producer("")
	f := newFeed("s11")
	require.NoError(t, f.stream(context.Background(), p, 0, 1000, 200))
	require.Eventually(t, func() bool {
		for _, w := range bad {
			h, code, err := w.health()
			if err == nil && code == http.StatusServiceUnavailable && h.Customerio.Unauthorized {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "/health/customerio says unauthorized")
	before := c.fake.Ledger()
	time.Sleep(10 * time.Second)
	after := c.fake.Ledger()
	window := after.Requests - before.Requests
	require.LessOrEqual(t, window, int64(4), "paused workers do not retry in a loop")
	open, archived, ok := c.queued()
	require.True(t, ok)
	require.Zero(t, archived)
	require.Equal(t, len(f.sentSeqs()), open, "every op waits in the queue")
	dls, err := c.deadLettered()
	require.NoError(t, err)
	require.Empty(t, dls, "a bad key dead-letters nothing")

	for _, w := range bad {
		w.stop(t)
	}
	c.startWorkers(2)
	recovered := time.Now()
	r := c.settle(f, recovered, 3*time.Minute)
	c.checkLogs()
	r.Note = fmt.Sprintf("%d requests answered 401 in all, %d in 10 s while paused; /health/customerio said unauthorized (503); "+
		"nothing dead-lettered; drain counts from the restart with the right key, the ops waiting out the 1 min pause they were deferred by",
		after.ClientErrors, window)
	return r
}
