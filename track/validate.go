package track

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Track API limits (TRACK_API.md, "Limits"). Sizes are in bytes.
const (
	// MaxIdentifierBytes bounds each identifier (id, email, cio_id, phone,
	// anonymous_id) and the event id.
	MaxIdentifierBytes = 150
	// MaxAttributeNameBytes bounds each attribute name.
	MaxAttributeNameBytes = 150
	// MaxAttributeValueBytes bounds each person or device attribute value: a
	// string's length, or the JSON encoding of a nested object or array.
	MaxAttributeValueBytes = 1000
	// MaxAttributes bounds the number of attributes of one identify.
	MaxAttributes = 300
	// MaxEventNameBytes bounds the name of an event, page or screen op.
	MaxEventNameBytes = 100
	// MaxEventDataBytes bounds the JSON encoding of an event's attributes.
	MaxEventDataBytes = 100 * 1024
	// MaxOpBytes bounds the JSON encoding of one v2 op (entity body or batch
	// element).
	MaxOpBytes = 32 * 1024
	// MaxBatchBytes is the v2 batch body limit: a body must be smaller.
	MaxBatchBytes = 500 * 1024
)

// MaxV1BodyBytes bounds a v1 request body: an event's data (≤
// MaxEventDataBytes) plus room for the rest of the call. A v1 op is not held
// to MaxOpBytes, a v2 limit.
const MaxV1BodyBytes = MaxEventDataBytes + MaxOpBytes

// MaxTimestamp is the largest accepted unix time in seconds (year 2286): a
// larger value is almost always milliseconds.
const MaxTimestamp = 9_999_999_999

// maxNesting bounds how deep attribute values may nest.
const maxNesting = 64

// ValidationError says which rule or limit an op broke. It matches
// ErrInvalidOp with errors.Is. It never quotes attribute values or
// identifiers.
type ValidationError struct {
	// Field is the JSON path of the offending field, e.g. "attributes.plan",
	// "identifiers", "name". Empty for the op as a whole.
	Field string
	// Reason says what is wrong, e.g. "value is 1200 bytes, limit 1000".
	Reason string
	// Limit and Got are the limit and the measured size or count when a size
	// or count limit was broken; zero otherwise.
	Limit, Got int
}

// Error renders "track: invalid op: FIELD: REASON".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "track: invalid op: " + e.Reason
	}
	return "track: invalid op: " + e.Field + ": " + e.Reason
}

// Is matches ErrInvalidOp.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidOp }

func invalid(field, reason string) *ValidationError {
	return &ValidationError{Field: field, Reason: reason}
}

func tooBig(field, what string, got, limit int) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf("%s is %d bytes, limit %d", what, got, limit), Limit: limit, Got: got}
}

// ValidateOp checks op against the shape rules of its action and every Track
// API limit, including the size of its JSON encoding. It returns a
// *ValidationError (errors.Is(err, ErrInvalidOp)) naming the first rule
// broken, or nil. It does not modify op.
//
// Shape rules: Type is "person" or empty; Action is one of Actions; a merge
// has Primary and Secondary (each naming one person) and no Identifiers;
// every other op has Identifiers with exactly one of id, email, cio_id or
// phone, or, for event, page and screen only, anonymous_id alone; event,
// page and screen need Name; add_device and delete_device need Device.Token;
// add_relationships and delete_relationships need Relationships. Fields an
// action does not take (Name, ID, Device, Primary, Secondary, Relationships,
// Attributes) must be empty. Every string, at any depth, is valid UTF-8.
//
// Limits: identifiers and event ids ≤ MaxIdentifierBytes, attribute names ≤
// MaxAttributeNameBytes, identify ≤ MaxAttributes attributes, person and
// device attribute values ≤ MaxAttributeValueBytes (strings by length,
// nested objects and arrays by JSON size), event names ≤ MaxEventNameBytes,
// event attributes ≤ MaxEventDataBytes as JSON, the whole op ≤ MaxOpBytes.
func ValidateOp(op *Op) error {
	if err := validateShape(op); err != nil {
		return err
	}
	o := *op
	o.Type = "person"
	_, err := encodeChecked(&o)
	return err
}

// EncodeOp sets op.Type to "person" when empty, validates op (see ValidateOp)
// and returns its JSON encoding (no HTML escaping, no trailing newline), at
// most MaxOpBytes long. This is the form the producer stores and
// BatchEncoded sends.
func EncodeOp(op *Op) ([]byte, error) {
	if op != nil && op.Type == "" {
		op.Type = "person"
	}
	if err := validateShape(op); err != nil {
		return nil, err
	}
	return encodeChecked(op)
}

