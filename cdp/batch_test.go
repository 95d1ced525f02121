package cdp_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
)

func TestValidateRawBatch_FoldsTopLevelContextIntoEveryCall(t *testing.T) {
	t.Parallel()
	body := `{"batch":[
		{"type":"identify","userId":"u1","traits":{"plan":"pro"}},
		{"type":"track","userId":"u1","event":"e","context":{"ip":"10.0.0.1"},"integrations":{"X":false}}
	],"context":{"ip":"1.2.3.4","library":{"name":"analytics-go"}},"integrations":{"All":true},
	"messageId":"envelope","sentAt":"2024-01-02T03:04:05Z","writeKey":"k"}`
	b, err := cdp.ValidateRawBatch([]byte(body))
	require.NoError(t, err)
	require.Empty(t, b.Invalid)
	require.Len(t, b.Valid(), 2)
	first, second := b.Calls[0], b.Calls[1]
	require.Equal(t, map[string]any{"ip": "1.2.3.4", "library": map[string]any{"name": "analytics-go"}}, first.Context)
	require.Equal(t, map[string]any{"All": true}, first.Integrations)
	require.Equal(t, "10.0.0.1", second.Context["ip"], "the call's own context wins")
	require.Equal(t, map[string]any{"name": "analytics-go"}, second.Context["library"])
	require.Equal(t, map[string]any{"All": true, "X": false}, second.Integrations)
	require.Empty(t, first.MessageID, "the envelope's messageId is not a call's")
	require.Nil(t, first.Extra)
}

func TestValidateRawBatch_ListsEveryInvalidCallByIndex(t *testing.T) {
	t.Parallel()
	body := `{"batch":[
		{"type":"track","userId":"u1","event":"ok"},
		{"type":"track","userId":"u1"},
		{"userId":"u1"},
		"nope",
		{"type":"alias","userId":"u1","previousId":"a1"}
	]}`
	b, err := cdp.ValidateRawBatch([]byte(body))
	require.NoError(t, err)
	require.Len(t, b.Calls, 5)
	require.NotNil(t, b.Calls[0])
	require.Nil(t, b.Calls[1])
	require.NotNil(t, b.Calls[4])
	var got []string
	for _, ve := range b.Invalid {
		got = append(got, ve.Message())
	}
	require.Equal(t, []string{
		"batch[1].event: is required for track",
		"batch[2].type: is missing",
		"batch[3]: is not a JSON object",
	}, got)
}

func TestValidateRawBatch_RejectsBadEnvelopes(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, want string }{
		{"NotJSON", `{"batch":`, "malformed JSON: unexpected end of JSON"},
		{"NotObject", `[]`, "body is not a JSON object"},
		{"NoBatch", `{"calls":[]}`, "batch: is required"},
		{"NullBatch", `{"batch":null}`, "batch: is required"},
		{"EmptyBatch", `{"batch":[]}`, "batch: is empty"},
		{"BatchNotArray", `{"batch":{}}`, "malformed JSON: field \"batch\" must be []json.RawMessage, got object"},
		{"ContextNotObject", `{"batch":[{}],"context":"x"}`, "context: must be an object"},
		{"IntegrationsNotObject", `{"batch":[{}],"integrations":[true]}`, "integrations: must be an object"},
		{"NotUTF8", "{\"batch\":[\"\xff\"]}", "body is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cdp.ValidateRawBatch([]byte(tt.body))
			var ve *cdp.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tt.want, ve.Message())
		})
	}
}

func TestValidateRawBatch_BodyLimitIsInclusive(t *testing.T) {
	t.Parallel()
	call := func(n int) string {
		return `{"type":"track","userId":"u","event":"e","properties":{"p":"` + strings.Repeat("x", n) + `"}}`
	}
	// Bodies of exactly MaxBatchBytes pass, one byte more does not.
	var calls []string
	for range 16 {
		calls = append(calls, call(30_000))
	}
	body := `{"batch":[` + strings.Join(calls, ",") + `]}`
	pad := cdp.MaxBatchBytes - len(body)
	require.Positive(t, pad)
	calls = append(calls, call(pad-len(call(0))-1))
	body = `{"batch":[` + strings.Join(calls, ",") + `]}`
	require.Len(t, body, cdp.MaxBatchBytes)
	b, err := cdp.ValidateRawBatch([]byte(body))
	require.NoError(t, err)
	require.Empty(t, b.Invalid)

	_, err = cdp.ValidateRawBatch([]byte(body + " "))
	var ve *cdp.ValidationError
	require.ErrorAs(t, err, &ve)
	require.True(t, ve.TooLarge())
}

func TestValidateRawBatch_CallOverLimitFailsAlone(t *testing.T) {
	t.Parallel()
	big := `{"type":"track","userId":"u","event":"e","properties":{"p":"` + strings.Repeat("x", cdp.MaxCallBytes) + `"}}`
	b, err := cdp.ValidateRawBatch([]byte(`{"batch":[{"type":"track","userId":"u","event":"small"},` + big + `]}`))
	require.NoError(t, err)
	require.Len(t, b.Valid(), 1)
	require.Len(t, b.Invalid, 1)
	require.Equal(t, "batch[1]", b.Invalid[0].Field)
	require.True(t, b.Invalid[0].TooLarge())
}

func TestEncodedBatchSize_IsTheBodyLength(t *testing.T) {
	t.Parallel()
	var calls [][]byte
	for _, c := range []*cdp.Call{
		{Type: cdp.TypeIdentify, UserID: "u1"},
		{Type: cdp.TypeTrack, UserID: "u1", Event: "e"},
		{Type: cdp.TypeAlias, UserID: "u1", PreviousID: "a"},
	} {
		b, err := cdp.EncodeCall(c)
		require.NoError(t, err)
		calls = append(calls, b)
		want, err := json.Marshal(map[string][]json.RawMessage{"batch": rawAll(calls)})
		require.NoError(t, err)
		require.Equal(t, len(want), cdp.EncodedBatchSize(calls))
	}
	require.Equal(t, len(`{"batch":[]}`), cdp.EncodedBatchSize(nil))
}

func rawAll(bs [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, len(bs))
	for i, b := range bs {
		out[i] = b
	}
	return out
}

func TestDecoding_HandsBackTheEncodingOnce(t *testing.T) {
	t.Parallel()
	c, b, err := cdp.DecodeCall([]byte(`{"userId":"u1","event":"e","_metadata":{"a":1}}`), cdp.TypeTrack)
	require.NoError(t, err)
	want, err := cdp.EncodeCall(c)
	require.NoError(t, err)
	require.Equal(t, string(want), string(b))

	batch, err := cdp.ValidateRawBatch([]byte(`{"batch":[{"type":"track","userId":"u1","event":"e"},{"type":"track"}],"context":{"ip":"1.2.3.4"}}`))
	require.NoError(t, err)
	require.Len(t, batch.Encoded, 2)
	require.Equal(t, `{"type":"track","userId":"u1","event":"e","context":{"ip":"1.2.3.4"}}`, string(batch.Encoded[0]),
		"the batch context is in the stored form")
	require.Nil(t, batch.Encoded[1])
}
