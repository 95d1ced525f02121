package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/nodetest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// plDelivery is ingest with a Pipelines key in front of a worker that
// delivers to the fake Track and Pipelines APIs.
type plDelivery struct {
	*bundle
	cdp   *cdpfake.Server
	track *fake.Server
	w     *worker.Worker
}

func setupDelivery(t *testing.T) *plDelivery {
	t.Helper()
	b := setup(t, withPipelines)
	cs := cdpfake.NewServer(cdpfake.Options{Keys: map[string]string{"cio-cdp-key": wsName}})
	t.Cleanup(cs.Close)
	tr := stacktest.Fake(t, fake.Options{Credentials: map[string]string{"cio-site": "cio-key"}})
	pl, err := cdp.NewClient(cdp.Config{APIKey: "cio-cdp-key", BaseURL: cs.URL, Timeout: 2 * time.Second})
	require.NoError(t, err)
	w := startWorker(t, b, tr, func(c *worker.Config) {
		c.KeyPrefix, c.RequestTimeout = b.prefix, 2*time.Second
		c.Workspaces[0].Sender = stacktest.Sender(t, tr.URL, "cio-site", "cio-key", 2*time.Second)
		c.Workspaces[0].Pipelines = pl
		c.Workspaces[0].Batch.MaxOps = 50
	})
	return &plDelivery{bundle: b, cdp: cs, track: tr, w: w}
}

