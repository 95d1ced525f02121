package cdp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// Type is the `type` of a Pipelines call: the Segment-spec method.
type Type string

// The Pipelines call types (docs/pipelines.md, "Calls").
const (
	TypeIdentify Type = "identify"
	TypeTrack    Type = "track"
	TypePage     Type = "page"
	TypeScreen   Type = "screen"
	TypeGroup    Type = "group"
	TypeAlias    Type = "alias"
)

// Types lists every call type, in a stable order.
var Types = []Type{TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias}

// Valid reports whether t is one of Types.
func (t Type) Valid() bool { return slices.Contains(Types, t) }

// Path returns the single-call path of t ("/v1/identify", ...), or "" for
// an invalid type.
func (t Type) Path() string {
	if !t.Valid() {
		return ""
	}
	return "/v1/" + string(t)
}

// TypeFromPath returns the call type a single-call path names
// ("/v1/track" → TypeTrack), or "" when path is not one.
func TypeFromPath(path string) Type {
	for _, t := range Types {
		if path == t.Path() {
			return t
		}
	}
	return ""
}

// Call is one Pipelines call: an identify, track, page, screen, group or
// alias in the Segment spec, as Customer.io's Pipelines API takes it on
// its single-call paths and in the `batch` array of /v1/batch. Its JSON form
// (MarshalJSON) is what cioq stores and sends.
//
// Fields the model does not name (sentAt, originalTimestamp, category,
// _metadata, ...) are kept in Extra and sent on unchanged, so cioq is
// transparent to what an SDK puts in a call. A `writeKey` field is dropped
// when decoding: it is a credential.
type Call struct {
	// Type is the call type. On a single-call path the path sets it.
	Type Type
	// MessageID is the dedupe key: Customer.io processes a messageId once.
	// Empty means the API assigns one (and cannot dedupe a resend).
	MessageID string
	// Timestamp is when the call happened, an ISO-8601 date-time, kept as
	// given (FormatTimestamp writes one). Empty means the time the API
	// receives it.
	Timestamp string
	// UserID and AnonymousID name the person; most calls need one of them.
	UserID, AnonymousID string
	// Event is the event name of a track call (semantic events included).
	Event string
	// Name is the page or screen name of a page or screen call.
	Name string
	// GroupID is the group (object) of a group call.
	GroupID string
	// PreviousID is the id an alias call merges into UserID.
	PreviousID string
	// Traits are person traits (identify) or group traits (group).
	Traits map[string]any
	// Properties are the event, page or screen properties.
	Properties map[string]any
	// Context is the call's context (library, device, ip, ...).
	Context map[string]any
	// Integrations turns destinations on or off for this call.
	Integrations map[string]any
	// Extra holds the other top-level fields, by name, as compact JSON.
	Extra map[string]json.RawMessage
}

// knownFields are the JSON names of Call's named fields, in encoding order.
var knownFields = []string{
	"type", "messageId", "timestamp", "userId", "anonymousId", "event", "name",
	"groupId", "previousId", "traits", "properties", "context", "integrations",
}

// droppedFields are removed when decoding: credentials never travel on.
var droppedFields = []string{"writeKey"}

