package track

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"
)

// fieldPath names a map key in an error, bounded and printable.
func fieldPath(prefix, key string) string {
	const maxKeyInError = 40
	if len(key) > maxKeyInError {
		key = key[:maxKeyInError] + "…"
	}
	return prefix + "." + strings.ToValidUTF8(key, "\uFFFD")
}

// validateAttrMap checks names and values; perValue applies
// MaxAttributeValueBytes to each value (person and device attributes).
func validateAttrMap(field string, attrs map[string]any, perValue bool) error {
	var scratch []byte
	for k, v := range attrs {
		if k != "" && len(k) <= MaxAttributeNameBytes && utf8.ValidString(k) && attrOK(v, perValue, &scratch) {
			continue // valid: no field path to build
		}
		if !utf8.ValidString(k) {
			return invalid(fieldPath(field, k), "name is not valid UTF-8")
		}
		if k == "" {
			return invalid(field, "name is empty")
		}
		if len(k) > MaxAttributeNameBytes {
			return tooBig(fieldPath(field, k), "name", len(k), MaxAttributeNameBytes)
		}
		path := fieldPath(field, k)
		if err := checkAttrValue(path, v, perValue); err != nil {
			return err
		}
	}
	return nil
}

// checkAttrValue checks one attribute value; perValue applies
// MaxAttributeValueBytes.
func checkAttrValue(path string, v any, perValue bool) error {
	// Fast path for what decoded JSON and most callers hold.
	switch x := v.(type) {
	case nil, bool, int, int64, float32, float64:
		if f, ok := x.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return invalid(path, "is not a finite number")
		}
		if f, ok := x.(float32); ok && (math.IsNaN(float64(f)) || math.IsInf(float64(f), 0)) {
			return invalid(path, "is not a finite number")
		}
		return nil
	case string:
		if !utf8.ValidString(x) {
			return invalid(path, "is not valid UTF-8")
		}
		if perValue && len(x) > MaxAttributeValueBytes {
			return tooBig(path, "value", len(x), MaxAttributeValueBytes)
		}
		return nil
	case json.Number:
		if !validNumber(string(x)) {
			return invalid(path, "is not a valid JSON number")
		}
		if perValue && len(x) > MaxAttributeValueBytes {
			return tooBig(path, "value", len(x), MaxAttributeValueBytes)
		}
		return nil
	}
	rv := reflect.ValueOf(v)
	sized, err := checkValue(path, rv, 0)
	if err != nil || !perValue {
		return err
	}
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.String && !sized {
		if n := rv.Len(); n > MaxAttributeValueBytes {
			return tooBig(path, "value", n, MaxAttributeValueBytes)
		}
		return nil
	}
	if !sized {
		return nil
	}
	n, err := jsonSize(v)
	if err != nil {
		return invalid(path, "cannot be encoded as JSON: "+err.Error())
	}
	if n > MaxAttributeValueBytes {
		return tooBig(path, "value", n, MaxAttributeValueBytes)
	}
	return nil
}

// checkValue walks an attribute value: every string (and map key) must be
// valid UTF-8, floats finite, and the value JSON-encodable. It reports
// whether the value's size is that of its JSON encoding (objects, arrays,
// json.Number, custom encodings) rather than a scalar's.
func checkValue(path string, v reflect.Value, depth int) (sized bool, err error) {
	if depth > maxNesting {
		return true, invalid(path, fmt.Sprintf("nests deeper than %d levels", maxNesting))
	}
	if !v.IsValid() {
		return false, nil // nil
	}
	t := v.Type()
	switch t {
	case reflect.TypeFor[json.Number]():
		if !validNumber(v.String()) {
			return true, invalid(path, "is not a valid JSON number")
		}
		return true, nil
	case reflect.TypeFor[json.RawMessage]():
		b := v.Bytes()
		if !utf8.Valid(b) || !json.Valid(b) {
			return true, invalid(path, "is not valid UTF-8 JSON")
		}
		return true, nil
	}
	if t.Implements(reflect.TypeFor[json.Marshaler]()) {
		// A custom encoding (time.Time, ...): its output is checked as part
		// of the op's encoding.
		return true, nil
	}
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return false, invalid(path, "is not valid UTF-8")
		}
		return false, nil
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return false, nil
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return false, invalid(path, "is not a finite number")
		}
		return false, nil
	case reflect.Interface:
		if v.IsNil() {
			return false, nil
		}
		return checkValue(path, v.Elem(), depth)
	case reflect.Pointer:
		if v.IsNil() {
			return false, nil
		}
		return checkValue(path, v.Elem(), depth+1)
	case reflect.Map:
		if k := t.Key().Kind(); k != reflect.String {
			return true, nil // int keys etc.: JSON object with number names
		}
		it := v.MapRange()
		for it.Next() {
			key := it.Key().String()
			if !utf8.ValidString(key) {
				return true, invalid(path, "has a key that is not valid UTF-8")
			}
			if _, err := checkValue(fieldPath(path, key), it.Value(), depth+1); err != nil {
				return true, err
			}
		}
		return true, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return true, nil // base64
		}
		for i := range v.Len() {
			if _, err := checkValue(fmt.Sprintf("%s[%d]", path, i), v.Index(i), depth+1); err != nil {
				return true, err
			}
		}
		return true, nil
	case reflect.Struct:
		for i := range v.NumField() {
			if t.Field(i).IsExported() {
				if _, err := checkValue(path+"."+t.Field(i).Name, v.Field(i), depth+1); err != nil {
					return true, err
				}
			}
		}
		return true, nil
	default:
		return true, invalid(path, "is a "+t.String()+", not a JSON value")
	}
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	return s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && json.Valid([]byte(s))
}

// attrOK reports whether checkAttrValue(path, v, perValue) certainly
// returns nil, without building the paths an error needs. It is exact for
// the types decoded JSON holds and says false for anything else, so the
// caller then runs checkAttrValue, which says what is wrong. scratch is a
// buffer it may reuse to measure a nested value's encoding.
func attrOK(v any, perValue bool, scratch *[]byte) bool {
	switch x := v.(type) {
	case nil, bool, int, int64:
		return true
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case string:
		return utf8.ValidString(x) && (!perValue || len(x) <= MaxAttributeValueBytes)
	case json.Number:
		return validNumber(string(x)) && (!perValue || len(x) <= MaxAttributeValueBytes)
	case map[string]any, []any:
		if !nestedOK(v, 0) {
			return false
		}
		if !perValue {
			return true
		}
		b, ok := appendValue((*scratch)[:0], v, 0) // encoding/json's bytes (encode.go)
		*scratch = b
		return ok && len(b) <= MaxAttributeValueBytes
	}
	return false
}

// nestedOK reports whether checkValue accepts v at depth, for the types
// decoded JSON holds (false for any other).
func nestedOK(v any, depth int) bool {
	if depth > maxNesting {
		return false
	}
	switch x := v.(type) {
	case nil, bool, int, int64:
		return true
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case string:
		return utf8.ValidString(x)
	case json.Number:
		return validNumber(string(x))
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) || !nestedOK(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range x {
			if !nestedOK(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
