package track_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
)

func ids(id string) *track.Identifiers { return &track.Identifiers{ID: id} }

// validOps returns one valid op per shape.
func validOps() map[string]*track.Op {
	rel := json.RawMessage(`{"identifiers":{"object_type_id":"1","object_id":"acme"}}`)
	return map[string]*track.Op{
		"identify":            {Identifiers: ids("u1"), Action: track.ActionIdentify, Attributes: map[string]any{"plan": "pro"}, Timestamp: 1700000000},
		"identify by email":   {Type: "person", Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionIdentify},
		"identify by cio_id":  {Identifiers: &track.Identifiers{CioID: "abc"}, Action: track.ActionIdentify},
		"identify by phone":   {Identifiers: &track.Identifiers{Phone: "+15551234567"}, Action: track.ActionIdentify},
		"event":               {Identifiers: ids("u1"), Action: track.ActionEvent, Name: "purchase", ID: "01J0000000000000000000000A", Attributes: map[string]any{"amount": 10}},
		"anonymous event":     {Identifiers: &track.Identifiers{AnonymousID: "a-1"}, Action: track.ActionEvent, Name: "viewed"},
		"anonymous page":      {Identifiers: &track.Identifiers{AnonymousID: "a-1"}, Action: track.ActionPage, Name: "https://example.com/"},
		"screen":              {Identifiers: ids("u1"), Action: track.ActionScreen, Name: "home"},
		"delete":              {Identifiers: ids("u1"), Action: track.ActionDelete},
		"suppress":            {Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionSuppress},
		"unsuppress":          {Identifiers: ids("u1"), Action: track.ActionUnsuppress},
		"add_device":          {Identifiers: ids("u1"), Action: track.ActionAddDevice, Device: &track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000, Attributes: map[string]any{"app_version": "1.2"}}},
		"delete_device":       {Identifiers: ids("u1"), Action: track.ActionDeleteDevice, Device: &track.Device{Token: "tok"}},
		"merge":               {Action: track.ActionMerge, Primary: ids("a"), Secondary: &track.Identifiers{Email: "b@c.d"}},
		"add_relationships":   {Identifiers: ids("u1"), Action: track.ActionAddRelationships, Relationships: []json.RawMessage{rel}},
		"delete_relationship": {Identifiers: ids("u1"), Action: track.ActionDeleteRelationships, Relationships: []json.RawMessage{rel}},
	}
}

func TestValidateOp_AcceptsEveryShape(t *testing.T) {
	t.Parallel()
	for name, op := range validOps() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, track.ValidateOp(op))
		})
	}
}

func TestValidateOp_AcceptsValuesAtTheLimits(t *testing.T) {
	t.Parallel()
	attrs := make(map[string]any, track.MaxAttributes)
	for i := range track.MaxAttributes - 2 {
		attrs[fmt.Sprintf("a%d", i)] = i
	}
	attrs[strings.Repeat("n", track.MaxAttributeNameBytes)] = strings.Repeat("v", track.MaxAttributeValueBytes)
	// A nested value whose JSON is exactly the limit: ["xxx..."] is len+4.
	attrs["nested"] = []any{strings.Repeat("x", track.MaxAttributeValueBytes-4)}
	op := &track.Op{
		Identifiers: ids(strings.Repeat("i", track.MaxIdentifierBytes)), Action: track.ActionIdentify,
		Attributes: attrs, Timestamp: 1700000000,
	}
	require.NoError(t, track.ValidateOp(op))
	ev := &track.Op{Identifiers: ids("u1"), Action: track.ActionEvent, Name: strings.Repeat("e", track.MaxEventNameBytes), ID: strings.Repeat("x", track.MaxIdentifierBytes)}
	require.NoError(t, track.ValidateOp(ev))
}

