package wire_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/wire"
	"github.com/cioq/cioq/track"
)

// TestV1ToV2_Rows checks every row of TRACK_API.md "v1 → v2".
func TestV1ToV2_Rows(t *testing.T) {
	t.Parallel()
	id := func(s string) *track.Identifiers { return &track.Identifiers{ID: s} }
	const ulid = "01JD0000000000000000000001"
	tests := []struct {
		name, method, path, body string
		wantCall                 string
		want                     *track.Op
	}{
		{"PathIDIsID", http.MethodPut, "/api/v1/customers/u1", `{"plan":"pro"}`, wire.V1Identify,
			&track.Op{Type: "person", Action: track.ActionIdentify, Identifiers: id("u1"), Attributes: map[string]any{"plan": "pro"}}},
		{"CioPrefixIsCioID", http.MethodPut, "/api/v1/customers/cio_abc", ``, wire.V1Identify,
			&track.Op{Type: "person", Action: track.ActionIdentify, Identifiers: &track.Identifiers{CioID: "abc"}}},
		{"EmailIsEmail", http.MethodPut, "/api/v1/customers/a%40b.c", `{}`, wire.V1Identify,
			&track.Op{Type: "person", Action: track.ActionIdentify, Identifiers: &track.Identifiers{Email: "a@b.c"}}},
		{"EscapedSlashStaysOneID", http.MethodPut, "/api/v1/customers/a%2Fb", `{}`, wire.V1Identify,
			&track.Op{Type: "person", Action: track.ActionIdentify, Identifiers: id("a/b")}},
		{"UnderscoreTimestampBecomesTimestamp", http.MethodPut, "/api/v1/customers/u1",
			`{"_timestamp":1700000001,"_update":false,"n":1}`, wire.V1Identify,
			&track.Op{Type: "person", Action: track.ActionIdentify, Identifiers: id("u1"), Timestamp: 1700000001,
				Attributes: map[string]any{"n": json.Number("1")}}},
		{"Delete", http.MethodDelete, "/api/v1/customers/u1", ``, wire.V1Delete,
			&track.Op{Type: "person", Action: track.ActionDelete, Identifiers: id("u1")}},
		{"EventDataBecomesAttributes", http.MethodPost, "/api/v1/customers/u1/events",
			`{"name":"purchase","id":"` + ulid + `","type":"event","timestamp":1700000000,"data":{"amount":10}}`, wire.V1Track,
			&track.Op{Type: "person", Action: track.ActionEvent, Identifiers: id("u1"), Name: "purchase", ID: ulid,
				Timestamp: 1700000000, Attributes: map[string]any{"amount": json.Number("10")}}},
		{"PageTypeBecomesPage", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"https://x.test/","type":"page"}`, wire.V1Track,
			&track.Op{Type: "person", Action: track.ActionPage, Identifiers: id("u1"), Name: "https://x.test/"}},
		{"ScreenTypeBecomesScreen", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"home","type":"screen"}`, wire.V1Track,
			&track.Op{Type: "person", Action: track.ActionScreen, Identifiers: id("u1"), Name: "home"}},
		{"AnonymousIDBecomesIdentifier", http.MethodPost, "/api/v1/events", `{"name":"viewed","anonymous_id":"a-1","data":{"p":"/"}}`, wire.V1TrackAnonymous,
			&track.Op{Type: "person", Action: track.ActionEvent, Identifiers: &track.Identifiers{AnonymousID: "a-1"}, Name: "viewed",
				Attributes: map[string]any{"p": "/"}}},
		{"Suppress", http.MethodPost, "/api/v1/customers/u1/suppress", ``, wire.V1Suppress,
			&track.Op{Type: "person", Action: track.ActionSuppress, Identifiers: id("u1")}},
		{"Unsuppress", http.MethodPost, "/api/v1/customers/u1/unsuppress", `{"ignored":true}`, wire.V1Unsuppress,
			&track.Op{Type: "person", Action: track.ActionUnsuppress, Identifiers: id("u1")}},
		{"DeviceIDBecomesToken", http.MethodPut, "/api/v1/customers/u1/devices",
			`{"device":{"id":"tok","platform":"ios","last_used":1700000000,"attributes":{"v":"1"}}}`, wire.V1AddDevice,
			&track.Op{Type: "person", Action: track.ActionAddDevice, Identifiers: id("u1"),
				Device: &track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000, Attributes: map[string]any{"v": "1"}}}},
		{"DeleteDevicePathIDBecomesToken", http.MethodDelete, "/api/v1/customers/u1/devices/t%2Fk", ``, wire.V1DeleteDevice,
			&track.Op{Type: "person", Action: track.ActionDeleteDevice, Identifiers: id("u1"), Device: &track.Device{Token: "t/k"}}},
		{"Merge", http.MethodPost, "/api/v1/merge_customers", `{"primary":{"id":"a"},"secondary":{"email":"b@c.d"}}`, wire.V1Merge,
			&track.Op{Type: "person", Action: track.ActionMerge, Primary: id("a"), Secondary: &track.Identifiers{Email: "b@c.d"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			call, err := wire.MatchV1(tt.method, tt.path)
			require.NoError(t, err)
			require.Equal(t, tt.wantCall, call.Name)
			got, err := wire.V1ToV2(tt.method, tt.path, []byte(tt.body))
			require.NoError(t, err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("op (-want +got):\n%s", diff)
			}
			require.NoError(t, track.ValidateOp(got))
		})
	}
}

