package fake_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

const ulid1 = "01JD0000000000000000000001"

// pathCases are one happy call per Track API path, with the v2 ops the fake
// must record: every row of TRACK_API.md "v1 → v2".
func pathCases() []struct {
	name         string
	method, path string
	body         string
	want         []track.Op
} {
	id := func(s string) *track.Identifiers { return &track.Identifiers{ID: s} }
	return []struct {
		name         string
		method, path string
		body         string
		want         []track.Op
	}{
		{name: "V1IdentifyMapsTimestampAndAttributes", method: http.MethodPut, path: "/api/v1/customers/u1",
			body: `{"email":"a@b.c","plan":"pro","created_at":1700000000,"_timestamp":1700000001}`,
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionIdentify, Timestamp: 1700000001,
				Attributes: map[string]any{"email": "a@b.c", "plan": "pro", "created_at": json.Number("1700000000")}}}},
		{name: "V1IdentifyEmptyBody", method: http.MethodPut, path: "/api/v1/customers/u1",
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionIdentify}}},
		{name: "V1IdentifyCioIDPath", method: http.MethodPut, path: "/api/v1/customers/cio_abc", body: `{"plan":"pro"}`,
			want: []track.Op{{Type: "person", Identifiers: &track.Identifiers{CioID: "abc"}, Action: track.ActionIdentify,
				Attributes: map[string]any{"plan": "pro"}}}},
		{name: "V1IdentifyEscapedEmailPath", method: http.MethodPut, path: "/api/v1/customers/a%40b.c", body: `{}`,
			want: []track.Op{{Type: "person", Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionIdentify}}},
		{name: "V1IdentifyEscapedSlashStaysOneSegment", method: http.MethodPut, path: "/api/v1/customers/a%2Fb", body: `{}`,
			want: []track.Op{{Type: "person", Identifiers: id("a/b"), Action: track.ActionIdentify}}},
		{name: "V1Delete", method: http.MethodDelete, path: "/api/v1/customers/u1",
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionDelete}}},
		{name: "V1EventDataBecomesAttributes", method: http.MethodPost, path: "/api/v1/customers/u1/events",
			body: `{"name":"purchase","id":"` + ulid1 + `","type":"event","timestamp":1700000000,"data":{"amount":10}}`,
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionEvent, Name: "purchase", ID: ulid1,
				Timestamp: 1700000000, Attributes: map[string]any{"amount": json.Number("10")}}}},
		{name: "V1PageEventBecomesPage", method: http.MethodPost, path: "/api/v1/customers/u1/events",
			body: `{"name":"https://x.test/","type":"page"}`,
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionPage, Name: "https://x.test/"}}},
		{name: "V1AnonymousEvent", method: http.MethodPost, path: "/api/v1/events",
			body: `{"name":"viewed","anonymous_id":"a-123","data":{"page":"/"}}`,
			want: []track.Op{{Type: "person", Identifiers: &track.Identifiers{AnonymousID: "a-123"}, Action: track.ActionEvent,
				Name: "viewed", Attributes: map[string]any{"page": "/"}}}},
		{name: "V1Suppress", method: http.MethodPost, path: "/api/v1/customers/u1/suppress",
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionSuppress}}},
		{name: "V1Unsuppress", method: http.MethodPost, path: "/api/v1/customers/u1/unsuppress",
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionUnsuppress}}},
		{name: "V1AddDeviceIDBecomesToken", method: http.MethodPut, path: "/api/v1/customers/u1/devices",
			body: `{"device":{"id":"tok","platform":"ios","last_used":1700000000}}`,
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionAddDevice,
				Device: &track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000}}}},
		{name: "V1DeleteDevice", method: http.MethodDelete, path: "/api/v1/customers/u1/devices/tok",
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionDeleteDevice, Device: &track.Device{Token: "tok"}}}},
		{name: "V1Merge", method: http.MethodPost, path: "/api/v1/merge_customers",
			body: `{"primary":{"id":"a"},"secondary":{"email":"b@c.d"}}`,
			want: []track.Op{{Type: "person", Action: track.ActionMerge, Primary: id("a"), Secondary: &track.Identifiers{Email: "b@c.d"}}}},
		{name: "V2Entity", method: http.MethodPost, path: "/api/v2/entity",
			body: `{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"},"timestamp":1700000000}`,
			want: []track.Op{{Type: "person", Identifiers: id("u1"), Action: track.ActionIdentify, Timestamp: 1700000000,
				Attributes: map[string]any{"plan": "pro"}}}},
		{name: "V2Batch", method: http.MethodPost, path: "/api/v2/batch",
			body: `{"batch":[{"type":"person","identifiers":{"email":"a@b.c"},"action":"suppress"},` +
				`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"id":"b"}}]}`,
			want: []track.Op{
				{Type: "person", Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionSuppress},
				{Type: "person", Action: track.ActionMerge, Primary: id("a"), Secondary: id("b")},
			}},
	}
}

