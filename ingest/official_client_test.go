package ingest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	customerio "github.com/customerio/go-customerio/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/ingest"
	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// Workspace credentials whose standard base64 differs from the URL-safe
// base64 go-customerio v3 sends, so the test proves ingest reads both.
const (
	officialSite = "site>>>1"
	officialKey  = "key???~~~1"
)

// The official Go client, go-customerio v3, pointed at ingest with the
// workspace's credentials: every Track API call it offers is answered 200,
// queues the v2 op it means, and that op reaches the (fake) Track API.
func TestOfficialGoClient_EveryCallQueuesAndIsDelivered(t *testing.T) {
	t.Parallel()
	raw := officialSite + ":" + officialKey
	require.NotEqual(t, base64.StdEncoding.EncodeToString([]byte(raw)), base64.URLEncoding.EncodeToString([]byte(raw)))
	b := setup(t, func(c *ingest.Config) {
		c.Workspaces = []ingest.Workspace{{Name: wsName, SiteID: officialSite, APIKey: officialKey}}
	})
	cio := customerio.NewTrackClient(officialSite, officialKey, customerio.WithHTTPClient(b.srv.Client()),
		customerio.WithUserAgent("cioq-test"))
	cio.URL = b.srv.URL
	legacy := customerio.NewCustomerIO(officialSite, officialKey)
	legacy.URL, legacy.Client = b.srv.URL, b.srv.Client()

	ctx := context.Background()
	critLane, defLane := task.Lanes(wsName)
	id := func(s string) *track.Identifiers { return &track.Identifiers{ID: s} }
	person := func(ids *track.Identifiers, a track.Action) track.Op {
		return track.Op{Type: "person", Identifiers: ids, Action: a}
	}
	with := func(op track.Op, f func(*track.Op)) track.Op { f(&op); return op }
	tests := []struct {
		name      string
		call      func() error
		want      track.Op // ID and Timestamp checked apart
		wantQueue string
		wantTS    int64 // 0: stamped by the producer
	}{
		{"Identify", func() error {
			return cio.Identify("g1", map[string]any{"plan": "pro", "n": 1, "_timestamp": 1700000001})
		}, with(person(id("g1"), track.ActionIdentify), func(o *track.Op) {
			o.Attributes = map[string]any{"plan": "pro", "n": json.Number("1")}
		}), defLane, 1700000001},
		{"IdentifyCtxNilAttributes", func() error { return cio.IdentifyCtx(ctx, "g2@example.com", nil) },
			person(&track.Identifiers{Email: "g2@example.com"}, track.ActionIdentify), defLane, 0},
		{"NewCustomerIOIdentify", func() error { return legacy.Identify("cio_g3", map[string]any{"x": true}) },
			with(person(&track.Identifiers{CioID: "g3"}, track.ActionIdentify), func(o *track.Op) { o.Attributes = map[string]any{"x": true} }),
			defLane, 0},
		{"Track", func() error { return cio.Track("g4", "purchase", map[string]any{"amount": 9.5}) },
			with(person(id("g4"), track.ActionEvent), func(o *track.Op) {
				o.Name, o.Attributes = "purchase", map[string]any{"amount": json.Number("9.5")}
			}), defLane, 0},
		{"TrackCtxNilData", func() error { return cio.TrackCtx(ctx, "g5", "login", nil) },
			with(person(id("g5"), track.ActionEvent), func(o *track.Op) { o.Name = "login" }), defLane, 0},
		{"TrackAnonymous", func() error { return cio.TrackAnonymous("anon-g6", "viewed", map[string]any{"page": "/"}) },
			with(person(&track.Identifiers{AnonymousID: "anon-g6"}, track.ActionEvent), func(o *track.Op) {
				o.Name, o.Attributes = "viewed", map[string]any{"page": "/"}
			}), defLane, 0},
		{"TrackAnonymousCtx", func() error { return cio.TrackAnonymousCtx(ctx, "anon-g7", "clicked", nil) },
			with(person(&track.Identifiers{AnonymousID: "anon-g7"}, track.ActionEvent), func(o *track.Op) { o.Name = "clicked" }),
			defLane, 0},
		{"AddDeviceLastUsedInt64", func() error {
			return cio.AddDevice("g8", "tok-g8", "ios", map[string]any{"last_used": int64(1700000000), "app_version": "1.2"})
		}, with(person(id("g8"), track.ActionAddDevice), func(o *track.Op) {
			o.Device = &track.Device{Token: "tok-g8", Platform: "ios", LastUsed: 1700000000, Attributes: map[string]any{"app_version": "1.2"}}
		}), defLane, 0},
		{"AddDeviceCtxLastUsedFloat64", func() error {
			return cio.AddDeviceCtx(ctx, "g9", "tok-g9", "android", map[string]any{"last_used": float64(1700000000)})
		}, with(person(id("g9"), track.ActionAddDevice), func(o *track.Op) {
			o.Device = &track.Device{Token: "tok-g9", Platform: "android", LastUsed: 1700000000}
		}), defLane, 0},
		{"AddDeviceNoData", func() error { return cio.AddDevice("g10", "tok-g10", "ios", nil) },
			with(person(id("g10"), track.ActionAddDevice), func(o *track.Op) { o.Device = &track.Device{Token: "tok-g10", Platform: "ios"} }),
			defLane, 0},
		{"DeleteDevice", func() error { return cio.DeleteDevice("g8", "tok/g8") },
			with(person(id("g8"), track.ActionDeleteDevice), func(o *track.Op) { o.Device = &track.Device{Token: "tok/g8"} }), defLane, 0},
		{"DeleteDeviceCtx", func() error { return cio.DeleteDeviceCtx(ctx, "g9", "tok-g9") },
			with(person(id("g9"), track.ActionDeleteDevice), func(o *track.Op) { o.Device = &track.Device{Token: "tok-g9"} }), defLane, 0},
		{"MergeCustomers", func() error {
			return cio.MergeCustomers(customerio.Identifier{Type: customerio.IdentifierTypeID, Value: "g11"},
				customerio.Identifier{Type: customerio.IdentifierTypeEmail, Value: "g11@example.com"})
		}, track.Op{Type: "person", Action: track.ActionMerge, Primary: id("g11"), Secondary: &track.Identifiers{Email: "g11@example.com"}},
			defLane, 0},
		{"MergeCustomersCtx", func() error {
			return cio.MergeCustomersCtx(ctx, customerio.Identifier{Type: customerio.IdentifierTypeCioID, Value: "g12"},
				customerio.Identifier{Type: customerio.IdentifierTypeID, Value: "g13"})
		}, track.Op{Type: "person", Action: track.ActionMerge, Primary: &track.Identifiers{CioID: "g12"}, Secondary: id("g13")},
			defLane, 0},
		{"Delete", func() error { return cio.Delete("g14") }, person(id("g14"), track.ActionDelete), critLane, 0},
		{"DeleteCtx", func() error { return cio.DeleteCtx(ctx, "g15") }, person(id("g15"), track.ActionDelete), critLane, 0},
	}
	var want []track.Op
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.tasks(t)
			require.NoError(t, tt.call())
			got := b.newTasks(t, before)
			require.Len(t, got, 1)
			q := got[0]
			require.Equal(t, tt.wantQueue, q.queue)
			require.Equal(t, wsName, q.payload.Workspace)
			require.NotZero(t, q.op.Timestamp, "the producer stamps a timestamp")
			if tt.wantTS != 0 {
				require.Equal(t, tt.wantTS, q.op.Timestamp)
			}
			op := q.op
			op.ID, op.Timestamp = "", 0
			if diff := cmp.Diff(tt.want, op); diff != "" {
				t.Errorf("queued op (-want +got):\n%s", diff)
			}
		})
		want = append(want, tt.want)
	}

	// An anonymous "invite" event without anonymous_id has no v2 form: a
	// clear 400 the client reports, and nothing queued.
	t.Run("TrackAnonymousWithoutIDIsAClear400", func(t *testing.T) {
		before := b.tasks(t)
		err := cio.TrackAnonymous("", "invite", map[string]any{"recipient": "x@example.com"})
		var ce *customerio.CustomerIOError
		require.ErrorAs(t, err, &ce)
		require.Contains(t, ce.Error(), "400")
		require.Contains(t, ce.Error(), "anonymous_id")
		require.Empty(t, b.newTasks(t, before))
	})

	// The queued ops reach the Track API as they were queued.
	delivered := deliver(t, b, len(want))
	canon := func(ops []track.Op) []string {
		out := make([]string, len(ops))
		for i, op := range ops {
			op.ID, op.Timestamp = "", 0
			j, err := json.Marshal(op)
			require.NoError(t, err)
			out[i] = string(j)
		}
		slices.Sort(out)
		return out
	}
	if diff := cmp.Diff(canon(want), canon(delivered)); diff != "" {
		t.Errorf("ops delivered to the Track API (-want +got):\n%s", diff)
	}
}

