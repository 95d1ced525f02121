package cdp_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
)

func TestCall_EncodesNamedFieldsInOrderThenExtrasSorted(t *testing.T) {
	t.Parallel()
	c := &cdp.Call{
		Type: cdp.TypeTrack, MessageID: "m1", Timestamp: "2024-01-02T03:04:05.678Z", UserID: "u1",
		Event: "Bought <it>", Properties: map[string]any{"b": 2, "a": "x&y"},
		Context:      map[string]any{"library": map[string]any{"name": "n", "version": "1"}},
		Integrations: map[string]any{"All": true},
		Extra:        map[string]json.RawMessage{"sentAt": json.RawMessage(`"2024-01-02T03:04:06Z"`), "_metadata": json.RawMessage(`{"jsRuntime":"node"}`)},
	}
	b, err := cdp.EncodeCall(c)
	require.NoError(t, err)
	require.Equal(t, `{"type":"track","messageId":"m1","timestamp":"2024-01-02T03:04:05.678Z","userId":"u1","event":"Bought <it>",`+
		`"properties":{"a":"x&y","b":2},"context":{"library":{"name":"n","version":"1"}},"integrations":{"All":true},`+
		`"_metadata":{"jsRuntime":"node"},"sentAt":"2024-01-02T03:04:06Z"}`, string(b))
}

func TestCall_DecodeKeepsUnknownFieldsAndDropsWriteKey(t *testing.T) {
	t.Parallel()
	raw := `{"type":"page","userId":"u1","name":"Home","category":"Docs","properties":{"n":1.50},` +
		`"_metadata":{ "nodeVersion" : "20" },"writeKey":"s3cret","integrations":null,"anonymousId":null}`
	c, err := cdp.ValidateRawCall([]byte(raw), "")
	require.NoError(t, err)
	want := &cdp.Call{
		Type: cdp.TypePage, UserID: "u1", Name: "Home",
		Properties: map[string]any{"n": json.Number("1.50")},
		Extra: map[string]json.RawMessage{
			"category":  json.RawMessage(`"Docs"`),
			"_metadata": json.RawMessage(`{"nodeVersion":"20"}`),
		},
	}
	require.Empty(t, cmp.Diff(want, c), "(-want +got)")
	b, err := cdp.EncodeCall(c)
	require.NoError(t, err)
	require.NotContains(t, string(b), "s3cret")
	require.Contains(t, string(b), `"n":1.50`, "numbers re-encode unchanged")
}

func TestCall_PathTypeReplacesBodyType(t *testing.T) {
	t.Parallel()
	c, err := cdp.ValidateRawCall([]byte(`{"type":"track","userId":"u1","traits":{"plan":"pro"}}`), cdp.TypeIdentify)
	require.NoError(t, err)
	require.Equal(t, cdp.TypeIdentify, c.Type)
}

func TestCall_TypeErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct{ raw, wantField string }{
		{`{"type":"track","userId":5,"event":"e"}`, "userId"},
		{`{"type":"track","userId":"u","event":"e","properties":[1]}`, "properties"},
		{`{"type":"identify","userId":"u","traits":"x"}`, "traits"},
		{`{"type":1}`, "type"},
	}
	for _, tt := range tests {
		_, err := cdp.ValidateRawCall([]byte(tt.raw), "")
		var ve *cdp.ValidationError
		require.ErrorAs(t, err, &ve, tt.raw)
		require.Equal(t, tt.wantField, ve.Field, tt.raw)
	}
}

func TestCall_CloneIsIndependent(t *testing.T) {
	t.Parallel()
	c := &cdp.Call{Type: cdp.TypeIdentify, UserID: "u", Traits: map[string]any{"a": 1}}
	d := c.Clone()
	d.Traits["a"] = 2
	require.Equal(t, 1, c.Traits["a"])
}

func TestTimestamps(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 1, 2, 3, 4, 5, 678_900_000, time.FixedZone("x", 3600))
	require.Equal(t, "2024-01-02T02:04:05.678Z", cdp.FormatTimestamp(ts))
	for _, s := range []string{"2024-01-02T02:04:05.678Z", "2024-01-02T03:04:05.678+01:00", "2024-01-02T02:04:05Z", "2024-01-02T02:04:05.678123456Z"} {
		got, err := cdp.ParseTimestamp(s)
		require.NoError(t, err, s)
		require.Equal(t, int64(1704161045), got.Unix(), s)
	}
	c := cdp.Call{Timestamp: "yesterday"}
	_, ok := c.Time()
	require.False(t, ok)
}

func TestTypes(t *testing.T) {
	t.Parallel()
	for _, typ := range cdp.Types {
		require.True(t, typ.Valid())
		require.Equal(t, typ, cdp.TypeFromPath(typ.Path()))
	}
	require.Equal(t, "/v1/identify", cdp.TypeIdentify.Path())
	require.Empty(t, cdp.Type("batch").Path())
	require.Empty(t, cdp.TypeFromPath("/v1/batch"))
}
