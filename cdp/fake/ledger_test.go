package fake_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp/fake"
)

func TestLedger_UniqueDuplicateAndResent(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	post := func(calls ...string) {
		t.Helper()
		a := send(t, srv, req{path: "/v1/batch", body: batch(calls...)})
		require.Equal(t, http.StatusOK, a.Status, a.Body)
	}
	post(trackCall("u1", "a", "m1"), trackCall("u1", "b", "m2"))
	post(trackCall("u1", "a", "m1"))                                                                    // the same messageId: Customer.io drops it
	post(trackCall("u1", "a", "m3"))                                                                    // the same content under a new messageId: applied twice
	post(`{"type":"track","userId":"u1","event":"c"}`)                                                  // no messageId: unique by content
	post(`{"type":"track","userId":"u1","event":"c"}`)                                                  // ... and a duplicate the second time
	post(`{"type":"track","userId":"u1","event":"b","messageId":"m4","sentAt":"2024-01-01T00:00:00Z"}`) // sentAt is not content
	l := ws(srv)
	require.Equal(t, int64(3), l.UniqueCalls)
	require.Equal(t, int64(3), l.DuplicateCalls)
	require.Equal(t, int64(1), l.ResentCalls)
	require.Equal(t, l.UniqueCalls+l.DuplicateCalls+l.ResentCalls, l.CallsAccepted)
	require.Equal(t, int64(6), l.Accepted)
	require.Equal(t, 2, l.MaxCallsPerRequest)
	u, ok := srv.User(testWS, "id:u1")
	require.True(t, ok)
	require.Equal(t, int64(6), u.Events, "a resend changes nothing; duplicates count twice")
}

func TestLedger_CallsByKindNamesSemanticEvents(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	a := send(t, srv, req{path: "/v1/batch", body: batch(
		`{"type":"track","userId":"u1","event":"User Deleted","messageId":"d"}`,
		`{"type":"track","userId":"u1","event":"Device Created or Updated","context":{"device":{"token":"t"}},"messageId":"dev"}`,
		trackCall("u1", "purchase", "p"),
	)})
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Equal(t, map[string]int64{"User Deleted": 1, "Device Created or Updated": 1, "track": 1}, ws(srv).CallsByKind)
}

func TestLedger_MaxRequestsPerSecondIsASlidingWindow(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := start(t, fake.Options{Keys: keys(), Now: clk.Now})
	for i := range 5 {
		require.Equal(t, http.StatusOK, send(t, srv, req{path: "/v1/track", body: `{"userId":"u1","event":"e` + string(rune('a'+i)) + `"}`}).Status)
		clk.Advance(300 * time.Millisecond)
	}
	l := ws(srv)
	require.Equal(t, 4, l.MaxRequestsPerSecond, "0, 0.3, 0.6 and 0.9 s fall in one second")
	require.Equal(t, 4, l.MaxReceivedPerSecond)
	require.Equal(t, time.Unix(1_700_000_000, 0), l.FirstAccept)
	require.Equal(t, time.Unix(1_700_000_000, 0).Add(1200*time.Millisecond), l.LastAccept)
}

func TestUsers_TraitsMergeByTimestampWhateverTheArrivalOrder(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	a := send(t, srv, req{path: "/v1/batch", body: batch(
		`{"type":"identify","userId":"u1","messageId":"i3","timestamp":"2024-01-01T00:00:03Z","traits":{"plan":"gold","seats":3}}`,
		`{"type":"identify","userId":"u1","messageId":"i1","timestamp":"2024-01-01T00:00:01Z","traits":{"plan":"free","email":"a@b.c"}}`,
		`{"type":"identify","userId":"u1","messageId":"i2","timestamp":"2024-01-01T01:00:02+01:00","traits":{"plan":"pro"}}`,
	)})
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	u, ok := srv.User(testWS, "id:u1")
	require.True(t, ok)
	require.Equal(t, map[string]any{"plan": "gold", "seats": json.Number("3"), "email": "a@b.c"}, u.Traits)
	require.Equal(t, int64(3), u.Calls)
}

