package track

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// appendOp appends op's JSON encoding to b, byte for byte what
// encoding/json writes for it without HTML escaping, for the values decoded
// JSON and most callers hold: strings, bools, nil, json.Number, Go integers
// and floats, map[string]any and []any. It reports false, with b as it was,
// for anything else (a custom type, a non-finite float, an invalid
// json.Number, nesting past maxNesting): the caller then encodes with
// encoding/json, which also says what is wrong.
func appendOp(b []byte, op *Op) ([]byte, bool) {
	start := len(b)
	fail := func() ([]byte, bool) { return b[:start], false }
	b = append(b, `{"type":`...)
	b = appendJSONString(b, op.Type)
	if op.Identifiers != nil {
		b = append(b, `,"identifiers":`...)
		b = appendIdentifiers(b, op.Identifiers)
	}
	b = append(b, `,"action":`...)
	b = appendJSONString(b, string(op.Action))
	if op.Name != "" {
		b = append(b, `,"name":`...)
		b = appendJSONString(b, op.Name)
	}
	if op.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, op.ID)
	}
	if op.Timestamp != 0 {
		b = append(b, `,"timestamp":`...)
		b = strconv.AppendInt(b, op.Timestamp, 10)
	}
	if len(op.Attributes) > 0 {
		b = append(b, `,"attributes":`...)
		var ok bool
		if b, ok = appendMap(b, op.Attributes, 0); !ok {
			return fail()
		}
	}
	if d := op.Device; d != nil {
		b = append(b, `,"device":{"token":`...)
		b = appendJSONString(b, d.Token)
		if d.Platform != "" {
			b = append(b, `,"platform":`...)
			b = appendJSONString(b, d.Platform)
		}
		if d.LastUsed != 0 {
			b = append(b, `,"last_used":`...)
			b = strconv.AppendInt(b, d.LastUsed, 10)
		}
		if len(d.Attributes) > 0 {
			b = append(b, `,"attributes":`...)
			var ok bool
			if b, ok = appendMap(b, d.Attributes, 0); !ok {
				return fail()
			}
		}
		b = append(b, '}')
	}
	if op.Primary != nil {
		b = append(b, `,"primary":`...)
		b = appendIdentifiers(b, op.Primary)
	}
	if op.Secondary != nil {
		b = append(b, `,"secondary":`...)
		b = appendIdentifiers(b, op.Secondary)
	}
	if len(op.Relationships) > 0 {
		// Rare, and encoding/json compacts each raw message: let it.
		return fail()
	}
	return append(b, '}'), true
}

func appendIdentifiers(b []byte, ids *Identifiers) []byte {
	b = append(b, '{')
	n := len(b)
	field := func(name, v string) {
		if v == "" {
			return
		}
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, name...)
		b = appendJSONString(b, v)
	}
	field(`"id":`, ids.ID)
	field(`"email":`, ids.Email)
	field(`"cio_id":`, ids.CioID)
	field(`"phone":`, ids.Phone)
	field(`"anonymous_id":`, ids.AnonymousID)
	return append(b, '}')
}

// appendMap appends m as encoding/json does: keys sorted.
func appendMap(b []byte, m map[string]any, depth int) ([]byte, bool) {
	if m == nil {
		return append(b, "null"...), true
	}
	if depth > maxNesting {
		return b, false
	}
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var ok bool
		if b, ok = appendValue(b, m[k], depth+1); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

func appendValue(b []byte, v any, depth int) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendJSONString(b, x), true
	case json.Number:
		s := string(x)
		if s == "" {
			s = "0"
		}
		if !isNumberLiteral(s) {
			return b, false
		}
		return append(b, s...), true
	case bool:
		return strconv.AppendBool(b, x), true
	case float64:
		return appendFloat(b, x, 64)
	case float32:
		return appendFloat(b, float64(x), 32)
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case int32:
		return strconv.AppendInt(b, int64(x), 10), true
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint64:
		return strconv.AppendUint(b, x, 10), true
	case map[string]any:
		return appendMap(b, x, depth)
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		if depth > maxNesting {
			return b, false
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendValue(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

// appendFloat formats f as encoding/json does (ES6 number to string).
func appendFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does without HTML
// escaping: '"', '\\' and control characters escaped, invalid UTF-8 as
// \ufffd, U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// isNumberLiteral reports whether s is a JSON number literal, exactly as
// encoding/json decides it when it encodes a json.Number.
func isNumberLiteral(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	default:
		return false
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}