func TestMatchV1_RouteErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantAllow          []string
	}{
		{"UnknownPath", http.MethodPost, "/api/v1/nope", http.StatusNotFound, nil},
		{"V2IsNotV1", http.MethodPost, "/api/v2/entity", http.StatusNotFound, nil},
		{"EmptyID", http.MethodPut, "/api/v1/customers/", http.StatusNotFound, nil},
		{"UnknownSubresource", http.MethodPost, "/api/v1/customers/u1/explode", http.StatusNotFound, nil},
		{"WrongMethodOnCustomer", http.MethodGet, "/api/v1/customers/u1", http.StatusMethodNotAllowed, []string{"PUT", "DELETE"}},
		{"WrongMethodOnEvents", http.MethodPut, "/api/v1/events", http.StatusMethodNotAllowed, []string{"POST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := wire.MatchV1(tt.method, tt.path)
			var re *wire.RouteError
			require.ErrorAs(t, err, &re)
			require.Equal(t, tt.wantStatus, re.StatusCode)
			require.Equal(t, tt.wantAllow, re.Allow)
		})
	}
}

func TestV1ToV2_Rejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
		wantMalformed            bool
		wantInMessage            string
	}{
		{"IdentifyNotAnObject", http.MethodPut, "/api/v1/customers/u1", `[1]`, true, "JSON object"},
		{"IdentifyFractionalTimestamp", http.MethodPut, "/api/v1/customers/u1", `{"_timestamp":1.5}`, true, "_timestamp"},
		{"EventUnknownField", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"x","amount":1}`, true, "malformed event"},
		{"EventUnknownType", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"x","type":"click"}`, true, "type"},
		{"PersonEventWithAnonymousID", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"x","anonymous_id":"a"}`, true, "anonymous_id"},
		{"DeviceTokenField", http.MethodPut, "/api/v1/customers/u1/devices", `{"device":{"token":"t"}}`, true, "malformed device"},
		{"MergeBadJSON", http.MethodPost, "/api/v1/merge_customers", `{`, true, "malformed merge"},
		{"EventMissingName", http.MethodPost, "/api/v1/customers/u1/events", `{"data":{}}`, false, "name"},
		{"AnonymousEventWithoutID", http.MethodPost, "/api/v1/events", `{"name":"x"}`, false, "identifiers"},
		{"DeviceWithoutID", http.MethodPut, "/api/v1/customers/u1/devices", `{"device":{"platform":"ios"}}`, false, "device.token"},
		{"IdentifierTooLong", http.MethodPut, "/api/v1/customers/" + strings.Repeat("u", 151), `{}`, false, "identifiers.id"},
		{"MergeSamePerson", http.MethodPost, "/api/v1/merge_customers", `{"primary":{"id":"a"},"secondary":{"id":"a"}}`, false, "secondary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op, err := wire.V1ToV2(tt.method, tt.path, []byte(tt.body))
			require.Nil(t, op)
			require.ErrorContains(t, err, tt.wantInMessage)
			require.Equal(t, tt.wantMalformed, errors.Is(err, wire.ErrMalformedBody), "%v", err)
			require.Equal(t, !tt.wantMalformed, errors.Is(err, track.ErrInvalidOp), "%v", err)
		})
	}
}

// A v1 event may carry more than a v2 op holds (MaxOpBytes): v1 has no such
// limit, only the event data limit.
func TestV1ToV2_LargeEventIsNotHeldToV2OpLimit(t *testing.T) {
	t.Parallel()
	body := `{"name":"big","data":{"pad":"` + strings.Repeat("x", track.MaxOpBytes+10) + `"}}`
	op, err := wire.V1ToV2(http.MethodPost, "/api/v1/customers/u1/events", []byte(body))
	require.NoError(t, err)
	require.Equal(t, track.ActionEvent, op.Action)
	require.ErrorIs(t, track.ValidateOp(op), track.ErrInvalidOp)
}

// TestV1ToV2_OfficialClientShapes: what the official clients send with a
// JSON type other than the documented one is taken and normalised to the
// v2 op (go-customerio v3 device.last_used as a string, Python/Ruby/Node
// integer ids as numbers, ...).
func TestV1ToV2_OfficialClientShapes(t *testing.T) {
	t.Parallel()
	id := func(s string) *track.Identifiers { return &track.Identifiers{ID: s} }
	device := func(d track.Device) *track.Op {
		return &track.Op{Type: "person", Action: track.ActionAddDevice, Identifiers: id("u1"), Device: &d}
	}
	tests := []struct {
		name, method, path, body string
		want                     *track.Op
	}{
		{"GoLastUsedDigitString", http.MethodPut, "/api/v1/customers/u1/devices",
			`{"device":{"id":"tok","platform":"ios","last_used":"1700000000","attributes":null}}`,
			device(track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000})},
		{"GoLastUsedFloatString", http.MethodPut, "/api/v1/customers/u1/devices",
			`{"device":{"id":"tok","platform":"ios","last_used":"1.7e+09"}}`,
			device(track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000})},
		{"PythonLastUsedFloatDropsFraction", http.MethodPut, "/api/v1/customers/u1/devices",
			`{"device":{"id":"tok","platform":"android","last_used":1700000000.987}}`,
			device(track.Device{Token: "tok", Platform: "android", LastUsed: 1700000000})},
		{"NumericDeviceID", http.MethodPut, "/api/v1/customers/u1/devices",
			`{"device":{"id":12345,"platform":"android"}}`,
			device(track.Device{Token: "12345", Platform: "android"})},
		{"GoIdentifyNilAttributes", http.MethodPut, "/api/v1/customers/u1", `null`,
			&track.Op{Type: "person", Action: track.ActionIdentify, Identifiers: id("u1")}},
		{"UnderscoreTimestampAsString", http.MethodPut, "/api/v1/customers/u1", `{"_timestamp":"1700000001","plan":"pro"}`,
			&track.Op{Type: "person", Action: track.ActionIdentify, Identifiers: id("u1"), Timestamp: 1700000001,
				Attributes: map[string]any{"plan": "pro"}}},
		{"EventTimestampAsWholeFloat", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"x","timestamp":1.7e9,"data":null}`,
			&track.Op{Type: "person", Action: track.ActionEvent, Identifiers: id("u1"), Name: "x", Timestamp: 1700000000}},
		{"NumericEventID", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"x","id":42}`,
			&track.Op{Type: "person", Action: track.ActionEvent, Identifiers: id("u1"), Name: "x", ID: "42"}},
		{"PythonNumericAnonymousID", http.MethodPost, "/api/v1/events", `{"name":"sign_up","data":{"email":"a@b.c"},"anonymous_id":123}`,
			&track.Op{Type: "person", Action: track.ActionEvent, Identifiers: &track.Identifiers{AnonymousID: "123"}, Name: "sign_up",
				Attributes: map[string]any{"email": "a@b.c"}}},
		{"NodeNumericMergeIDs", http.MethodPost, "/api/v1/merge_customers", `{"primary":{"id":42},"secondary":{"cio_id":"abc"}}`,
			&track.Op{Type: "person", Action: track.ActionMerge, Primary: id("42"), Secondary: &track.Identifiers{CioID: "abc"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := wire.V1ToV2(tt.method, tt.path, []byte(tt.body))
			require.NoError(t, err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("op (-want +got):\n%s", diff)
			}
		})
	}
}

// What no client sends and Customer.io documents as wrong stays refused,
// with the field named and no value quoted.
func TestV1ToV2_RejectsBadLenientFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
		wantInMessage            string
	}{
		{"LastUsedNotANumber", http.MethodPut, "/api/v1/customers/u1/devices", `{"device":{"id":"t","platform":"ios","last_used":"yesterday"}}`, "device.last_used: must be unix seconds"},
		{"LastUsedMilliseconds", http.MethodPut, "/api/v1/customers/u1/devices", `{"device":{"id":"t","platform":"ios","last_used":"1700000000000"}}`, "not milliseconds"},
		{"LastUsedNaN", http.MethodPut, "/api/v1/customers/u1/devices", `{"device":{"id":"t","platform":"ios","last_used":"NaN"}}`, "device.last_used"},
		{"LastUsedObject", http.MethodPut, "/api/v1/customers/u1/devices", `{"device":{"id":"t","platform":"ios","last_used":{}}}`, "device.last_used"},
		{"EventTimestampFraction", http.MethodPost, "/api/v1/customers/u1/events", `{"name":"x","timestamp":"1700000000.5"}`, "timestamp: must be a whole number"},
		{"AnonymousIDObject", http.MethodPost, "/api/v1/events", `{"name":"x","anonymous_id":{"a":1}}`, "anonymous_id: must be a string"},
		{"MergeUnknownIdentifier", http.MethodPost, "/api/v1/merge_customers", `{"primary":{"user":"a"},"secondary":{"id":"b"}}`, "primary.user: unknown identifier"},
		{"MergeBoolIdentifier", http.MethodPost, "/api/v1/merge_customers", `{"primary":{"id":true},"secondary":{"id":"b"}}`, "primary.id: must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op, err := wire.V1ToV2(tt.method, tt.path, []byte(tt.body))
			require.Nil(t, op)
			require.ErrorIs(t, err, wire.ErrMalformedBody)
			require.ErrorContains(t, err, tt.wantInMessage)
			require.NotContains(t, err.Error(), "yesterday")
		})
	}
}

func TestV1UpdateFlag(t *testing.T) {
	t.Parallel()
	call := wire.V1Call{Name: wire.V1Identify, Method: "PUT", Params: []string{"u1"}}
	op, err := call.Op([]byte(`{"plan":"pro","_update":false}`))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"plan": "pro"}, op.Attributes, "_update is never an attribute")
	_, err = call.Op([]byte(`{"plan":"pro","_update":true}`))
	var ve *track.ValidationError
	require.True(t, errors.As(err, &ve), "%v", err)
	require.Equal(t, "_update", ve.Field)
	_, err = call.Op([]byte(`{"plan":"pro","plan":"free"}`))
	require.ErrorIs(t, err, track.ErrInvalidOp)
}
