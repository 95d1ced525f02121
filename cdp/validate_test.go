package cdp_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/track"
)

func TestValidateCall_AcceptsEveryTypeAndSemanticEvent(t *testing.T) {
	t.Parallel()
	device := map[string]any{"device": map[string]any{"token": "tok", "type": "ios"}}
	tests := []struct {
		name string
		call cdp.Call
	}{
		{"IdentifyByUserID", cdp.Call{Type: cdp.TypeIdentify, UserID: "u1", Traits: map[string]any{"plan": "pro"}}},
		{"IdentifyAnonymous", cdp.Call{Type: cdp.TypeIdentify, AnonymousID: "a1"}},
		{"IdentifyByEmailTrait", cdp.Call{Type: cdp.TypeIdentify, Traits: map[string]any{"email": "a@b.c"}}},
		{"Track", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: "purchase", Properties: map[string]any{"n": 1}}},
		{"TrackAnonymous", cdp.Call{Type: cdp.TypeTrack, AnonymousID: "a1", Event: "viewed"}},
		{"PageWithoutName", cdp.Call{Type: cdp.TypePage, UserID: "u1"}},
		{"Screen", cdp.Call{Type: cdp.TypeScreen, AnonymousID: "a1", Name: "Home"}},
		{"Group", cdp.Call{Type: cdp.TypeGroup, UserID: "u1", GroupID: "acme", Traits: map[string]any{"object_type_id": "1"}}},
		{"Alias", cdp.Call{Type: cdp.TypeAlias, UserID: "u1", PreviousID: "a1"}},
		{"DeviceCreated", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventDeviceCreatedOrUpdated, Context: device}},
		{"DeviceDeleted", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventDeviceDeleted, Context: device}},
		{"UserDeleted", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventUserDeleted}},
		{"UserSuppressed", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventUserSuppressed}},
		{"UserUnsuppressed", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventUserUnsuppressed}},
		{"RelationshipDeleted", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventRelationshipDeleted, Properties: map[string]any{"objectId": "acme"}}},
		{"ObjectDeleted", cdp.Call{Type: cdp.TypeTrack, AnonymousID: "x", Event: cdp.EventObjectDeleted, Properties: map[string]any{"objectId": "acme"}}},
		{"TimestampWithOffset", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: "e", Timestamp: "2024-01-02T03:04:05+02:00"}},
		{"GoValuesInProperties", cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: "e", Properties: map[string]any{
			"struct": struct{ A int }{1}, "slice": []string{"x"}, "f32": float32(1.5), "u": uint8(3), "n": json.Number("12")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, cdp.ValidateCall(&tt.call))
		})
	}
}

func TestValidateCall_RejectsWithTheFieldAtFault(t *testing.T) {
	t.Parallel()
	deep := map[string]any{}
	cur := deep
	for range 70 {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	tests := []struct {
		name      string
		call      *cdp.Call
		wantField string
	}{
		{"Nil", nil, ""},
		{"NoType", &cdp.Call{UserID: "u"}, "type"},
		{"UnknownType", &cdp.Call{Type: "batch", UserID: "u"}, "type"},
		{"IdentifyNobody", &cdp.Call{Type: cdp.TypeIdentify, Traits: map[string]any{"plan": "x"}}, "userId"},
		{"TrackNoEvent", &cdp.Call{Type: cdp.TypeTrack, UserID: "u"}, "event"},
		{"TrackBlankEvent", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "  "}, "event"},
		{"TrackNobody", &cdp.Call{Type: cdp.TypeTrack, Event: "e"}, "userId"},
		{"PageNobody", &cdp.Call{Type: cdp.TypePage, Name: "p"}, "userId"},
		{"GroupNoGroupID", &cdp.Call{Type: cdp.TypeGroup, UserID: "u"}, "groupId"},
		{"AliasNoPrevious", &cdp.Call{Type: cdp.TypeAlias, UserID: "u"}, "previousId"},
		{"AliasNoUser", &cdp.Call{Type: cdp.TypeAlias, PreviousID: "a"}, "userId"},
		{"DeviceWithoutToken", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: cdp.EventDeviceCreatedOrUpdated}, "context.device.token"},
		{"DeviceAnonymous", &cdp.Call{Type: cdp.TypeTrack, AnonymousID: "a", Event: cdp.EventDeviceDeleted,
			Context: map[string]any{"device": map[string]any{"token": "t"}}}, "userId"},
		{"DeleteAnonymous", &cdp.Call{Type: cdp.TypeTrack, AnonymousID: "a", Event: cdp.EventUserDeleted}, "userId"},
		{"SuppressAnonymous", &cdp.Call{Type: cdp.TypeTrack, AnonymousID: "a", Event: cdp.EventUserSuppressed}, "userId"},
		{"RelationshipWithoutObject", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: cdp.EventRelationshipDeleted}, "properties.objectId"},
		{"ObjectDeletedWithoutObject", &cdp.Call{Type: cdp.TypeTrack, AnonymousID: "a", Event: cdp.EventObjectDeleted}, "properties.objectId"},
		{"MillisecondTimestamp", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Timestamp: "1700000000000"}, "timestamp"},
		{"TimestampWithoutZone", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Timestamp: "2024-01-02T03:04:05"}, "timestamp"},
		{"InvalidUTF8UserID", &cdp.Call{Type: cdp.TypeTrack, UserID: "u\xff", Event: "e"}, "userId"},
		{"InvalidUTF8Value", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Properties: map[string]any{"k": "\xff"}}, "properties.k"},
		{"InvalidUTF8Key", &cdp.Call{Type: cdp.TypeIdentify, UserID: "u", Traits: map[string]any{"\xff": 1}}, "traits.\uFFFD"},
		{"NaN", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Properties: map[string]any{"x": []any{math.NaN()}}}, "properties.x[0]"},
		{"BadNumber", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Properties: map[string]any{"x": json.Number("1e999")}}, "properties.x"},
		{"TooDeep", &cdp.Call{Type: cdp.TypeIdentify, UserID: "u", Traits: deep}, ""},
		{"UnencodableValue", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Properties: map[string]any{"ch": make(chan int)}}, "properties.ch"},
		{"ExtraNamesAField", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Extra: map[string]json.RawMessage{"userId": json.RawMessage(`"x"`)}}, "userId"},
		{"ExtraCarriesWriteKey", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Extra: map[string]json.RawMessage{"writeKey": json.RawMessage(`"k"`)}}, "writeKey"},
		{"ExtraNotJSON", &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Extra: map[string]json.RawMessage{"x": json.RawMessage(`{`)}}, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := cdp.ValidateCall(tt.call)
			var ve *cdp.ValidationError
			require.ErrorAs(t, err, &ve)
			if tt.name != "TooDeep" {
				require.Equal(t, tt.wantField, ve.Field, err.Error())
			}
			require.ErrorIs(t, err, cdp.ErrInvalidCall)
			require.ErrorIs(t, err, track.ErrInvalidOp, "one sentinel for both APIs")
			require.True(t, cdp.IsPermanent(err))
			_, encErr := cdp.EncodeCall(tt.call)
			require.Error(t, encErr, "EncodeCall rejects what ValidateCall rejects")
		})
	}
}

