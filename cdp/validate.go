package cdp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Pipelines API limits (docs/pipelines.md, "Limits"). Sizes are in bytes.
const (
	// MaxCallBytes bounds one call: the body of a single-call request, and
	// each element of a batch. Customer.io documents "32KB"; its Node and
	// Python SDKs check 32 × 1024.
	MaxCallBytes = 32 << 10
	// MaxBatchBytes bounds a /v1/batch body: it must be at most this long.
	// Customer.io documents "500KB"; cioq takes the smaller reading, 500,000
	// bytes (the limit of Customer.io's Go SDK; its Node SDK stops at
	// 491,520, its Python SDK at 475,000), so what cioq sends fits either.
	MaxBatchBytes = 500_000
)

// maxNesting bounds how deeply traits, properties, context and integrations
// may nest.
const maxNesting = 64

// ValidationError says which rule or limit a call broke. It matches
// ErrInvalidCall (and track.ErrInvalidOp) with errors.Is. It never quotes
// trait or property values or identifiers.
type ValidationError struct {
	// Field is the JSON path of the offending field, e.g. "event",
	// "context.device.token", "batch[3].userId". Empty for the call as a
	// whole.
	Field string
	// Reason says what is wrong, e.g. "is required for track".
	Reason string
	// Limit and Got are the limit and the measured size when a size limit
	// was broken; zero otherwise.
	Limit, Got int
}

// Error renders "cdp: invalid call: FIELD: REASON".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "cdp: invalid call: " + e.Reason
	}
	return "cdp: invalid call: " + e.Field + ": " + e.Reason
}

// Is matches ErrInvalidCall.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidCall }

// Message renders the error without the "cdp: invalid call: " prefix, as
// the Pipelines API's error body lists it.
func (e *ValidationError) Message() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// TooLarge reports whether a size limit was broken.
func (e *ValidationError) TooLarge() bool { return e.Limit > 0 }

func invalid(field, reason string) *ValidationError {
	return &ValidationError{Field: field, Reason: reason}
}

func tooBig(field, what string, got, limit int) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf("%s is %d bytes, limit %d", what, got, limit), Limit: limit, Got: got}
}

// prefixed returns a copy of err with prefix added to its field path.
func prefixed(prefix string, err *ValidationError) *ValidationError {
	e := *err
	if e.Field == "" {
		e.Field = prefix
	} else {
		e.Field = prefix + "." + e.Field
	}
	return &e
}

// ValidateCall checks c against the rules of its type and the size limit of
// its JSON encoding. It returns a *ValidationError naming the first rule
// broken, or nil. It does not modify c.
//
// Rules (Customer.io's Pipelines spec, pipelines.json, and its SDKs'
// checks): Type is one of Types; identify, track, page, screen and group
// name a person by UserID or AnonymousID (an identify may instead carry a
// string traits.email); track needs Event; group needs GroupID; alias needs
// UserID and PreviousID. The semantic events need what Customer.io's spec
// marks required: "Device Created or Updated" and "Device Deleted" a UserID
// and context.device.token, "User Deleted", "User Suppressed" and "User
// Unsuppressed" a UserID, "Relationship Deleted" a UserID and
// properties.objectId, "Object Deleted" properties.objectId. Timestamp, when
// set, is an ISO-8601 date-time with a zone. Every string, at any depth, is
// valid UTF-8; numbers are finite; objects nest at most 64 deep. Extra holds
// no named field, no writeKey, and only valid JSON. The encoding is at most
// MaxCallBytes.
func ValidateCall(c *Call) error {
	if err := validateShape(c); err != nil {
		return err
	}
	_, err := encodeChecked(c)
	return err
}

// EncodeCall validates c (see ValidateCall) and returns its JSON encoding,
// at most MaxCallBytes long: the form a producer stores and BatchEncoded
// sends.
func EncodeCall(c *Call) ([]byte, error) {
	if err := validateShape(c); err != nil {
		return nil, err
	}
	return encodeChecked(c)
}

// ValidateRawCall decodes one call from its JSON form and validates it. raw
// must be valid UTF-8 holding one JSON object of at most MaxCallBytes. typ,
// when not empty, is the type the request path sets: it replaces the body's
// `type`, as the API does. Errors are *ValidationError.
func ValidateRawCall(raw []byte, typ Type) (*Call, error) {
	c, _, err := DecodeCall(raw, typ)
	return c, err
}