func TestValidateOp_Rejects(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	bad := string([]byte{0xff, 0xfe})
	tooMany := make(map[string]any, track.MaxAttributes+1)
	for i := range track.MaxAttributes + 1 {
		tooMany[fmt.Sprintf("a%d", i)] = 1
	}
	bigEvent := map[string]any{}
	for i := range 120 {
		bigEvent[fmt.Sprintf("k%d", i)] = long(1000)
	}
	bigOp := map[string]any{}
	for i := range 40 {
		bigOp[fmt.Sprintf("k%d", i)] = long(900)
	}
	tests := []struct {
		name string
		op   *track.Op
		want *track.ValidationError
	}{
		{"NilOp", nil, &track.ValidationError{Reason: "op is nil"}},
		{"WrongType", &track.Op{Type: "object", Identifiers: ids("u"), Action: track.ActionIdentify},
			&track.ValidationError{Field: "type", Reason: `must be "person"`}},
		{"MissingAction", &track.Op{Identifiers: ids("u")},
			&track.ValidationError{Field: "action", Reason: "is missing"}},
		{"UnknownAction", &track.Op{Identifiers: ids("u"), Action: "upsert"},
			&track.ValidationError{Field: "action", Reason: "is not a Track API action"}},
		{"NoIdentifiers", &track.Op{Action: track.ActionIdentify},
			&track.ValidationError{Field: "identifiers", Reason: "are required"}},
		{"EmptyIdentifiers", &track.Op{Identifiers: &track.Identifiers{}, Action: track.ActionSuppress},
			&track.ValidationError{Field: "identifiers", Reason: "are required"}},
		{"TwoIdentifiers", &track.Op{Identifiers: &track.Identifiers{ID: "u", Email: "a@b.c"}, Action: track.ActionIdentify},
			&track.ValidationError{Field: "identifiers", Reason: "must hold exactly one of id, email, cio_id, phone"}},
		{"IdPlusAnonymousOnEvent", &track.Op{Identifiers: &track.Identifiers{ID: "u", AnonymousID: "a"}, Action: track.ActionEvent, Name: "e"},
			&track.ValidationError{Field: "identifiers", Reason: "must hold exactly one of id, email, cio_id, phone or anonymous_id"}},
		{"AnonymousIdentify", &track.Op{Identifiers: &track.Identifiers{AnonymousID: "a"}, Action: track.ActionIdentify},
			&track.ValidationError{Field: "identifiers.anonymous_id", Reason: "is only for event, page and screen"}},
		{"IdentifierTooLong", &track.Op{Identifiers: &track.Identifiers{Email: long(151)}, Action: track.ActionSuppress},
			&track.ValidationError{Field: "identifiers.email", Reason: "identifier is 151 bytes, limit 150", Limit: 150, Got: 151}},
		{"IdentifierInvalidUTF8", &track.Op{Identifiers: ids(bad), Action: track.ActionDelete},
			&track.ValidationError{Field: "identifiers.id", Reason: "is not valid UTF-8"}},
		{"MergeWithIdentifiers", &track.Op{Identifiers: ids("u"), Action: track.ActionMerge, Primary: ids("a"), Secondary: ids("b")},
			&track.ValidationError{Field: "identifiers", Reason: "merge takes primary and secondary, not identifiers"}},
		{"MergeWithoutPrimary", &track.Op{Action: track.ActionMerge, Secondary: ids("b")},
			&track.ValidationError{Field: "primary", Reason: "is required for merge"}},
		{"MergeWithoutSecondary", &track.Op{Action: track.ActionMerge, Primary: ids("a")},
			&track.ValidationError{Field: "secondary", Reason: "is required for merge"}},
		{"MergeAnonymous", &track.Op{Action: track.ActionMerge, Primary: ids("a"), Secondary: &track.Identifiers{AnonymousID: "x"}},
			&track.ValidationError{Field: "secondary.anonymous_id", Reason: "is only for event, page and screen"}},
		{"MergeSamePerson", &track.Op{Action: track.ActionMerge, Primary: ids("a"), Secondary: ids("a")},
			&track.ValidationError{Field: "secondary", Reason: "names the same person as primary"}},
		{"MergeSecondaryTooLong", &track.Op{Action: track.ActionMerge, Primary: ids("a"), Secondary: ids(long(200))},
			&track.ValidationError{Field: "secondary.id", Reason: "identifier is 200 bytes, limit 150", Limit: 150, Got: 200}},
		{"PrimaryOutsideMerge", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Primary: ids("a")},
			&track.ValidationError{Field: "primary", Reason: "is only for merge"}},
		{"SecondaryOutsideMerge", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Secondary: ids("a")},
			&track.ValidationError{Field: "secondary", Reason: "is only for merge"}},
		{"EventWithoutName", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent},
			&track.ValidationError{Field: "name", Reason: "is required for event"}},
		{"PageWithBlankName", &track.Op{Identifiers: ids("u"), Action: track.ActionPage, Name: "  "},
			&track.ValidationError{Field: "name", Reason: "is required for page"}},
		{"ScreenNameTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionScreen, Name: long(101)},
			&track.ValidationError{Field: "name", Reason: "name is 101 bytes, limit 100", Limit: 100, Got: 101}},
		{"EventNameInvalidUTF8", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: bad},
			&track.ValidationError{Field: "name", Reason: "is not valid UTF-8"}},
		{"EventIDTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: "e", ID: long(151)},
			&track.ValidationError{Field: "id", Reason: "event id is 151 bytes, limit 150", Limit: 150, Got: 151}},
		{"NameOnIdentify", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Name: "x"},
			&track.ValidationError{Field: "name", Reason: "is only for event, page and screen"}},
		{"IDOnSuppress", &track.Op{Identifiers: ids("u"), Action: track.ActionSuppress, ID: "x"},
			&track.ValidationError{Field: "id", Reason: "is only for event, page and screen"}},
		{"NegativeTimestamp", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Timestamp: -1},
			&track.ValidationError{Field: "timestamp", Reason: "must be unix seconds (not milliseconds), not negative"}},
		{"MillisecondTimestamp", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Timestamp: 1700000000000},
			&track.ValidationError{Field: "timestamp", Reason: "must be unix seconds (not milliseconds), not negative"}},
		{"AddDeviceWithoutDevice", &track.Op{Identifiers: ids("u"), Action: track.ActionAddDevice},
			&track.ValidationError{Field: "device.token", Reason: "is required for add_device"}},
		{"DeleteDeviceWithoutToken", &track.Op{Identifiers: ids("u"), Action: track.ActionDeleteDevice, Device: &track.Device{Platform: "ios"}},
			&track.ValidationError{Field: "device.token", Reason: "is required for delete_device"}},
		{"DeviceTokenInvalidUTF8", &track.Op{Identifiers: ids("u"), Action: track.ActionAddDevice, Device: &track.Device{Token: bad}},
			&track.ValidationError{Field: "device.token", Reason: "is not valid UTF-8"}},
		{"DeviceLastUsedMillis", &track.Op{Identifiers: ids("u"), Action: track.ActionAddDevice, Device: &track.Device{Token: "t", LastUsed: 1700000000000}},
			&track.ValidationError{Field: "device.last_used", Reason: "must be unix seconds (not milliseconds), not negative"}},
		{"DeviceAttributeTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionAddDevice, Device: &track.Device{Token: "t", Attributes: map[string]any{"k": long(1001)}}},
			&track.ValidationError{Field: "device.attributes.k", Reason: "value is 1001 bytes, limit 1000", Limit: 1000, Got: 1001}},
		{"DeviceOnIdentify", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Device: &track.Device{Token: "t"}},
			&track.ValidationError{Field: "device", Reason: "is only for add_device and delete_device"}},
		{"RelationshipsMissing", &track.Op{Identifiers: ids("u"), Action: track.ActionAddRelationships},
			&track.ValidationError{Field: "cio_relationships", Reason: "are required for add_relationships"}},
		{"RelationshipNotObject", &track.Op{Identifiers: ids("u"), Action: track.ActionDeleteRelationships, Relationships: []json.RawMessage{json.RawMessage(`[1]`)}},
			&track.ValidationError{Field: "cio_relationships[0]", Reason: "must be a JSON object"}},
		{"RelationshipMalformed", &track.Op{Identifiers: ids("u"), Action: track.ActionAddRelationships, Relationships: []json.RawMessage{json.RawMessage(`{"a":`)}},
			&track.ValidationError{Field: "cio_relationships[0]", Reason: "must be a JSON object"}},
		{"RelationshipsOnIdentify", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Relationships: []json.RawMessage{json.RawMessage(`{}`)}},
			&track.ValidationError{Field: "cio_relationships", Reason: "are only for add_relationships and delete_relationships"}},
		{"AttributesOnSuppress", &track.Op{Identifiers: ids("u"), Action: track.ActionSuppress, Attributes: map[string]any{"a": 1}},
			&track.ValidationError{Field: "attributes", Reason: "are only for identify, event, page and screen"}},
		{"TooManyAttributes", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: tooMany},
			&track.ValidationError{Field: "attributes", Reason: "has 301 attributes, limit 300", Limit: 300, Got: 301}},
		{"AttributeNameTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{long(151): 1}},
			&track.ValidationError{Field: "attributes." + long(40) + "…", Reason: "name is 151 bytes, limit 150", Limit: 150, Got: 151}},
		{"AttributeNameEmpty", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"": 1}},
			&track.ValidationError{Field: "attributes", Reason: "name is empty"}},
		{"AttributeNameInvalidUTF8", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"a" + bad: 1}},
			&track.ValidationError{Field: "attributes.a\uFFFD", Reason: "name is not valid UTF-8"}},
		{"AttributeValueTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"plan": long(1200)}},
			&track.ValidationError{Field: "attributes.plan", Reason: "value is 1200 bytes, limit 1000", Limit: 1000, Got: 1200}},
		{"NamedStringTypeTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"plan": plan(long(1001))}},
			&track.ValidationError{Field: "attributes.plan", Reason: "value is 1001 bytes, limit 1000", Limit: 1000, Got: 1001}},
		{"NestedValueTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"tags": []any{long(997)}}},
			&track.ValidationError{Field: "attributes.tags", Reason: "value is 1001 bytes, limit 1000", Limit: 1000, Got: 1001}},
		{"NestedMapTooLong", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"addr": map[string]string{"street": long(990)}}},
			&track.ValidationError{Field: "attributes.addr", Reason: "value is 1003 bytes, limit 1000", Limit: 1000, Got: 1003}},
		{"AttributeValueInvalidUTF8", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"plan": bad}},
			&track.ValidationError{Field: "attributes.plan", Reason: "is not valid UTF-8"}},
		{"NestedValueInvalidUTF8", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"p": map[string]any{"q": []any{"ok", bad}}}},
			&track.ValidationError{Field: "attributes.p.q[1]", Reason: "is not valid UTF-8"}},
		{"NestedKeyInvalidUTF8", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: "e", Attributes: map[string]any{"p": map[string]any{bad: 1}}},
			&track.ValidationError{Field: "attributes.p", Reason: "has a key that is not valid UTF-8"}},
		{"StructFieldInvalidUTF8", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"s": struct{ Name string }{bad}}},
			&track.ValidationError{Field: "attributes.s.Name", Reason: "is not valid UTF-8"}},
		{"NaN", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"n": math.NaN()}},
			&track.ValidationError{Field: "attributes.n", Reason: "is not a finite number"}},
		{"NestedInf", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: "e", Attributes: map[string]any{"n": []float64{math.Inf(1)}}},
			&track.ValidationError{Field: "attributes.n[0]", Reason: "is not a finite number"}},
		{"BadJSONNumber", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"n": json.Number("true")}},
			&track.ValidationError{Field: "attributes.n", Reason: "is not a valid JSON number"}},
		{"Channel", &track.Op{Identifiers: ids("u"), Action: track.ActionIdentify, Attributes: map[string]any{"c": make(chan int)}},
			&track.ValidationError{Field: "attributes.c", Reason: "is a chan int, not a JSON value"}},
		{"TooDeep", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: "e", Attributes: map[string]any{"d": deep(70)}},
			&track.ValidationError{Field: "attributes.d" + strings.Repeat("[0]", 65), Reason: "nests deeper than 64 levels"}},
		{"EventDataTooBig", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: "e", Attributes: bigEvent},
			&track.ValidationError{Field: "attributes", Reason: fmt.Sprintf("event data is %d bytes, limit 102400", jsonLen(bigEvent)), Limit: 102400, Got: jsonLen(bigEvent)}},
		{"OpTooBig", &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: "e", Attributes: bigOp},
			&track.ValidationError{Reason: fmt.Sprintf("op is %d bytes, limit 32768", jsonLen(bigOp)+eventOverhead), Limit: 32768, Got: jsonLen(bigOp) + eventOverhead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := track.ValidateOp(tt.op)
			require.Error(t, err)
			require.ErrorIs(t, err, track.ErrInvalidOp)
			require.True(t, track.IsPermanent(err))
			var ve *track.ValidationError
			require.True(t, errors.As(err, &ve))
			if diff := cmp.Diff(tt.want, ve); diff != "" {
				t.Errorf("ValidationError (-want +got):\n%s", diff)
			}
			// EncodeOp rejects the same op with the same error.
			if tt.op != nil {
				cp := *tt.op
				_, encErr := track.EncodeOp(&cp)
				require.Equal(t, err.Error(), encErr.Error())
			}
		})
	}
}