func TestPaths(t *testing.T) {
	t.Parallel()
	for _, tc := range pathCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := start(t, fake.Options{Credentials: map[string]string{testSite: testKey}})
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}

			got := send(t, srv, good, tc.method, tc.path, body)
			require.Equal(t, http.StatusOK, got.Status, "body %s", got.Body)
			require.JSONEq(t, `{}`, string(got.Body))

			reqs := srv.Requests()
			require.Len(t, reqs, 1)
			require.Equal(t, testSite, reqs[0].SiteID)
			require.Equal(t, http.StatusOK, reqs[0].Status)
			if diff := cmp.Diff(tc.want, reqs[0].Ops); diff != "" {
				t.Fatalf("recorded ops (-want +got):\n%s", diff)
			}
			l := srv.Ledger()
			require.EqualValues(t, 1, l.Accepted)
			require.EqualValues(t, len(tc.want), l.OpsAccepted)
			require.EqualValues(t, len(tc.want), l.UniqueOps)
			require.EqualValues(t, len(tc.want), l.PerWorkspace[testSite].OpsAccepted)
		})
		t.Run(tc.name+"RequiresAuth", func(t *testing.T) {
			t.Parallel()
			srv := start(t, fake.Options{Credentials: map[string]string{testSite: testKey}})
			for _, a := range []auth{{}, {testSite, "wrong"}, {"other-site", testKey}} {
				got := send(t, srv, a, tc.method, tc.path, []byte(tc.body))
				require.Equal(t, http.StatusUnauthorized, got.Status)
				require.Contains(t, errorMessage(t, got.Body), "unauthorized")
			}
			l := srv.Ledger()
			require.EqualValues(t, 3, l.Requests)
			require.EqualValues(t, 3, l.ClientErrors)
			require.Zero(t, l.OpsAccepted)
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	body := batch(t, identify("u1", nil))

	t.Run("NilCredentialsAcceptAnyPair", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		require.Equal(t, http.StatusOK, send(t, srv, auth{"any", "thing"}, http.MethodPost, "/api/v2/batch", body).Status)
		require.Equal(t, http.StatusOK, send(t, srv, auth{"other", ""}, http.MethodPost, "/api/v2/batch", body).Status)
	})
	t.Run("NilCredentialsStillNeedBasicAuth", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{})
		got := send(t, srv, auth{}, http.MethodPost, "/api/v2/batch", body)
		require.Equal(t, http.StatusUnauthorized, got.Status)
		errorMessage(t, got.Body)
	})
	t.Run("EmptyCredentialsAcceptNobody", func(t *testing.T) {
		t.Parallel()
		srv := start(t, fake.Options{Credentials: map[string]string{}})
		require.Equal(t, http.StatusUnauthorized, send(t, srv, good, http.MethodPost, "/api/v2/batch", body).Status)
	})
}

func TestRouting(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{})
	for _, tc := range []struct {
		name, method, path string
		wantStatus         int
		wantAllow          string
	}{
		{name: "UnknownPath", method: http.MethodPost, path: "/api/v2/nothing", wantStatus: http.StatusNotFound},
		{name: "TrailingSlash", method: http.MethodPost, path: "/api/v2/batch/", wantStatus: http.StatusNotFound},
		{name: "EmptyPersonID", method: http.MethodPost, path: "/api/v1/customers//events", wantStatus: http.StatusNotFound},
		{name: "Root", method: http.MethodGet, path: "/", wantStatus: http.StatusNotFound},
		{name: "BatchByGet", method: http.MethodGet, path: "/api/v2/batch", wantStatus: http.StatusMethodNotAllowed, wantAllow: "POST"},
		{name: "CustomerByPost", method: http.MethodPost, path: "/api/v1/customers/u1", wantStatus: http.StatusMethodNotAllowed, wantAllow: "PUT, DELETE"},
		{name: "DevicesByDelete", method: http.MethodDelete, path: "/api/v1/customers/u1/devices", wantStatus: http.StatusMethodNotAllowed, wantAllow: "PUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := send(t, srv, good, tc.method, tc.path, nil)
			require.Equal(t, tc.wantStatus, got.Status)
			require.Equal(t, tc.wantAllow, got.Header.Get("Allow"))
			errorMessage(t, got.Body)
		})
	}
}