func TestValidateCall_SizeLimitIsInclusive(t *testing.T) {
	t.Parallel()
	call := func(n int) *cdp.Call {
		return &cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: "e", Properties: map[string]any{"p": strings.Repeat("x", n)}}
	}
	b, err := cdp.EncodeCall(call(0))
	require.NoError(t, err)
	pad := cdp.MaxCallBytes - len(b)
	b, err = cdp.EncodeCall(call(pad))
	require.NoError(t, err)
	require.Len(t, b, cdp.MaxCallBytes)

	_, err = cdp.EncodeCall(call(pad + 1))
	var ve *cdp.ValidationError
	require.ErrorAs(t, err, &ve)
	require.True(t, ve.TooLarge())
	require.Equal(t, cdp.MaxCallBytes, ve.Limit)
	require.Equal(t, cdp.MaxCallBytes+1, ve.Got)
	require.Equal(t, "call is 32769 bytes, limit 32768", ve.Message())
}

func TestValidateRawCall_RejectsBadBodies(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, raw, wantReason string }{
		{"NotUTF8", "{\"type\":\"track\",\"userId\":\"\xff\"}", "body is not valid UTF-8"},
		{"Array", `[{"type":"track"}]`, "is not a JSON object"},
		{"Empty", ``, "is not a JSON object"},
		{"Truncated", `{"type":"track",`, "malformed JSON: unexpected end of JSON"},
		{"Trailing", `{"type":"track","userId":"u","event":"e"} {}`, "malformed JSON: trailing data after the JSON value"},
		{"Null", `null`, "is not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cdp.ValidateRawCall([]byte(tt.raw), "")
			var ve *cdp.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tt.wantReason, ve.Reason)
		})
	}
	_, err := cdp.ValidateRawCall([]byte(`{"type":"track","userId":"`+strings.Repeat("u", cdp.MaxCallBytes)+`"}`), "")
	var ve *cdp.ValidationError
	require.ErrorAs(t, err, &ve)
	require.True(t, ve.TooLarge())
}

func TestValidationError_NeverQuotesValues(t *testing.T) {
	t.Parallel()
	secret := "person-secret-value"
	calls := []*cdp.Call{
		{Type: cdp.TypeTrack, UserID: secret + "\xff", Event: "e"},
		{Type: cdp.TypeTrack, UserID: "u", Event: "e", Properties: map[string]any{"k": secret + "\xff"}},
		{Type: cdp.TypeTrack, UserID: "u", Event: "e", Timestamp: secret},
	}
	for _, c := range calls {
		err := cdp.ValidateCall(c)
		require.Error(t, err)
		require.NotContains(t, err.Error(), secret)
	}
	_, err := cdp.ValidateRawCall([]byte(`{"type":"track","userId":`+secret+`}`), "")
	require.Error(t, err)
	require.NotContains(t, err.Error(), secret)
	require.True(t, errors.Is(err, cdp.ErrInvalidCall))
}