// DecodeCall is ValidateRawCall that also returns the call's encoding
// (EncodeCall's output), computed once while validating: what ingest
// stores.
func DecodeCall(raw []byte, typ Type) (*Call, []byte, error) {
	c, err := decodeRaw(raw, typ)
	if err != nil {
		return nil, nil, err
	}
	b, err := EncodeCall(c)
	if err != nil {
		return nil, nil, err
	}
	return c, b, nil
}

// decodeRaw checks raw's size and decodes it; typ, when set, replaces the
// type. It does not validate the rules.
func decodeRaw(raw []byte, typ Type) (*Call, error) {
	if len(raw) > MaxCallBytes {
		return nil, tooBig("", "call", len(raw), MaxCallBytes)
	}
	c, err := decodeCall(raw)
	if err != nil {
		return nil, err
	}
	if typ != "" {
		c.Type = typ
	}
	return c, nil
}

// decodeCall decodes raw into a Call, turning every failure into a
// *ValidationError that does not quote the input.
func decodeCall(raw []byte) (*Call, error) {
	if !utf8.Valid(raw) {
		return nil, invalid("", "body is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid("", "is not a JSON object")
	}
	var c Call
	if err := c.UnmarshalJSON(raw); err != nil {
		var fe *fieldTypeError
		if errors.As(err, &fe) {
			return nil, invalid(fe.field, "must be "+fe.want)
		}
		return nil, invalid("", "malformed JSON: "+jsonErrorText(err))
	}
	return &c, nil
}

// jsonErrorText renders a decode error without quoting input values.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %q must be %s, got %s", ute.Field, ute.Type, ute.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of JSON"
	}
	return err.Error()
}

// encodeChecked encodes a call that passed validateShape and checks its
// size.
func encodeChecked(c *Call) ([]byte, error) {
	b, err := c.MarshalJSON()
	if err != nil {
		return nil, invalid("", "cannot be encoded as JSON: "+err.Error())
	}
	if len(b) > MaxCallBytes {
		return nil, tooBig("", "call", len(b), MaxCallBytes)
	}
	return b, nil
}

func validateShape(c *Call) error {
	if c == nil {
		return invalid("", "call is nil")
	}
	if !c.Type.Valid() {
		if c.Type == "" {
			return invalid("type", "is missing")
		}
		return invalid("type", "is not identify, track, page, screen, group or alias")
	}
	for _, s := range []struct{ name, v string }{
		{"messageId", c.MessageID}, {"timestamp", c.Timestamp}, {"userId", c.UserID},
		{"anonymousId", c.AnonymousID}, {"event", c.Event}, {"name", c.Name},
		{"groupId", c.GroupID}, {"previousId", c.PreviousID},
	} {
		if !utf8.ValidString(s.v) {
			return invalid(s.name, "is not valid UTF-8")
		}
	}
	if c.Timestamp != "" {
		if _, err := ParseTimestamp(c.Timestamp); err != nil {
			return invalid("timestamp", "must be an ISO-8601 date-time with a time zone, e.g. 2024-01-02T03:04:05.000Z")
		}
	}
	if err := validatePerson(c); err != nil {
		return err
	}
	if c.Type == TypeTrack {
		if err := validateSemantic(c); err != nil {
			return err
		}
	}
	for _, o := range []struct {
		name string
		v    map[string]any
	}{{"traits", c.Traits}, {"properties", c.Properties}, {"context", c.Context}, {"integrations", c.Integrations}} {
		if err := checkObject(o.name, o.v, 1); err != nil {
			return err
		}
	}
	return validateExtra(c.Extra)
}

func validatePerson(c *Call) error {
	hasPerson := strings.TrimSpace(c.UserID) != "" || strings.TrimSpace(c.AnonymousID) != ""
	switch c.Type {
	case TypeAlias:
		if strings.TrimSpace(c.UserID) == "" {
			return invalid("userId", "is required for alias")
		}
		if strings.TrimSpace(c.PreviousID) == "" {
			return invalid("previousId", "is required for alias")
		}
		return nil
	case TypeIdentify:
		if email, _ := c.Traits["email"].(string); !hasPerson && strings.TrimSpace(email) == "" {
			return invalid("userId", "identify needs userId, anonymousId or traits.email")
		}
		return nil
	case TypeTrack:
		if strings.TrimSpace(c.Event) == "" {
			return invalid("event", "is required for track")
		}
	case TypeGroup:
		if strings.TrimSpace(c.GroupID) == "" {
			return invalid("groupId", "is required for group")
		}
	}
	if !hasPerson {
		return invalid("userId", string(c.Type)+" needs userId or anonymousId")
	}
	return nil
}