// deliver runs a worker from b's database to a fake Track API until it has
// accepted n ops, and returns them.
func deliver(t *testing.T, b *bundle, n int) []track.Op {
	t.Helper()
	cio := stacktest.Fake(t, fake.Options{Credentials: map[string]string{"cio-site": "cio-key"}})
	startWorker(t, b, cio, func(c *worker.Config) { c.Concurrency, c.CriticalConcurrency = 50, 5 })
	accepted := func() []track.Op {
		var ops []track.Op
		for _, r := range cio.Requests() {
			if r.Status/100 == 2 {
				ops = append(ops, r.Ops...)
			}
		}
		return ops
	}
	require.Eventually(t, func() bool { return len(accepted()) >= n }, 60*time.Second, 20*time.Millisecond,
		"the fake Track API accepted %d of %d ops", len(accepted()), n)
	require.Eventually(t, func() bool { return len(b.tasks(t)) == 0 }, 10*time.Second, 20*time.Millisecond, "tasks left pending")
	ops := accepted()
	require.Len(t, ops, n, "no op twice")
	var bad []string
	for _, r := range cio.Requests() {
		if r.Status/100 != 2 {
			bad = append(bad, r.Method+" "+r.Path+" "+http.StatusText(r.Status))
		}
	}
	require.Empty(t, bad, "requests the fake refused: %s", strings.Join(bad, "; "))
	return ops
}