// eventOverhead is the size of an event op named "e" for "u" without its
// attributes.
const eventOverhead = len(`{"type":"person","identifiers":{"id":"u"},"action":"event","name":"e","attributes":}`)

type plan string

func deep(n int) any {
	var v any = 1
	for range n {
		v = []any{v}
	}
	return v
}

func jsonLen(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return len(b)
}

func TestValidationError_Error(t *testing.T) {
	t.Parallel()
	err := error(&track.ValidationError{Field: "attributes.plan", Reason: "value is 1200 bytes, limit 1000", Limit: 1000, Got: 1200})
	require.Equal(t, "track: invalid op: attributes.plan: value is 1200 bytes, limit 1000", err.Error())
	require.Equal(t, "track: invalid op: op is nil", (&track.ValidationError{Reason: "op is nil"}).Error())
	wrapped := fmt.Errorf("producer: enqueue: %w", err)
	require.ErrorIs(t, wrapped, track.ErrInvalidOp)
	require.NotErrorIs(t, wrapped, track.ErrInvalidRequest)
}

func TestValidateOp_DoesNotModifyOp(t *testing.T) {
	t.Parallel()
	op := &track.Op{Identifiers: ids("u"), Action: track.ActionDelete}
	require.NoError(t, track.ValidateOp(op))
	require.Empty(t, op.Type)
}

