package track_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// TestClient_AgainstFake runs every call against the project's fake Track
// API, which checks paths, auth and bodies as the real API does.
func TestClient_AgainstFake(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(fake.Options{Credentials: map[string]string{testSite: testKey}})
	t.Cleanup(srv.Close)
	c, err := track.NewClient(track.Config{SiteID: testSite, APIKey: testKey, BaseURL: srv.URL + "/api/v1/"})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	ctx := t.Context()

	require.NoError(t, c.Identify(ctx, "u1", map[string]any{"plan": "pro", "_timestamp": 1700000000}))
	require.NoError(t, c.Track(ctx, "u1", track.Event{Name: "purchase", ID: "01HZX0000000000000000000AA", Timestamp: 1700000000, Data: map[string]any{"amount": 10}}))
	require.NoError(t, c.Track(ctx, "u1", track.Event{Name: "https://x/", Type: "page", ID: "01HZX0000000000000000000AB"}))
	require.NoError(t, c.TrackAnonymous(ctx, "anon-1", track.Event{Name: "viewed", ID: "01HZX0000000000000000000AC"}))
	require.NoError(t, c.AddDevice(ctx, "u1", track.V1Device{ID: "tok", Platform: "ios", LastUsed: 1700000000}))
	require.NoError(t, c.DeleteDevice(ctx, "u1", "tok"))
	require.NoError(t, c.Merge(ctx, track.Identifiers{ID: "u1"}, track.Identifiers{Email: "b@c.d"}))
	require.NoError(t, c.Suppress(ctx, "a@b.c"))
	require.NoError(t, c.Unsuppress(ctx, "a@b.c"))
	require.NoError(t, c.Delete(ctx, "cio_abc"))
	require.NoError(t, c.Entity(ctx, &track.Op{Identifiers: &track.Identifiers{ID: "u2"}, Action: track.ActionIdentify, Attributes: map[string]any{"a": 1}}))
	require.NoError(t, c.Batch(ctx, []*track.Op{
		{Identifiers: &track.Identifiers{ID: "u3"}, Action: track.ActionScreen, Name: "home", ID: "01HZX0000000000000000000AD"},
		{Identifiers: &track.Identifiers{ID: "u3"}, Action: track.ActionAddRelationships,
			Relationships: []json.RawMessage{json.RawMessage(`{"identifiers":{"object_type_id":"1","object_id":"acme"}}`)}},
	}))

	var got []string
	for _, r := range srv.Requests() {
		require.Equal(t, 200, r.Status, "%s %s", r.Method, r.Path)
		for _, op := range r.Ops {
			got = append(got, string(op.Action)+" "+op.Person().Key())
		}
	}
	require.Equal(t, []string{
		"identify id:u1", "event id:u1", "page id:u1", "event anonymous_id:anon-1", "add_device id:u1",
		"delete_device id:u1", "merge id:u1", "suppress email:a@b.c", "unsuppress email:a@b.c",
		"delete cio_id:abc", "identify id:u2", "screen id:u3", "add_relationships id:u3",
	}, got)

	t.Run("PartialBatchFailure", func(t *testing.T) {
		good := mustEncode(t, &track.Op{Identifiers: &track.Identifiers{ID: "u4"}, Action: track.ActionDelete})
		bad := []byte(`{"type":"person","action":"identify"}`) // no identifiers: only the fake catches it
		err := c.BatchEncoded(ctx, [][]byte{good, bad, good})
		var be *track.BatchError
		require.ErrorAs(t, err, &be)
		require.Len(t, be.Items, 1)
		require.Equal(t, 1, be.Items[0].Index)
	})
	t.Run("WrongKeyIsUnauthorized", func(t *testing.T) {
		wrong, err := track.NewClient(track.Config{SiteID: testSite, APIKey: "other", BaseURL: srv.URL})
		require.NoError(t, err)
		require.ErrorIs(t, wrong.Delete(ctx, "u1"), track.ErrUnauthorized)
	})
}

// A batch whose failed ops outnumber the fake's error list
// (track.MaxItemErrors) is an *APIError, its per-op outcome unknown; a
// smaller one lists every failed op.
func TestClient_BatchErrorListCutShortAgainstFake(t *testing.T) {
	t.Parallel()
	srv := fake.NewServer(fake.Options{Credentials: map[string]string{testSite: testKey}})
	t.Cleanup(srv.Close)
	c, err := track.NewClient(track.Config{SiteID: testSite, APIKey: testKey, BaseURL: srv.URL})
	require.NoError(t, err)
	empty := func(n int) [][]byte {
		ops := make([][]byte, n)
		for i := range ops {
			ops[i] = []byte(`{}`)
		}
		return ops
	}
	err = c.BatchEncoded(t.Context(), empty(track.MaxItemErrors))
	var be *track.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Items, track.MaxItemErrors)

	err = c.BatchEncoded(t.Context(), empty(track.MaxItemErrors+1))
	var ae *track.APIError
	require.ErrorAs(t, err, &ae)
	require.False(t, errors.As(err, &be), "not a *BatchError: the list is incomplete")
	require.ErrorIs(t, err, track.ErrInvalidRequest)
	require.Equal(t, 400, ae.StatusCode)
}
