package fake_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// client returns a real track.Client aimed at srv.
func client(t testing.TB, srv *fake.Server, cfg track.Config) *track.Client {
	t.Helper()
	cfg.BaseURL = srv.URL
	if cfg.SiteID == "" {
		cfg.SiteID, cfg.APIKey = testSite, testKey
	}
	c, err := track.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestRealClient(t *testing.T) {
	t.Parallel()
	creds := map[string]string{testSite: testKey}

	t.Run("V1CallsAreRecordedAsTheirV2Ops", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Credentials: creds})
		c := client(t, srv, track.Config{})
		ctx := t.Context()
		require.NoError(t, c.Identify(ctx, "u1", map[string]any{"plan": "pro", "_timestamp": 1700000000}))
		require.NoError(t, c.Track(ctx, "a@b.c", track.Event{Name: "buy", ID: ulid1, Timestamp: 1700000000, Data: map[string]any{"n": 1}}))
		require.NoError(t, c.TrackAnonymous(ctx, "anon-1", track.Event{Name: "/home", Type: "page"}))
		require.NoError(t, c.Suppress(ctx, "cio_x1"))
		require.NoError(t, c.Unsuppress(ctx, "cio_x1"))
		require.NoError(t, c.Delete(ctx, "u/2"))
		require.NoError(t, c.AddDevice(ctx, "u1", track.V1Device{ID: "tok", Platform: "ios", LastUsed: 1700000000}))
		require.NoError(t, c.DeleteDevice(ctx, "u1", "tok/1"))
		require.NoError(t, c.Merge(ctx, track.Identifiers{ID: "a"}, track.Identifiers{Email: "b@c.d"}))

		var got []track.Op
		for _, r := range srv.Requests() {
			require.Equal(t, http.StatusOK, r.Status, r.Path)
			got = append(got, r.Ops...)
		}
		id := func(s string) *track.Identifiers { return &track.Identifiers{ID: s} }
		want := []track.Op{
			{Type: "person", Identifiers: id("u1"), Action: track.ActionIdentify, Timestamp: 1700000000, Attributes: map[string]any{"plan": "pro"}},
			{Type: "person", Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionEvent, Name: "buy", ID: ulid1,
				Timestamp: 1700000000, Attributes: map[string]any{"n": json.Number("1")}},
			{Type: "person", Identifiers: &track.Identifiers{AnonymousID: "anon-1"}, Action: track.ActionPage, Name: "/home"},
			{Type: "person", Identifiers: &track.Identifiers{CioID: "x1"}, Action: track.ActionSuppress},
			{Type: "person", Identifiers: &track.Identifiers{CioID: "x1"}, Action: track.ActionUnsuppress},
			{Type: "person", Identifiers: id("u/2"), Action: track.ActionDelete},
			{Type: "person", Identifiers: id("u1"), Action: track.ActionAddDevice, Device: &track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000}},
			{Type: "person", Identifiers: id("u1"), Action: track.ActionDeleteDevice, Device: &track.Device{Token: "tok/1"}},
			{Type: "person", Action: track.ActionMerge, Primary: id("a"), Secondary: &track.Identifiers{Email: "b@c.d"}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("ops (-want +got):\n%s", diff)
		}
		require.EqualValues(t, 9, srv.Ledger().UniqueOps)
	})
	t.Run("BatchAndEntityAreAccepted", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Credentials: creds})
		c := client(t, srv, track.Config{})
		ev, id := event("u1", "buy", ulid1, map[string]any{"n": 1}), identify("u2", map[string]any{"plan": "pro"})
		require.NoError(t, c.Batch(t.Context(), []*track.Op{&ev, &id}))
		sup := track.Op{Identifiers: &track.Identifiers{ID: "u3"}, Action: track.ActionSuppress}
		require.NoError(t, c.Entity(t.Context(), &sup))
		l := srv.Ledger()
		require.EqualValues(t, 3, l.OpsAccepted)
		require.Equal(t, map[string]int64{"event": 1, "identify": 1, "suppress": 1}, l.OpsByAction)
		require.Equal(t, 2, l.MaxOpsPerRequest)
	})
	t.Run("ARetriedBatchRepeatsIDsWithoutDuplicates", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Credentials: creds})
		c := client(t, srv, track.Config{})
		ev := event("u1", "buy", ulid1, nil)
		enc, err := track.EncodeOp(&ev)
		require.NoError(t, err)
		for range 3 {
			require.NoError(t, c.BatchEncoded(t.Context(), [][]byte{enc}))
		}
		require.Equal(t, dedupe{3, 1, 0, 2}, dedupeOf(srv.Ledger().WorkspaceLedger))
	})
	t.Run("PoisonOpIsABatchErrorTheRestAccepted", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Credentials: creds, Faults: fake.Faults{RejectAttribute: "poison"}})
		c := client(t, srv, track.Config{})
		a, b, d := identify("u1", nil), identify("u2", map[string]any{"poison": 1}), identify("u3", nil)
		err := c.Batch(t.Context(), []*track.Op{&a, &b, &d})
		var be *track.BatchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, http.StatusMultiStatus, be.StatusCode)
		require.Equal(t, []track.ItemError{{Index: 1, Reason: fake.ReasonRejected, Field: "attributes.poison",
			Message: "rejected by the fake's reject_attribute fault"}}, be.Items)
		require.EqualValues(t, 2, srv.Ledger().OpsAccepted)
	})
	t.Run("ErrorsMapToTheClientsClasses", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name    string
			opts    fake.Options
			cfg     track.Config
			wantErr error
			check   func(t *testing.T, err error)
		}{
			{name: "WrongKeyIsUnauthorized", opts: fake.Options{Credentials: creds},
				cfg: track.Config{SiteID: testSite, APIKey: "wrong"}, wantErr: track.ErrUnauthorized},
			{name: "DownIsServerError", opts: fake.Options{Faults: fake.Faults{Down: true}}, wantErr: track.ErrServer},
			{name: "Bare429HasNoRetryAfter", opts: fake.Options{Faults: fake.Faults{Storm429: true}}, wantErr: track.ErrRateLimited,
				check: func(t *testing.T, err error) {
					_, ok := track.RetryAfter(err)
					require.False(t, ok)
				}},
			{name: "429RetryAfterReachesTheClient", opts: fake.Options{RetryAfter: true, Faults: fake.Faults{Storm429: true}}, wantErr: track.ErrRateLimited,
				check: func(t *testing.T, err error) {
					d, ok := track.RetryAfter(err)
					require.True(t, ok)
					require.Equal(t, time.Second, d)
				}},
			{name: "ClosedConnectionIsTransportError", opts: fake.Options{Faults: fake.Faults{CloseConnection: 1}}, wantErr: track.ErrTransport},
			{name: "LatencyPastTheTimeoutIsATimeout", opts: fake.Options{Faults: fake.Faults{Latency: time.Hour}},
				cfg: track.Config{Timeout: 100 * time.Millisecond}, wantErr: track.ErrTransport,
				check: func(t *testing.T, err error) {
					var te *track.TransportError
					require.ErrorAs(t, err, &te)
					require.True(t, te.Timeout)
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				srv := start(t, tc.opts)
				c := client(t, srv, tc.cfg)
				op := identify("u1", nil)
				err := c.Batch(context.Background(), []*track.Op{&op})
				require.ErrorIs(t, err, tc.wantErr)
				if tc.check != nil {
					tc.check(t, err)
				}
				require.Zero(t, srv.Ledger().OpsAccepted)
			})
		}
	})
	t.Run("InvalidOpNeverReachesTheFake", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		c := client(t, srv, track.Config{})
		bad := track.Op{Action: track.ActionIdentify}
		require.True(t, errors.Is(c.Batch(t.Context(), []*track.Op{&bad}), track.ErrInvalidOp))
		require.Zero(t, srv.Ledger().Requests)
	})
}