// ValidateRawOp decodes one v2 op from its JSON form and validates it. raw
// must be valid UTF-8 holding exactly one JSON object of at most MaxOpBytes;
// unknown fields (at the top level, in identifiers and in device) are
// rejected. Numbers in attributes decode as json.Number, so they re-encode
// unchanged. Errors are *ValidationError.
func ValidateRawOp(raw []byte) (*Op, error) {
	if len(raw) > MaxOpBytes {
		return nil, tooBig("", "op", len(raw), MaxOpBytes)
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "body is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid("", "body is not a JSON object")
	}
	op, err := decodeRawOp(raw)
	if err != nil {
		return nil, err
	}
	if err := validateShape(op); err != nil {
		return nil, err
	}
	if !encodingFits(raw) {
		// Only a large op can break a size limit once encoded: check it.
		o := *op
		o.Type = "person"
		if _, err := encodeChecked(&o); err != nil {
			return nil, err
		}
	}
	return op, nil
}

// decodeRawOp decodes raw strictly: in one pass for the JSON ops usually
// are (decode.go), else with encoding/json and checkJSON, which name what
// is wrong.
func decodeRawOp(raw []byte) (*Op, error) {
	if op, ok := decodeOpFast(raw); ok {
		return op, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var op Op
	if err := dec.Decode(&op); err != nil {
		return nil, invalid("", "malformed JSON: "+jsonErrorText(err))
	}
	if err := checkJSON(raw); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("", "trailing data after the JSON object")
	}
	return &op, nil
}

// encodingFits reports whether the encoding of any op decoded from raw fits
// every size limit, so that encoding it to check (as ValidateOp does) would
// be wasted. The encoding is never longer than raw but for "type":"person"
// (when raw has no type) and the U+2028 and U+2029 characters (3 bytes
// each in raw, escaped as 6): whitespace goes, escapes shorten or stay,
// numbers are kept as written (json.Number), empty fields are left out.
// encode_test.go checks the bound.
func encodingFits(raw []byte) bool {
	if 2*len(raw)+encodingSlack <= MaxOpBytes {
		return true
	}
	n := bytes.Count(raw, []byte("\u2028")) + bytes.Count(raw, []byte("\u2029"))
	return len(raw)+3*n+encodingSlack <= MaxOpBytes
}

// encodingSlack bounds what an encoding adds to the JSON it was decoded
// from besides escapes: `"type":"person",` (16 bytes) and a device's empty
// token (`"token":""`, 10), with room to spare.
const encodingSlack = 64

// jsonErrorText renders a decode error without quoting input values.
func jsonErrorText(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %q must be %s, got %s", ute.Field, ute.Type, ute.Value)
	}
	return err.Error()
}

// encodeChecked encodes an op that passed validateShape and checks the
// sizes only an encoding can tell.
func encodeChecked(op *Op) ([]byte, error) {
	b, ok := appendOp(make([]byte, 0, 256), op) // encode.go: encoding/json's bytes, faster
	if !ok {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(op); err != nil {
			return nil, invalid("", "cannot be encoded as JSON: "+err.Error())
		}
		b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	if !utf8.Valid(b) {
		return nil, invalid("", "encodes to invalid UTF-8")
	}
	if op.Action.IsEvent() && len(b) > MaxEventDataBytes {
		// Only a large op can carry too much event data: name the data.
		if n, err := jsonSize(op.Attributes); err == nil && n > MaxEventDataBytes {
			return nil, tooBig("attributes", "event data", n, MaxEventDataBytes)
		}
	}
	if len(b) > MaxOpBytes {
		return nil, tooBig("", "op", len(b), MaxOpBytes)
	}
	return b, nil
}

// jsonSize returns the length of v's JSON encoding without HTML escaping.
func jsonSize(v any) (int, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return 0, err
	}
	return buf.Len() - 1, nil
}

func validateShape(op *Op) error {
	if op == nil {
		return invalid("", "op is nil")
	}
	if op.Type != "" && op.Type != "person" {
		return invalid("type", `must be "person"`)
	}
	if !op.Action.Valid() {
		if op.Action == "" {
			return invalid("action", "is missing")
		}
		return invalid("action", "is not a Track API action")
	}
	if err := validatePeople(op); err != nil {
		return err
	}
	if err := validateEventFields(op); err != nil {
		return err
	}
	if op.Timestamp < 0 || op.Timestamp > MaxTimestamp {
		return invalid("timestamp", "must be unix seconds (not milliseconds), not negative")
	}
	if err := validateDevice(op); err != nil {
		return err
	}
	if err := validateRelationships(op); err != nil {
		return err
	}
	return validateAttributes(op)
}

