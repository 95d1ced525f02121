package fake_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track/fake"
)

const ulid2 = "01JD0000000000000000000002"

// dedupe are the counters a ledger case checks.
type dedupe struct{ Accepted, Unique, Duplicate, RepeatedIDs int64 }

func dedupeOf(l fake.WorkspaceLedger) dedupe {
	return dedupe{l.OpsAccepted, l.UniqueOps, l.DuplicateOps, l.RepeatedIDs}
}

func TestLedgerDuplicates(t *testing.T) {
	t.Parallel()
	buy := map[string]any{"amount": 10}
	for _, tc := range []struct {
		name string
		// requests are raw v2 batch bodies or ops, each sent as one request.
		requests [][]any
		want     dedupe
	}{
		{name: "SameEventIDAgainIsARepeatedIDNotADuplicate",
			requests: [][]any{{event("u1", "buy", ulid1, buy)}, {event("u1", "buy", ulid1, buy)}},
			want:     dedupe{2, 1, 0, 1}},
		{name: "SameEventIDWithOtherContentIsStillARepeatedID",
			requests: [][]any{{event("u1", "buy", ulid1, buy)}, {event("u1", "refund", ulid1, nil)}},
			want:     dedupe{2, 1, 0, 1}},
		{name: "SameEventContentUnderANewIDIsADuplicate",
			requests: [][]any{{event("u1", "buy", ulid1, buy)}, {event("u1", "buy", ulid2, buy)}},
			want:     dedupe{2, 1, 1, 0}},
		{name: "SameEventContentWithNoIDIsADuplicate",
			requests: [][]any{{event("u1", "buy", "", buy)}, {event("u1", "buy", "", buy)}},
			want:     dedupe{2, 1, 1, 0}},
		{name: "EventWithIDThenWithoutIsADuplicate",
			requests: [][]any{{event("u1", "buy", ulid1, buy), event("u1", "buy", "", buy)}},
			want:     dedupe{2, 1, 1, 0}},
		{name: "EventsDifferingInTimestampAreUnique",
			requests: [][]any{{event("u1", "buy", "", buy), func() any { e := event("u1", "buy", "", buy); e.Timestamp++; return e }()}},
			want:     dedupe{2, 2, 0, 0}},
		{name: "EventsOfOtherPeopleAreUnique",
			requests: [][]any{{event("u1", "buy", "", buy), event("u2", "buy", "", buy)}},
			want:     dedupe{2, 2, 0, 0}},
		{name: "IdentifySentTwiceIsADuplicate",
			requests: [][]any{{identify("u1", map[string]any{"plan": "pro"})}, {identify("u1", map[string]any{"plan": "pro"})}},
			want:     dedupe{2, 1, 1, 0}},
		{name: "IdentifyWithOtherAttributesIsUnique",
			requests: [][]any{{identify("u1", map[string]any{"plan": "pro"}), identify("u1", map[string]any{"plan": "free"})}},
			want:     dedupe{2, 2, 0, 0}},
		{name: "AttributeOrderDoesNotMatter",
			requests: [][]any{
				{rawOp(`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"a":1,"b":2}}`)},
				{rawOp(`{"identifiers":{"id":"u1"},"attributes":{"b":2,"a":1},"action":"identify","type":"person"}`)},
			},
			want: dedupe{2, 1, 1, 0}},
		{name: "SuppressTwiceIsADuplicate",
			requests: [][]any{{rawOp(`{"type":"person","identifiers":{"id":"u1"},"action":"suppress"}`)}, {rawOp(`{"type":"person","identifiers":{"id":"u1"},"action":"suppress"}`)}},
			want:     dedupe{2, 1, 1, 0}},
		{name: "DevicesDifferingInTokenAreUnique",
			requests: [][]any{{
				rawOp(`{"type":"person","identifiers":{"id":"u1"},"action":"add_device","device":{"token":"a"}}`),
				rawOp(`{"type":"person","identifiers":{"id":"u1"},"action":"add_device","device":{"token":"b"}}`),
			}},
			want: dedupe{2, 2, 0, 0}},
		{name: "MergeTwiceIsADuplicateSwappedIsNot",
			requests: [][]any{{
				rawOp(`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"id":"b"}}`),
				rawOp(`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"id":"b"}}`),
				rawOp(`{"type":"person","action":"merge","primary":{"id":"b"},"secondary":{"id":"a"}}`),
			}},
			want: dedupe{3, 2, 1, 0}},
		{name: "RejectedOpsDoNotCount",
			requests: [][]any{{event("u1", "buy", ulid1, buy), rawOp(`{"type":"person","action":"event","name":"buy"}`)}, {event("u1", "buy", ulid2, buy)}},
			want:     dedupe{2, 1, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := start(t, fake.Options{})
			for _, ops := range tc.requests {
				got := send(t, srv, good, http.MethodPost, "/api/v2/batch", batch(t, ops...))
				require.Contains(t, []int{http.StatusOK, http.StatusMultiStatus}, got.Status, "body %s", got.Body)
			}
			l := srv.Ledger()
			if diff := cmp.Diff(tc.want, dedupeOf(l.WorkspaceLedger)); diff != "" {
				t.Fatalf("ledger (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, dedupeOf(l.PerWorkspace[testSite])); diff != "" {
				t.Fatalf("workspace ledger (-want +got):\n%s", diff)
			}
		})
	}
}

// rawOp is a batch element given as JSON text.
type rawOp string

func (r rawOp) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestLedgerCountsOnlyAcceptedRequests(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Now: newClock().Now}) // a still clock: one window
	ev := batch(t, event("u1", "buy", ulid1, nil))
	for _, f := range []fake.Faults{{Storm429: true}, {Down: true}, {ErrorRate: 1}, {CloseConnection: 1}, {Unauthorized: true}} {
		require.NoError(t, srv.SetFaults(f))
		_, _ = trySend(t.Context(), srv, good, http.MethodPost, "/api/v2/batch", ev)
	}
	require.NoError(t, srv.SetFaults(fake.Faults{}))
	require.Equal(t, http.StatusOK, send(t, srv, good, http.MethodPost, "/api/v2/batch", ev).Status)
	l := srv.Ledger()
	require.Equal(t, dedupe{1, 1, 0, 0}, dedupeOf(l.WorkspaceLedger), "a request that failed must not make the retry a repeat")
	require.Equal(t, fake.WorkspaceLedger{
		Requests: 6, Accepted: 1, RateLimited: 1, ServerErrors: 2, ClientErrors: 1, Closed: 1,
		OpsAccepted: 1, OpsByAction: map[string]int64{"event": 1}, UniqueOps: 1,
		MaxRequestsPerSecond: 1, MaxReceivedPerSecond: 6, MaxOpsPerRequest: 1,
	}, withoutTimes(l.WorkspaceLedger))
}

