package track

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, wantField string
		ok                  bool
	}{
		{"Plain", `{"a":1,"b":{"c":[1,2,{"d":3}]}}`, "", true},
		{"SameKeyInSiblingObjects", `{"a":{"x":1},"b":{"x":2}}`, "", true},
		{"TopLevelDuplicate", `{"action":"identify","action":"delete"}`, "action", false},
		{"NestedDuplicate", `{"attributes":{"plan":"pro","plan":"free"}}`, "attributes.plan", false},
		{"DuplicateInArrayElement", `{"batch":[{"a":1},{"b":1,"b":2}]}`, "batch.b", false},
		{"HugeNumber", `{"attributes":{"n":1e99999}}`, "attributes.n", false},
		{"HugeNegativeNumber", `{"n":-1e400}`, "n", false},
		{"BigButFinite", `{"n":1.7e308,"m":123456789012345678901234567890}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkJSON([]byte(tt.in))
			if tt.ok {
				require.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "%v", err)
			require.Equal(t, tt.wantField, ve.Field)
			require.ErrorIs(t, err, ErrInvalidOp)
		})
	}
}

func TestValidateRawOpRefusesAmbiguousJSON(t *testing.T) {
	t.Parallel()
	_, err := ValidateRawOp([]byte(`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro","plan":"free"}}`))
	require.ErrorIs(t, err, ErrInvalidOp)
	_, err = ValidateRawOp([]byte(`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"n":1e99999}}`))
	require.ErrorIs(t, err, ErrInvalidOp)
}

func TestCheckJSONEscapedKeysAndStrings(t *testing.T) {
	t.Parallel()
	require.Error(t, checkJSON([]byte(`{"a":1,"\u0061":2}`)), "the same key, escaped")
	require.NoError(t, checkJSON([]byte(`{"a":"x\",\"a\":1","b":"{[1e99999]}"}`)), "brackets and numbers inside strings are text")
	require.NoError(t, checkJSON([]byte(`{"n":1.5e3,"m":-0.25,"big":12345678901234567890123}`)))
	require.Error(t, checkJSON([]byte(`[{"x":{"y":1,"y":2}}]`)))
}

func FuzzCheckJSONAgreesWithTheDecoder(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,2,{"c":"d"}]},"e":"f"}`, `{"a":1,"a":2}`, `{"n":1e400}`, `{"s":"\"}"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return // checkJSON only sees valid JSON
		}
		_ = checkJSON([]byte(s)) // must not panic
	})
}

// TestValidateRawOpTrailingData: data after the op's object, however
// malformed, is reported as trailing data, never a panic of checkJSON
// walking past the object.
func TestValidateRawOpTrailingData(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{}}`, `{}]`, `{} "`, `{} {"`, `{}]]}`} {
		_, err := ValidateRawOp([]byte(in))
		require.ErrorContains(t, err, "trailing data", in)
	}
}
