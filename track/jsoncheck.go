package track

import (
	"encoding/json"
	"math"
	"strconv"
)

// CheckJSON refuses what encoding/json takes silently but the Track API
// refuses: a duplicate key in an object, or a number out of float64's
// range. raw must already be valid JSON. Errors are *ValidationError.
func CheckJSON(raw []byte) error { return checkJSON(raw) }

// checkJSON refuses what encoding/json would take silently but Customer.io
// would not receive as sent: an object with the same key twice (encoding/json
// keeps the last value, another reader the first) and a number a float64
// cannot hold (1e99999 decodes, as json.Number, then reaches Customer.io as
// infinity or as an error). It returns a *ValidationError naming the path,
// or nil. raw must already be valid JSON (the decoder said so): checkJSON
// only walks it, in one pass without decoding values, so it costs little
// beside the decode.
func checkJSON(raw []byte) error {
	type frame struct {
		object bool
		keys   []string
		path   string
	}
	var stack []frame
	expectKey := false // inside an object, before a key
	key := ""          // the last key read, for paths
	path := func() string {
		p := ""
		if len(stack) > 0 {
			p = stack[len(stack)-1].path
		}
		if len(stack) > 0 && stack[len(stack)-1].object && key != "" {
			if p == "" {
				return key
			}
			return p + "." + key
		}
		return p
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '{' || c == '[':
			stack = append(stack, frame{object: c == '{', path: path()})
			expectKey, key = c == '{', ""
		case c == '}' || c == ']':
			if len(stack) == 0 {
				return nil // trailing data after the value: the caller reports it
			}
			stack = stack[:len(stack)-1]
			expectKey, key = false, ""
		case c == ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		case c == '"':
			end, escaped := stringEnd(raw, i)
			if end <= i {
				return nil // an unterminated string in trailing data: the caller reports it
			}
			if expectKey {
				k := string(raw[i+1 : end])
				if escaped {
					_ = json.Unmarshal(raw[i:end+1], &k)
				}
				top := &stack[len(stack)-1]
				for _, seen := range top.keys {
					if seen == k {
						key = k
						return invalid(path(), "key appears twice in one object")
					}
				}
				top.keys = append(top.keys, k)
				key, expectKey = k, false
			}
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			plain := true // digits, a sign and a point only: always finite
			for j < len(raw) && (raw[j] == '-' || raw[j] == '+' || raw[j] == '.' || raw[j] == 'e' || raw[j] == 'E' ||
				(raw[j] >= '0' && raw[j] <= '9')) {
				if raw[j] == 'e' || raw[j] == 'E' {
					plain = false
				}
				j++
			}
			if !plain || j-i > 300 {
				if f, err := strconv.ParseFloat(string(raw[i:j]), 64); err != nil || math.IsInf(f, 0) {
					return invalid(path(), "number "+truncate(string(raw[i:j]), 32)+" is out of range")
				}
			}
			i = j - 1
		}
	}
	return nil
}

// stringEnd returns the index of the quote that closes the string opening
// at raw[start], and whether the string holds an escape.
func stringEnd(raw []byte, start int) (int, bool) {
	escaped := false
	for i := start + 1; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return len(raw) - 1, escaped
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