func TestUsers_DeleteSuppressDevicesGroupsAndAliases(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	post := func(calls ...string) {
		t.Helper()
		a := send(t, srv, req{path: "/v1/batch", body: batch(calls...)})
		require.Equal(t, http.StatusOK, a.Status, a.Body)
	}
	post(
		`{"type":"identify","userId":"u1","timestamp":"2024-01-01T00:00:01Z","traits":{"plan":"pro"}}`,
		`{"type":"track","userId":"u1","event":"Device Created or Updated","timestamp":"2024-01-01T00:00:01Z","context":{"device":{"token":"t1","type":"ios"}}}`,
		`{"type":"track","userId":"u1","event":"Device Created or Updated","timestamp":"2024-01-01T00:00:01Z","context":{"device":{"token":"t2"}}}`,
		`{"type":"track","userId":"u1","event":"Device Deleted","timestamp":"2024-01-01T00:00:02Z","context":{"device":{"token":"t2"}}}`,
		`{"type":"group","userId":"u1","groupId":"acme","timestamp":"2024-01-01T00:00:01Z","traits":{"object_type_id":"2"}}`,
		`{"type":"group","userId":"u1","groupId":"beta","timestamp":"2024-01-01T00:00:01Z"}`,
		`{"type":"track","userId":"u1","event":"Relationship Deleted","timestamp":"2024-01-01T00:00:02Z","properties":{"objectId":"beta"}}`,
		`{"type":"alias","userId":"u1","previousId":"anon-7","timestamp":"2024-01-01T00:00:02Z"}`,
		`{"type":"page","userId":"u1","name":"Home","timestamp":"2024-01-01T00:00:02Z"}`,
	)
	u, _ := srv.User(testWS, "id:u1")
	require.Equal(t, fake.UserState{
		Traits: map[string]any{"plan": "pro"}, Events: 1, Devices: []string{"t1"},
		Groups: []string{"2:acme"}, Aliases: []string{"anon-7"}, Calls: 9,
	}, u)

	// A delete removes what is older; an older identify arriving late does
	// not bring it back; a newer one re-creates the person.
	post(`{"type":"track","userId":"u1","event":"User Deleted","timestamp":"2024-01-01T00:00:05Z"}`,
		`{"type":"identify","userId":"u1","timestamp":"2024-01-01T00:00:04Z","traits":{"late":true}}`)
	u, _ = srv.User(testWS, "id:u1")
	require.True(t, u.Deleted)
	require.Nil(t, u.Traits)
	require.Nil(t, u.Devices)
	post(`{"type":"identify","userId":"u1","timestamp":"2024-01-01T00:00:06Z","traits":{"back":true}}`)
	u, _ = srv.User(testWS, "id:u1")
	require.False(t, u.Deleted)
	require.Equal(t, map[string]any{"back": true}, u.Traits)

	// A suppressed person ignores everything until unsuppressed.
	post(`{"type":"track","userId":"u2","event":"User Suppressed","timestamp":"2024-01-01T00:00:05Z"}`,
		`{"type":"identify","userId":"u2","timestamp":"2024-01-01T00:00:06Z","traits":{"x":1}}`)
	u, _ = srv.User(testWS, "id:u2")
	require.True(t, u.Suppressed)
	require.True(t, u.Deleted)
	require.Nil(t, u.Traits)
	post(`{"type":"track","userId":"u2","event":"User Unsuppressed","timestamp":"2024-01-01T00:00:07Z"}`,
		`{"type":"identify","userId":"u2","timestamp":"2024-01-01T00:00:08Z","traits":{"x":2}}`)
	u, _ = srv.User(testWS, "id:u2")
	require.False(t, u.Suppressed)
	require.Equal(t, map[string]any{"x": json.Number("2")}, u.Traits)

	all := srv.Users(testWS)
	require.Len(t, all, 2)
	_, ok := srv.User("other", "id:u1")
	require.False(t, ok)
}

func TestUsers_AnonymousAndUnnamedAndBounded(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys(), MaxUsers: 2})
	a := send(t, srv, req{path: "/v1/batch", body: batch(
		`{"type":"screen","anonymousId":"a1","name":"Home"}`,
		`{"type":"identify","traits":{"email":"x@y.z"}}`,
		`{"type":"track","anonymousId":"obj","event":"Object Deleted","properties":{"objectId":"acme"}}`,
		`{"type":"track","userId":"u9","event":"e"}`,
	)})
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	_, ok := srv.User(testWS, "anonymous_id:a1")
	require.True(t, ok)
	_, ok = srv.User(testWS, "email:x@y.z")
	require.True(t, ok)
	_, ok = srv.User(testWS, "anonymous_id:obj")
	require.False(t, ok, "Object Deleted is about an object, not a person")
	l := srv.Ledger()
	require.Equal(t, 2, l.Users)
	require.Equal(t, int64(1), l.UsersUntracked)
	require.Equal(t, int64(4), l.UniqueCalls, "calls about untracked people still count")
}

func TestUsers_DevicesAndRelationshipsApplyInTimestampOrder(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	post := func(calls ...string) {
		t.Helper()
		a := send(t, srv, req{path: "/v1/batch", body: batch(calls...)})
		require.Equal(t, http.StatusOK, a.Status, a.Body)
	}
	// The removals arrive first but are newer: they win.
	post(`{"type":"track","userId":"u1","event":"Device Deleted","timestamp":"2024-01-01T00:00:02Z","context":{"device":{"token":"t1"}}}`,
		`{"type":"track","userId":"u1","event":"Relationship Deleted","timestamp":"2024-01-01T00:00:02Z","properties":{"objectId":"acme","objectTypeId":1}}`)
	post(`{"type":"track","userId":"u1","event":"Device Created or Updated","timestamp":"2024-01-01T00:00:01Z","context":{"device":{"token":"t1"}}}`,
		`{"type":"group","userId":"u1","groupId":"acme","timestamp":"2024-01-01T00:00:01Z"}`,
		`{"type":"group","userId":"u1","groupId":"beta","timestamp":"2024-01-01T00:00:03Z","traits":{"object_type_id":"1"}}`)
	u, _ := srv.User(testWS, "id:u1")
	require.Nil(t, u.Devices)
	require.Equal(t, []string{"1:beta"}, u.Groups)
}