func validatePeople(op *Op) error {
	if op.Action == ActionMerge {
		if op.Identifiers != nil && !op.Identifiers.IsZero() {
			return invalid("identifiers", "merge takes primary and secondary, not identifiers")
		}
		if op.Primary == nil || op.Primary.IsZero() {
			return invalid("primary", "is required for merge")
		}
		if op.Secondary == nil || op.Secondary.IsZero() {
			return invalid("secondary", "is required for merge")
		}
		if err := validateIdentifiers("primary", *op.Primary, false); err != nil {
			return err
		}
		if err := validateIdentifiers("secondary", *op.Secondary, false); err != nil {
			return err
		}
		if *op.Primary == *op.Secondary {
			return invalid("secondary", "names the same person as primary")
		}
		return nil
	}
	if op.Primary != nil {
		return invalid("primary", "is only for merge")
	}
	if op.Secondary != nil {
		return invalid("secondary", "is only for merge")
	}
	if op.Identifiers == nil || op.Identifiers.IsZero() {
		return invalid("identifiers", "are required")
	}
	return validateIdentifiers("identifiers", *op.Identifiers, op.Action.IsEvent())
}

func validateIdentifiers(field string, ids Identifiers, anonymousOK bool) error {
	if ids.count() != 1 {
		if anonymousOK {
			return invalid(field, "must hold exactly one of id, email, cio_id, phone or anonymous_id")
		}
		return invalid(field, "must hold exactly one of id, email, cio_id, phone")
	}
	if ids.AnonymousID != "" && !anonymousOK {
		return invalid(field+".anonymous_id", "is only for event, page and screen")
	}
	for _, f := range [...]struct{ name, v string }{
		{"id", ids.ID}, {"email", ids.Email}, {"cio_id", ids.CioID}, {"phone", ids.Phone}, {"anonymous_id", ids.AnonymousID},
	} {
		// The field's path is built only for an error: this runs for every op.
		if utf8.ValidString(f.v) && len(f.v) <= MaxIdentifierBytes {
			continue
		}
		if err := checkString(field+"."+f.name, "identifier", f.v, MaxIdentifierBytes); err != nil {
			return err
		}
	}
	return nil
}

// checkString checks s is valid UTF-8 and at most limit bytes.
func checkString(field, what, s string, limit int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "is not valid UTF-8")
	}
	if len(s) > limit {
		return tooBig(field, what, len(s), limit)
	}
	return nil
}

func validateEventFields(op *Op) error {
	if !op.Action.IsEvent() {
		if op.Name != "" {
			return invalid("name", "is only for event, page and screen")
		}
		if op.ID != "" {
			return invalid("id", "is only for event, page and screen")
		}
		return nil
	}
	if strings.TrimSpace(op.Name) == "" {
		return invalid("name", "is required for "+string(op.Action))
	}
	if err := checkString("name", "name", op.Name, MaxEventNameBytes); err != nil {
		return err
	}
	return checkString("id", "event id", op.ID, MaxIdentifierBytes)
}

func validateDevice(op *Op) error {
	isDevice := op.Action == ActionAddDevice || op.Action == ActionDeleteDevice
	if !isDevice {
		if op.Device != nil {
			return invalid("device", "is only for add_device and delete_device")
		}
		return nil
	}
	d := op.Device
	if d == nil || d.Token == "" {
		return invalid("device.token", "is required for "+string(op.Action))
	}
	if err := checkString("device.token", "token", d.Token, MaxAttributeValueBytes); err != nil {
		return err
	}
	if err := checkString("device.platform", "platform", d.Platform, MaxAttributeNameBytes); err != nil {
		return err
	}
	if d.LastUsed < 0 || d.LastUsed > MaxTimestamp {
		return invalid("device.last_used", "must be unix seconds (not milliseconds), not negative")
	}
	return validateAttrMap("device.attributes", d.Attributes, true)
}

func validateRelationships(op *Op) error {
	isRel := op.Action == ActionAddRelationships || op.Action == ActionDeleteRelationships
	if !isRel {
		if len(op.Relationships) != 0 {
			return invalid("cio_relationships", "are only for add_relationships and delete_relationships")
		}
		return nil
	}
	if len(op.Relationships) == 0 {
		return invalid("cio_relationships", "are required for "+string(op.Action))
	}
	for i, r := range op.Relationships {
		field := fmt.Sprintf("cio_relationships[%d]", i)
		if !utf8.Valid(r) {
			return invalid(field, "is not valid UTF-8")
		}
		t := bytes.TrimSpace(r)
		if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			return invalid(field, "must be a JSON object")
		}
	}
	return nil
}

func validateAttributes(op *Op) error {
	switch op.Action {
	case ActionIdentify:
		if len(op.Attributes) > MaxAttributes {
			return &ValidationError{Field: "attributes", Reason: fmt.Sprintf("has %d attributes, limit %d", len(op.Attributes), MaxAttributes), Limit: MaxAttributes, Got: len(op.Attributes)}
		}
		return validateAttrMap("attributes", op.Attributes, true)
	case ActionEvent, ActionPage, ActionScreen:
		// Event data is bounded as a whole (MaxEventDataBytes), not per value.
		return validateAttrMap("attributes", op.Attributes, false)
	default:
		if len(op.Attributes) != 0 {
			return invalid("attributes", "are only for identify, event, page and screen")
		}
		return nil
	}
}
