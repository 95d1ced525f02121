package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cioq/cioq/track"
)

// The official clients (go-customerio, customerio-node, customerio-python,
// customerio-ruby) send some v1 fields with a JSON type other than the one
// the Track API documents, and Customer.io takes them. A v1 call decodes
// those fields leniently and normalises them to the v2 op's types:
//
//   - device.last_used: go-customerio sends fmt.Sprintf("%v", v), a string
//     ("1700000000", or "1.7e+09" for a float64); the Python and Node
//     clients pass the caller's value through (an int, or a float such as
//     Python's time.time()). Any JSON number or string holding one is
//     taken; a fraction of a second is dropped.
//   - timestamp (event) and _timestamp (identify): a JSON number or a
//     string holding one, a whole number of seconds (1.7e+09 is whole).
//   - anonymous_id, the event id, device.id and the merge identifiers: the
//     Python, Ruby and Node clients send the caller's value as is, so an
//     integer id (anonymous_id=123) arrives as a JSON number: a number is
//     taken as its decimal text ("123").
//
// Every other field keeps its documented type.

// v1Text reads a v1 field that is a string, or a JSON number an official
// client sent for it (its literal text). nil (absent or null) is "".
func v1Text(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return string(x), nil
	}
	return "", errors.New("must be a string")
}

// v1Seconds reads a v1 unix time: a JSON number, or a string holding one.
// A fraction of a second is dropped when dropFraction is set, else it is an
// error. nil (absent or null) and "" are 0 (none). The result is within
// [0, track.MaxTimestamp]: a larger value is almost always milliseconds.
func v1Seconds(v any, dropFraction bool) (int64, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		s = string(x)
	case string:
		s = strings.TrimSpace(x)
		if s == "" {
			return 0, nil
		}
	default:
		return 0, errors.New("must be unix seconds: a number or a string of digits")
	}
	const outOfRange = "must be unix seconds (not milliseconds), not negative"
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > track.MaxTimestamp {
			return 0, errors.New(outOfRange)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || !validNumber(s) {
		return 0, errors.New("must be unix seconds: a number or a string of digits")
	}
	if f != math.Trunc(f) && !dropFraction {
		return 0, errors.New("must be a whole number of unix seconds")
	}
	if f < 0 || f > track.MaxTimestamp {
		return 0, errors.New(outOfRange)
	}
	return int64(f), nil
}

// v1Identifiers reads a merge person: an object of one or more of id,
// email, cio_id, phone (and anonymous_id, which validation then refuses
// for merge), each a string or a number (v1Text).
func v1Identifiers(field string, m map[string]any) (*track.Identifiers, error) {
	if m == nil {
		return nil, nil
	}
	var ids track.Identifiers
	for k, v := range m {
		s, err := v1Text(v)
		if err != nil {
			return nil, malformed("%s: %s", fieldPath(field, k), err.Error())
		}
		switch k {
		case "id":
			ids.ID = s
		case "email":
			ids.Email = s
		case "cio_id":
			ids.CioID = s
		case "phone":
			ids.Phone = s
		case "anonymous_id":
			ids.AnonymousID = s
		default:
			return nil, malformed("%s: unknown identifier (want id, email or cio_id)", fieldPath(field, k))
		}
	}
	return &ids, nil
}

// v1FieldError renders the error of one lenient v1 field.
func v1FieldError(field string, err error) *MalformedError {
	return &MalformedError{Reason: fmt.Sprintf("%s: %s", field, err.Error())}
}

// fieldPath names a map key in an error, bounded and printable (as track
// does).
func fieldPath(prefix, key string) string {
	const maxKeyInError = 40
	if len(key) > maxKeyInError {
		key = key[:maxKeyInError] + "…"
	}
	return prefix + "." + strings.ToValidUTF8(key, "\uFFFD")
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	return s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && json.Valid([]byte(s))
}

// invalid is a *track.ValidationError without a limit.
func invalid(field, reason string) *track.ValidationError {
	return &track.ValidationError{Field: field, Reason: reason}
}

// jsonErrorText renders a decode error without quoting input values.
func jsonErrorText(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %q must be %s, got %s", ute.Field, ute.Type, ute.Value)
	}
	return err.Error()
}