// FormatTimestamp renders t as the ISO-8601 timestamp Customer.io's SDKs
// send: UTC, milliseconds, "Z" (2024-01-02T03:04:05.678Z).
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// ParseTimestamp parses an ISO-8601 date-time with a time zone (RFC 3339,
// any fraction of a second).
func ParseTimestamp(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// Time returns the call's Timestamp parsed; ok is false when it is empty or
// does not parse.
func (c *Call) Time() (t time.Time, ok bool) {
	if c.Timestamp == "" {
		return time.Time{}, false
	}
	t, err := ParseTimestamp(c.Timestamp)
	return t, err == nil
}

// Clone returns a copy of c whose maps can be changed without touching c.
// Nested values are shared.
func (c *Call) Clone() *Call {
	d := *c
	d.Traits = maps.Clone(c.Traits)
	d.Properties = maps.Clone(c.Properties)
	d.Context = maps.Clone(c.Context)
	d.Integrations = maps.Clone(c.Integrations)
	d.Extra = maps.Clone(c.Extra)
	return &d
}

// MarshalJSON encodes the call: the named fields in a fixed order (empty
// ones left out), then Extra by sorted name. Maps encode with sorted keys
// and without HTML escaping, so the same call always encodes to the same
// bytes.
func (c Call) MarshalJSON() ([]byte, error) {
	var buf, scratch bytes.Buffer
	enc := json.NewEncoder(&scratch)
	enc.SetEscapeHTML(false)
	// value writes v's encoding, without json.Encoder's newline.
	value := func(v any) error {
		scratch.Reset()
		if err := enc.Encode(v); err != nil {
			return err
		}
		buf.Write(bytes.TrimSuffix(scratch.Bytes(), []byte("\n")))
		return nil
	}
	buf.WriteByte('{')
	first := true
	field := func(name string, v any) error {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		if err := value(name); err != nil {
			return err
		}
		buf.WriteByte(':')
		if raw, ok := v.(json.RawMessage); ok {
			buf.Write(raw)
			return nil
		}
		if err := value(v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	for _, s := range [...]struct{ name, v string }{
		{"type", string(c.Type)}, {"messageId", c.MessageID}, {"timestamp", c.Timestamp},
		{"userId", c.UserID}, {"anonymousId", c.AnonymousID}, {"event", c.Event},
		{"name", c.Name}, {"groupId", c.GroupID}, {"previousId", c.PreviousID},
	} {
		if s.v == "" {
			continue
		}
		if err := field(s.name, s.v); err != nil {
			return nil, err
		}
	}
	for _, o := range [...]struct {
		name string
		v    map[string]any
	}{{"traits", c.Traits}, {"properties", c.Properties}, {"context", c.Context}, {"integrations", c.Integrations}} {
		if len(o.v) == 0 {
			continue
		}
		if err := field(o.name, o.v); err != nil {
			return nil, err
		}
	}
	if len(c.Extra) > 0 {
		for _, k := range slices.Sorted(maps.Keys(c.Extra)) {
			if err := field(k, c.Extra[k]); err != nil {
				return nil, err
			}
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// marshalNoEscape encodes v without HTML escaping and without the trailing
// newline json.Encoder adds.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON decodes one call object. The named fields must have their
// JSON types (strings; objects for traits, properties, context and
// integrations); null counts as absent. Numbers in objects decode as
// json.Number, so they re-encode unchanged. Other fields go to Extra,
// compacted; writeKey is dropped. It checks JSON types only: ValidateCall
// checks the rules.
func (c *Call) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := decodeOne(b, &fields); err != nil {
		return err
	}
	if fields == nil {
		return errors.New("call is null, not an object")
	}
	*c = Call{}
	strs := map[string]*string{
		"messageId": &c.MessageID, "timestamp": &c.Timestamp, "userId": &c.UserID,
		"anonymousId": &c.AnonymousID, "event": &c.Event, "name": &c.Name,
		"groupId": &c.GroupID, "previousId": &c.PreviousID,
	}
	objs := map[string]*map[string]any{
		"traits": &c.Traits, "properties": &c.Properties, "context": &c.Context, "integrations": &c.Integrations,
	}
	for k, raw := range fields {
		isNull := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
		switch {
		case k == "type":
			var s string
			if err := decodeString(k, raw, &s); err != nil {
				return err
			}
			c.Type = Type(s)
		case strs[k] != nil:
			if err := decodeString(k, raw, strs[k]); err != nil {
				return err
			}
		case objs[k] != nil:
			if isNull {
				continue
			}
			var m map[string]any
			if err := decodeOne(raw, &m); err != nil {
				return &fieldTypeError{field: k, want: "an object"}
			}
			*objs[k] = m
		case slices.Contains(droppedFields, k):
		default:
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if c.Extra == nil {
				c.Extra = map[string]json.RawMessage{}
			}
			c.Extra[k] = compact.Bytes()
		}
	}
	return nil
}

// fieldTypeError is a named field holding the wrong JSON type.
type fieldTypeError struct{ field, want string }

func (e *fieldTypeError) Error() string { return e.field + " must be " + e.want }

// decodeString decodes a string field; null leaves it empty.
func decodeString(field string, raw json.RawMessage, dst *string) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return &fieldTypeError{field: field, want: "a string"}
	}
	return nil
}

// decodeOne decodes exactly one JSON value with numbers as json.Number.
func decodeOne(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
