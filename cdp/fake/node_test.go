package fake_test

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/nodetest"
)

func TestNodeSDK_EveryCallArrivesExactlyOnceWithItsMessageIDAndTimestamp(t *testing.T) {
	t.Parallel()
	dir := nodetest.Harness(t)
	srv := start(t, fake.Options{Keys: map[string]string{"node-key": "node"}})
	runID := fmt.Sprint(time.Now().UnixNano())
	sent := nodetest.Run(t, dir, nodetest.Env{Host: srv.URL, Key: "node-key", RunID: runID})
	require.Len(t, sent, nodetest.Calls, "the harness sends 14 calls")

	l := srv.Ledger()
	w := l.PerWorkspace["node"]
	require.Equal(t, int64(len(sent)), w.UniqueCalls, "every call once")
	require.Zero(t, w.DuplicateCalls)
	require.Zero(t, w.ResentCalls)
	require.Zero(t, w.CallsDropped, "no call refused")
	require.Zero(t, w.Dropped)
	require.Equal(t, w.Requests, w.Permissive, "the SDK never sends X-Strict-Mode")
	require.Greater(t, w.Requests, int64(1), "5 calls per batch: the run spans several requests")
	require.Equal(t, map[string]int64{
		"identify": 2, "track": 2, "page": 1, "screen": 1, "group": 1, "alias": 1,
		cdp.EventDeviceCreatedOrUpdated: 1, cdp.EventDeviceDeleted: 1, cdp.EventRelationshipDeleted: 1,
		cdp.EventUserSuppressed: 1, cdp.EventUserUnsuppressed: 1, cdp.EventUserDeleted: 1,
	}, w.CallsByKind)

	got := map[string]cdp.Call{}
	for _, r := range srv.Requests() {
		require.Equal(t, cdp.BatchPath, r.Path, "the SDK posts to /v1/batch")
		require.False(t, r.Gzip, "the Node SDK does not gzip")
		for _, c := range r.Calls {
			_, dup := got[c.MessageID]
			require.False(t, dup, c.MessageID)
			got[c.MessageID] = c
		}
	}
	for _, s := range sent {
		c, ok := got[s.MessageID]
		require.True(t, ok, "call %s (%s %s) did not arrive", s.MessageID, s.Type, s.Event)
		require.Equal(t, s.Timestamp, c.Timestamp, "timestamp preserved")
		require.Equal(t, s.Type, c.Type)
		require.Equal(t, s.Event, c.Event)
		require.Equal(t, s.UserID, c.UserID)
		lib, _ := c.Context["library"].(map[string]any)
		require.Equal(t, "@customerio/cdp-analytics-node", lib["name"])
		require.Contains(t, c.Extra, "_metadata", "fields cdp does not name travel on")
	}
	fixed, ok := got[runID+"-identify"]
	require.True(t, ok, "a caller's messageId is kept")
	require.Equal(t, "2024-01-02T03:04:05.678Z", fixed.Timestamp, "a caller's timestamp is kept")

	user := fmt.Sprintf("node-%s-u1", runID)
	u, ok := srv.User("node", "id:"+user)
	require.True(t, ok)
	require.Equal(t, "pro", u.Traits["plan"])
	require.Equal(t, []string{fmt.Sprintf("node-%s-anon", runID)}, u.Aliases)
	other, _ := srv.User("node", fmt.Sprintf("id:node-%s-u2", runID))
	require.True(t, other.Deleted)
}

func TestNodeSDK_AWrongKeyIsAnErrorOnlyInStrictMode(t *testing.T) {
	t.Parallel()
	dir := nodetest.Harness(t)
	// The SDK sends no X-Strict-Mode: against the real API a wrong key is a
	// 200 that drops everything. A fake answering strictly shows the SDK
	// reports a 401 as a failed delivery (drive.js exits 1).
	srv := start(t, fake.Options{Keys: map[string]string{"node-key": "node"}, Strict: fake.StrictAlways})
	cmd, cancel := nodetest.Command(t, dir, nodetest.Env{Host: srv.URL, Key: "wrong", RunID: "wrong"})
	defer cancel()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, string(out))
	require.Equal(t, 1, ee.ExitCode(), string(out))
	require.Contains(t, string(out), "[401]")
	require.Zero(t, srv.Ledger().CallsAccepted)

	permissive := start(t, fake.Options{Keys: map[string]string{"node-key": "node"}})
	sent := nodetest.Run(t, dir, nodetest.Env{Host: permissive.URL, Key: "wrong", RunID: "permissive"})
	require.Len(t, sent, nodetest.Calls, "the SDK believes every call was delivered")
	l := permissive.Ledger()
	require.Zero(t, l.CallsAccepted, "... and none was")
	require.Equal(t, l.Requests, l.Dropped)
}