func withoutTimes(l fake.WorkspaceLedger) fake.WorkspaceLedger {
	l.FirstAccept, l.LastAccept = time.Time{}, time.Time{}
	return l
}

func TestLedgerWindowsAndWorkspaces(t *testing.T) {
	t.Parallel()
	clk := newClock()
	t0 := clk.Now()
	srv := start(t, fake.Options{Now: clk.Now, RateLimit: 100})
	a, b := good, auth{"site-2", "k"}
	post := func(who auth, ops ...any) int {
		return send(t, srv, who, http.MethodPost, "/api/v2/batch", batch(t, ops...)).Status
	}
	at := func(d time.Duration) { clk.Advance(t0.Add(d).Sub(clk.Now())) }

	post(a, identify("u1", nil))
	at(500 * time.Millisecond)
	post(a, identify("u2", nil), event("u2", "buy", ulid1, nil))
	at(999 * time.Millisecond)
	post(a, identify("u3", nil)) // 3 in (0, 999ms]
	at(1000 * time.Millisecond)
	post(a, identify("u4", nil)) // the first left the window: still 3
	post(b, identify("u1", nil), identify("u2", nil), identify("u3", nil))
	at(1200 * time.Millisecond)
	post(b, identify("u1", nil)) // same content, other workspace: unique there, duplicate here
	at(5 * time.Second)
	post(b, rawOp(`{"type":"person","action":"identify"}`)) // all rejected: 400, not accepted

	l := srv.Ledger()
	wantA := fake.WorkspaceLedger{
		Requests: 4, Accepted: 4, OpsAccepted: 5, OpsByAction: map[string]int64{"identify": 4, "event": 1}, UniqueOps: 5,
		MaxRequestsPerSecond: 3, MaxReceivedPerSecond: 3, MaxOpsPerRequest: 2,
		FirstAccept: t0, LastAccept: t0.Add(time.Second),
	}
	wantB := fake.WorkspaceLedger{
		Requests: 3, Accepted: 2, ClientErrors: 1, OpsAccepted: 4, OpsRejected: 1, OpsByAction: map[string]int64{"identify": 4},
		UniqueOps: 3, DuplicateOps: 1, MaxRequestsPerSecond: 2, MaxReceivedPerSecond: 2, MaxOpsPerRequest: 3,
		FirstAccept: t0.Add(time.Second), LastAccept: t0.Add(1200 * time.Millisecond),
	}
	want := fake.Ledger{
		WorkspaceLedger: fake.WorkspaceLedger{
			Requests: 7, Accepted: 6, ClientErrors: 1, OpsAccepted: 9, OpsRejected: 1,
			OpsByAction: map[string]int64{"identify": 8, "event": 1}, UniqueOps: 8, DuplicateOps: 1,
			MaxRequestsPerSecond: 3, MaxReceivedPerSecond: 3, MaxOpsPerRequest: 3,
			FirstAccept: t0, LastAccept: t0.Add(1200 * time.Millisecond),
		},
		PerWorkspace: map[string]fake.WorkspaceLedger{testSite: wantA, "site-2": wantB},
	}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Fatalf("ledger (-want +got):\n%s", diff)
	}
}

func TestLedgerUnderConcurrentRequests(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			a := auth{fmt.Sprintf("site-%d", w%2), "k"}
			for i := range perWorker {
				ops := []any{
					event(fmt.Sprintf("u%d-%d", w, i), "buy", fmt.Sprintf("01JD%02d%020d", w, i), nil),
					identify("shared", map[string]any{"plan": "pro"}), // the same op from every worker
				}
				if got := send(t, srv, a, http.MethodPost, "/api/v2/batch", batch(t, ops...)); got.Status != http.StatusOK {
					t.Errorf("status %d", got.Status)
				}
				_ = srv.Ledger()
				_ = srv.Requests()
			}
		})
	}
	wg.Wait()
	l := srv.Ledger()
	const requests = workers * perWorker
	require.EqualValues(t, requests, l.Accepted)
	require.EqualValues(t, 2*requests, l.OpsAccepted)
	require.EqualValues(t, requests+2, l.UniqueOps) // every event + one identify per workspace
	require.EqualValues(t, requests-2, l.DuplicateOps)
	require.Len(t, srv.Requests(), requests)
	for _, site := range []string{"site-0", "site-1"} {
		require.EqualValues(t, requests/2+1, l.PerWorkspace[site].UniqueOps)
	}
}