func TestEncodeOp(t *testing.T) {
	t.Parallel()
	t.Run("FillsTypeAndEncodesWithoutHTMLEscaping", func(t *testing.T) {
		t.Parallel()
		op := &track.Op{Identifiers: ids("u1"), Action: track.ActionEvent, Name: "a<b>&c", ID: "01J", Timestamp: 1700000000,
			Attributes: map[string]any{"url": "https://x/?a=1&b=2", "n": 1.5}}
		b, err := track.EncodeOp(op)
		require.NoError(t, err)
		require.Equal(t, "person", op.Type)
		want := `{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"a<b>&c","id":"01J","timestamp":1700000000,"attributes":{"n":1.5,"url":"https://x/?a=1&b=2"}}`
		require.Equal(t, want, string(b))
	})
	t.Run("EncodesMerge", func(t *testing.T) {
		t.Parallel()
		b, err := track.EncodeOp(&track.Op{Action: track.ActionMerge, Primary: ids("a"), Secondary: ids("b")})
		require.NoError(t, err)
		require.Equal(t, `{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"id":"b"}}`, string(b))
	})
	t.Run("EncodesDeviceAndRelationships", func(t *testing.T) {
		t.Parallel()
		b, err := track.EncodeOp(&track.Op{Identifiers: ids("u1"), Action: track.ActionAddDevice, Device: &track.Device{Token: "tok", Platform: "ios", LastUsed: 1700000000}})
		require.NoError(t, err)
		require.Equal(t, `{"type":"person","identifiers":{"id":"u1"},"action":"add_device","device":{"token":"tok","platform":"ios","last_used":1700000000}}`, string(b))
		b, err = track.EncodeOp(&track.Op{Identifiers: ids("u1"), Action: track.ActionAddRelationships,
			Relationships: []json.RawMessage{json.RawMessage(`{ "identifiers": {"object_type_id":"1","object_id":"acme"} }`)}})
		require.NoError(t, err)
		require.Equal(t, `{"type":"person","identifiers":{"id":"u1"},"action":"add_relationships","cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"acme"}}]}`, string(b))
	})
	t.Run("AcceptsCustomMarshalers", func(t *testing.T) {
		t.Parallel()
		ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		b, err := track.EncodeOp(&track.Op{Identifiers: ids("u1"), Action: track.ActionIdentify, Attributes: map[string]any{"at": ts}})
		require.NoError(t, err)
		require.Contains(t, string(b), `"at":"2024-01-02T03:04:05Z"`)
	})
	t.Run("RejectsOpAtOneByteOverTheLimit", func(t *testing.T) {
		t.Parallel()
		base := &track.Op{Identifiers: ids("u"), Action: track.ActionEvent, Name: "e", Attributes: map[string]any{"k": ""}}
		b, err := track.EncodeOp(base)
		require.NoError(t, err)
		pad := track.MaxOpBytes - len(b)
		base.Attributes["k"] = strings.Repeat("x", pad)
		b, err = track.EncodeOp(base)
		require.NoError(t, err)
		require.Len(t, b, track.MaxOpBytes)
		base.Attributes["k"] = strings.Repeat("x", pad+1)
		_, err = track.EncodeOp(base)
		var ve *track.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, track.ValidationError{Reason: "op is 32769 bytes, limit 32768", Limit: track.MaxOpBytes, Got: track.MaxOpBytes + 1}, *ve)
	})
}