// waitCalls waits until the fake Pipelines API accepted n unique calls.
func (d *plDelivery) waitCalls(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for d.cdp.Ledger().UniqueCalls < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls accepted after %s", d.cdp.Ledger().UniqueCalls, n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// arrived returns the calls the fake accepted, by messageId.
func (d *plDelivery) arrived() map[string]cdp.Call {
	out := map[string]cdp.Call{}
	for _, r := range d.cdp.Requests() {
		for _, c := range r.Calls {
			out[c.MessageID] = c
		}
	}
	return out
}

// Every call type, sent to ingest by cioq's own Pipelines client (strict
// mode, single-call paths and batches, each request sent twice as a client
// retrying after a lost answer) while the Pipelines API is down and then
// answers a 429 storm: every call reaches the fake exactly once, with the
// messageId and timestamp it was sent with; Track ops sent meanwhile are
// delivered too.
func TestPipelinesEndToEnd_EveryCallTypeExactlyOnceThroughAnOutageAndA429Storm(t *testing.T) {
	t.Parallel()
	d := setupDelivery(t)
	client, err := cdp.NewClient(cdp.Config{APIKey: cdpKey, BaseURL: d.srv.URL, Timeout: 5 * time.Second})
	require.NoError(t, err)
	trackClient := d.client(t, siteID, apiKey, nil)
	ctx := context.Background()

	require.NoError(t, d.cdp.SetFaults(cdpfake.Faults{Down: true}))
	type sentCall struct{ typ, event, ts string }
	sent := map[string]sentCall{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	const clients = 4
	errs := make(chan error, clients*32)
	for ci := range clients {
		wg.Go(func() {
			run := fmt.Sprintf("e2e%d", ci)
			at := cdp.FormatTimestamp(time.Date(2024, 1, 2, 3, 4, 5, ci*1_000_000, time.UTC))
			u, anon := run+"-u1", run+"-anon"
			dev := map[string]any{"device": map[string]any{"token": "tok-" + run}}
			calls := []*cdp.Call{
				{Type: cdp.TypeIdentify, UserID: u, Traits: map[string]any{"plan": "pro"}},
				{Type: cdp.TypeTrack, UserID: u, Event: "Purchase", Properties: map[string]any{"amount": 42}},
				{Type: cdp.TypePage, UserID: u, Name: "Pricing"},
				{Type: cdp.TypeScreen, AnonymousID: anon, Name: "Cart"},
				{Type: cdp.TypeGroup, UserID: u, GroupID: "acme-" + run},
				{Type: cdp.TypeAlias, UserID: u, PreviousID: anon},
				{Type: cdp.TypeTrack, UserID: u, Event: cdp.EventDeviceCreatedOrUpdated, Context: dev},
				{Type: cdp.TypeTrack, UserID: u, Event: cdp.EventDeviceDeleted, Context: dev},
				{Type: cdp.TypeTrack, UserID: u, Event: cdp.EventRelationshipDeleted, Properties: map[string]any{"objectId": "acme-" + run}},
				{Type: cdp.TypeTrack, UserID: run + "-u2", Event: cdp.EventUserSuppressed},
				{Type: cdp.TypeTrack, UserID: run + "-u2", Event: cdp.EventUserUnsuppressed},
				{Type: cdp.TypeTrack, UserID: run + "-u3", Event: cdp.EventUserDeleted},
			}
			for i, c := range calls {
				c.MessageID, c.Timestamp = fmt.Sprintf("%s-%02d", run, i), at
				mu.Lock()
				sent[c.MessageID] = sentCall{string(c.Type), c.Event, c.Timestamp}
				mu.Unlock()
			}
			// The first half one call a request on the single-call paths,
			// the rest in one batch; each request twice.
			for _, c := range calls[:6] {
				for range 2 {
					errs <- client.Send(ctx, c)
				}
			}
			for range 2 {
				errs <- client.Batch(ctx, calls[6:])
			}
			errs <- trackClient.Identify(ctx, run+"-t", map[string]any{"during": "outage"})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "ingest answers 200 once the calls are durable")
	}
	want := int64(len(sent))

	// The Pipelines API is down: nothing accepted, the Track op delivered.
	deadline := time.Now().Add(20 * time.Second)
	for d.track.Ledger().UniqueOps < clients {
		require.False(t, time.Now().After(deadline), "Track ops delivered during the Pipelines outage")
		time.Sleep(50 * time.Millisecond)
	}
	require.Zero(t, d.cdp.Ledger().CallsAccepted)
	require.Greater(t, d.cdp.Ledger().ServerErrors, int64(0))
	// Then a 429 storm, then recovery.
	require.NoError(t, d.cdp.SetFaults(cdpfake.Faults{Storm429: true}))
	for d.cdp.Ledger().RateLimited == 0 {
		require.False(t, time.Now().After(deadline.Add(20*time.Second)), "the storm answered 429")
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, d.cdp.SetFaults(cdpfake.Faults{}))
	d.waitCalls(t, want, 90*time.Second)
	time.Sleep(300 * time.Millisecond) // a late extra call would show now

	l := d.cdp.Ledger()
	require.Equal(t, want, l.UniqueCalls, "every call once")
	require.Zero(t, l.DuplicateCalls)
	require.Zero(t, l.ResentCalls, "no call accepted twice")
	require.Zero(t, l.Permissive)
	got := d.arrived()
	require.Len(t, got, len(sent))
	for id, s := range sent {
		c, ok := got[id]
		require.True(t, ok, "%s (%s %s) did not arrive", id, s.typ, s.event)
		require.Equal(t, s.ts, c.Timestamp, "%s: timestamp preserved", id)
		require.Equal(t, s.typ, string(c.Type))
		require.Equal(t, s.event, c.Event)
	}
	require.Empty(t, d.pending(t), "nothing left queued")
}

// Customer.io's Node SDK, unchanged, pointed at ingest by its host option:
// every call it sends reaches the fake Pipelines API once with its
// messageId and timestamp; with a wrong key it gets 401s and ingest queues
// nothing.
func TestNodeSDK_ThroughIngestEveryCallOnce(t *testing.T) {
	t.Parallel()
	dir := nodetest.Harness(t)
	d := setupDelivery(t)
	runID := fmt.Sprint(time.Now().UnixNano())
	sent := nodetest.Run(t, dir, nodetest.Env{Host: d.srv.URL, Key: cdpKey, RunID: runID})
	require.Len(t, sent, nodetest.Calls)
	d.waitCalls(t, int64(len(sent)), 60*time.Second)
	l := d.cdp.Ledger()
	require.EqualValues(t, len(sent), l.UniqueCalls)
	require.Zero(t, l.DuplicateCalls)
	got := d.arrived()
	for _, s := range sent {
		c, ok := got[s.MessageID]
		require.True(t, ok, "%s %s %s did not arrive", s.MessageID, s.Type, s.Event)
		require.Equal(t, s.Timestamp, c.Timestamp)
		require.Equal(t, s.Type, c.Type)
		require.Equal(t, s.Event, c.Event)
		require.Equal(t, s.UserID, c.UserID)
		lib, _ := c.Context["library"].(map[string]any)
		require.Equal(t, "@customerio/cdp-analytics-node", lib["name"])
	}
	fixed := got[runID+"-identify"]
	require.Equal(t, "2024-01-02T03:04:05.678Z", fixed.Timestamp, "a caller's timestamp is kept")

	cmd, cancel := nodetest.Command(t, dir, nodetest.Env{Host: d.srv.URL, Key: "wrong-key", RunID: "wrong"})
	defer cancel()
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the SDK reports the 401s as failed deliveries")
	require.True(t, strings.Contains(string(out), "401"), string(out))
	require.Empty(t, d.pending(t))
	status, _, _ := d.do(t, http.MethodGet, "/metrics", "", "", nil, nil)
	require.Equal(t, http.StatusOK, status)
}