// validateSemantic checks the fields Customer.io's spec marks required for
// its semantic events.
func validateSemantic(c *Call) error {
	needUser := func() error {
		if strings.TrimSpace(c.UserID) == "" {
			return invalid("userId", "is required for "+c.Event)
		}
		return nil
	}
	switch c.Event {
	case EventDeviceCreatedOrUpdated, EventDeviceDeleted:
		if err := needUser(); err != nil {
			return err
		}
		dev, _ := c.Context["device"].(map[string]any)
		if tok, _ := dev["token"].(string); strings.TrimSpace(tok) == "" {
			return invalid("context.device.token", "is required for "+c.Event)
		}
	case EventUserDeleted, EventUserSuppressed, EventUserUnsuppressed:
		return needUser()
	case EventRelationshipDeleted:
		if err := needUser(); err != nil {
			return err
		}
		if !hasObjectID(c.Properties) {
			return invalid("properties.objectId", "is required for "+c.Event)
		}
	case EventObjectDeleted:
		if !hasObjectID(c.Properties) {
			return invalid("properties.objectId", "is required for "+c.Event)
		}
	}
	return nil
}

func hasObjectID(props map[string]any) bool {
	id, _ := props["objectId"].(string)
	return strings.TrimSpace(id) != ""
}

func validateExtra(extra map[string]json.RawMessage) error {
	for k, v := range extra {
		field := fieldPath("", k)
		switch {
		case !utf8.ValidString(k):
			return invalid(field, "name is not valid UTF-8")
		case k == "":
			return invalid("", "a field name is empty")
		case slices.Contains(knownFields, k):
			return invalid(field, "is a named field of Call, not an extra field")
		case slices.Contains(droppedFields, k):
			return invalid(field, "must not be sent on: it is a credential")
		case !utf8.Valid(v) || !json.Valid(v):
			return invalid(field, "is not valid JSON")
		}
	}
	return nil
}

// fieldPath names a map key in an error, bounded and printable.
func fieldPath(prefix, key string) string {
	const maxKeyInError = 40
	if len(key) > maxKeyInError {
		key = key[:maxKeyInError] + "…"
	}
	key = strings.ToValidUTF8(key, "\uFFFD")
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// checkObject checks the keys and values of one object: UTF-8 strings,
// finite numbers, bounded nesting, JSON-encodable values.
func checkObject(path string, m map[string]any, depth int) error {
	if depth > maxNesting {
		return invalid(path, fmt.Sprintf("nests deeper than %d levels", maxNesting))
	}
	for k, v := range m {
		if !utf8.ValidString(k) {
			return invalid(fieldPath(path, k), "name is not valid UTF-8")
		}
		if err := checkValue(fieldPath(path, k), v, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(path string, v any, depth int) error {
	switch x := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return invalid(path, "is not a finite number")
		}
		return nil
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return invalid(path, "is not a finite number")
		}
		return nil
	case json.Number:
		if !validNumber(string(x)) {
			return invalid(path, "is not a JSON number")
		}
		return nil
	case string:
		if !utf8.ValidString(x) {
			return invalid(path, "is not valid UTF-8")
		}
		return nil
	case map[string]any:
		return checkObject(path, x, depth)
	case []any:
		if depth > maxNesting {
			return invalid(path, fmt.Sprintf("nests deeper than %d levels", maxNesting))
		}
		for i, e := range x {
			if err := checkValue(fmt.Sprintf("%s[%d]", path, i), e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	// Any other Go value: it must encode to JSON, and the encoding is
	// checked like decoded JSON.
	b, err := marshalNoEscape(v)
	if err != nil {
		return invalid(path, "cannot be encoded as JSON")
	}
	var back any
	if err := decodeOne(b, &back); err != nil {
		return invalid(path, "cannot be encoded as JSON")
	}
	return checkValue(path, back, depth)
}

// validNumber reports whether s is a JSON number that fits a float64.
func validNumber(s string) bool {
	if !json.Valid([]byte(s)) || s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return false
	}
	var f float64
	return json.Unmarshal([]byte(s), &f) == nil && !math.IsInf(f, 0)
}