func TestValidateRawOp(t *testing.T) {
	t.Parallel()
	t.Run("DecodesEveryShapeTheAPIShows", func(t *testing.T) {
		t.Parallel()
		raws := []string{
			`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro"},"timestamp":1700000000}`,
			`{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"purchase","id":"01J","attributes":{"amount":10},"timestamp":1700000000}`,
			`{"type":"person","identifiers":{"email":"a@b.c"},"action":"suppress"}`,
			`{"type":"person","identifiers":{"anonymous_id":"a-123"},"action":"event","name":"viewed","attributes":{"page":"/"},"timestamp":1700000000}`,
			`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"id":"b"}}`,
			`{"type":"person","identifiers":{"id":"u1"},"action":"add_device","device":{"token":"tok","platform":"ios","last_used":1700000000}}`,
			`{"type":"person","identifiers":{"id":"u1"},"action":"delete_device","device":{"token":"tok"}}`,
		}
		for _, raw := range raws {
			op, err := track.ValidateRawOp([]byte(raw))
			require.NoError(t, err, raw)
			b, err := track.EncodeOp(op)
			require.NoError(t, err)
			require.JSONEq(t, raw, string(b))
		}
	})
	t.Run("KeepsNumbersExact", func(t *testing.T) {
		t.Parallel()
		raw := `{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"big":12345678901234567890123,"f":1.10}}`
		op, err := track.ValidateRawOp([]byte(raw))
		require.NoError(t, err)
		require.Equal(t, json.Number("12345678901234567890123"), op.Attributes["big"])
		b, err := track.EncodeOp(op)
		require.NoError(t, err)
		require.Equal(t, raw, string(b))
	})
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"InvalidUTF8", "{\"type\":\"person\",\"identifiers\":{\"id\":\"\xff\"},\"action\":\"delete\"}", "track: invalid op: body is not valid UTF-8"},
		{"Array", `[{"action":"delete"}]`, "track: invalid op: body is not a JSON object"},
		{"Empty", ``, "track: invalid op: body is not a JSON object"},
		{"Null", `null`, "track: invalid op: body is not a JSON object"},
		{"Truncated", `{"type":"person"`, "track: invalid op: malformed JSON: unexpected EOF"},
		{"UnknownTopLevelField", `{"type":"person","identifiers":{"id":"u"},"action":"delete","extra":1}`, `track: invalid op: malformed JSON: json: unknown field "extra"`},
		{"UnknownIdentifier", `{"type":"person","identifiers":{"user_id":"u"},"action":"delete"}`, `track: invalid op: malformed JSON: json: unknown field "user_id"`},
		{"WrongFieldType", `{"type":"person","identifiers":{"id":"u"},"action":"identify","timestamp":"now"}`, `track: invalid op: malformed JSON: field "timestamp" must be int64, got string`},
		{"TrailingData", `{"type":"person","identifiers":{"id":"u"},"action":"delete"} {}`, "track: invalid op: trailing data after the JSON object"},
		{"TooBig", `{"type":"person","identifiers":{"id":"u"},"action":"delete"}` + strings.Repeat(" ", track.MaxOpBytes), fmt.Sprintf("track: invalid op: op is %d bytes, limit 32768", track.MaxOpBytes+len(`{"type":"person","identifiers":{"id":"u"},"action":"delete"}`))},
		{"ShapeRule", `{"type":"person","identifiers":{"id":"u"},"action":"event"}`, "track: invalid op: name: is required for event"},
		{"EscapedInvalidSurrogateIsReplaced", `{"type":"person","identifiers":{"id":"u"},"action":"identify","attributes":{"a":"\ud800"}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op, err := track.ValidateRawOp([]byte(tt.raw))
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Nil(t, op)
			require.ErrorIs(t, err, track.ErrInvalidOp)
			require.EqualError(t, err, tt.want)
		})
	}
}
