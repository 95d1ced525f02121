package wire

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cioq/cioq/track"
)

// The v1 calls, as V1Call.Name reports them.
const (
	V1Identify       = "identify"
	V1Delete         = "delete"
	V1Track          = "track"
	V1TrackAnonymous = "track_anonymous"
	V1Suppress       = "suppress"
	V1Unsuppress     = "unsuppress"
	V1AddDevice      = "add_device"
	V1DeleteDevice   = "delete_device"
	V1Merge          = "merge"
)

// V1Call is a request routed to one v1 call.
type V1Call struct {
	// Name is the call: V1Identify, V1Track, ...
	Name string
	// Method is the HTTP method.
	Method string
	// Pattern is the path pattern, e.g. "/api/v1/customers/{id}/events": a
	// label of low cardinality for metrics and logs.
	Pattern string
	// Params are the unescaped path wildcards in order: the person id, then
	// the device id for V1DeleteDevice.
	Params []string
}

// RouteError says why a request matched no v1 call: StatusCode 404 (no such
// path) or 405 (the path exists for the methods in Allow).
type RouteError struct {
	StatusCode int
	Allow      []string
}

// Error renders "track: 404 not found" or "track: 405 method not allowed".
func (e *RouteError) Error() string {
	if e.StatusCode == http.StatusMethodNotAllowed {
		return "track: method not allowed"
	}
	return "track: not found"
}

// ErrMalformedBody matches the errors V1Call.Op returns for a body that does
// not decode into the call's shape (bad JSON, unknown field, wrong type).
var ErrMalformedBody = errors.New("track: malformed body")

// MalformedError is a v1 body that does not decode into its call's shape.
// It matches ErrMalformedBody; Reason is the message the Track API answers
// with. It never quotes values from the body.
type MalformedError struct {
	Reason string
}

// Error renders "track: malformed body: REASON".
func (e *MalformedError) Error() string { return "track: malformed body: " + e.Reason }

// Is matches ErrMalformedBody.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformedBody }

func malformed(format string, args ...any) *MalformedError {
	return &MalformedError{Reason: fmt.Sprintf(format, args...)}
}

// MatchV1 routes method and escapedPath (the URL's EscapedPath, so an id
// holding "%2F" stays one segment) to a v1 call, or returns a *RouteError.
func MatchV1(method, escapedPath string) (V1Call, error) {
	rest, ok := strings.CutPrefix(escapedPath, "/api/v1/")
	if !ok {
		return V1Call{}, &RouteError{StatusCode: http.StatusNotFound}
	}
	segs := strings.Split(rest, "/")
	var (
		pattern string
		methods map[string]string // method → call name
		params  []string
	)
	switch {
	case len(segs) == 1 && segs[0] == "events":
		pattern, methods = "/api/v1/events", map[string]string{http.MethodPost: V1TrackAnonymous}
	case len(segs) == 1 && segs[0] == "merge_customers":
		pattern, methods = "/api/v1/merge_customers", map[string]string{http.MethodPost: V1Merge}
	case segs[0] == "customers" && len(segs) >= 2 && len(segs) <= 4:
		for i, s := range segs[1:] {
			if i == 1 {
				continue // the sub-resource name, not a parameter
			}
			p, err := url.PathUnescape(s)
			if err != nil || p == "" {
				return V1Call{}, &RouteError{StatusCode: http.StatusNotFound}
			}
			params = append(params, p)
		}
		sub := strings.Join(segs[2:min(len(segs), 3)], "")
		switch {
		case len(segs) == 2:
			pattern, methods = "/api/v1/customers/{id}", map[string]string{http.MethodPut: V1Identify, http.MethodDelete: V1Delete}
		case len(segs) == 3 && sub == "events":
			pattern, methods = "/api/v1/customers/{id}/events", map[string]string{http.MethodPost: V1Track}
		case len(segs) == 3 && sub == "suppress":
			pattern, methods = "/api/v1/customers/{id}/suppress", map[string]string{http.MethodPost: V1Suppress}
		case len(segs) == 3 && sub == "unsuppress":
			pattern, methods = "/api/v1/customers/{id}/unsuppress", map[string]string{http.MethodPost: V1Unsuppress}
		case len(segs) == 3 && sub == "devices":
			pattern, methods = "/api/v1/customers/{id}/devices", map[string]string{http.MethodPut: V1AddDevice}
		case len(segs) == 4 && sub == "devices":
			pattern, methods = "/api/v1/customers/{id}/devices/{device_id}", map[string]string{http.MethodDelete: V1DeleteDevice}
		}
	}
	if methods == nil {
		return V1Call{}, &RouteError{StatusCode: http.StatusNotFound}
	}
	if name, ok := methods[method]; ok {
		return V1Call{Name: name, Method: method, Pattern: pattern, Params: params}, nil
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		if _, ok := methods[m]; ok {
			allow = append(allow, m)
		}
	}
	return V1Call{}, &RouteError{StatusCode: http.StatusMethodNotAllowed, Allow: allow}
}

// V1ToV2 routes a v1 request (MatchV1) and maps it to its v2 op (V1Call.Op).
func V1ToV2(method, escapedPath string, body []byte) (*track.Op, error) {
	c, err := MatchV1(method, escapedPath)
	if err != nil {
		return nil, err
	}
	return c.Op(body)
}

// Op maps the call with body to the v2 op it means (TRACK_API.md "v1 →
// v2") and validates it as the v1 API does:
//
//   - a path id "cio_<x>" is identifiers {"cio_id":"<x>"}, one holding "@"
//     is {"email":...}, anything else {"id":...} (track.IdentifiersFromV1);
//   - identify: the body's flat attributes become attributes, `_timestamp`
//     becomes timestamp (other keys stay attributes); `_update: false` is
//     dropped, `_update: true` (update only, never create: no v2 form) is
//     refused with a *track.ValidationError;
//   - track: `data` becomes attributes, `type` "page" (or "screen") becomes
//     action page (screen), `id`, `name` and `timestamp` are kept;
//   - anonymous track (POST /api/v1/events): `anonymous_id` becomes
//     identifiers.anonymous_id;
//   - add device: device.id becomes device.token; delete device: the path's
//     device id becomes device.token;
//   - suppress, unsuppress, delete: the body is ignored;
//   - merge: primary and secondary are kept.
//
// Fields the official clients send with another JSON type than the one
// documented are taken and normalised (v1fields.go): device.last_used,
// timestamp and _timestamp as a number or a string holding one;
// anonymous_id, the event id, device.id and merge identifiers as a string
// or a number. An anonymous event without anonymous_id is refused: the v2
// API has no event without a person.
//
// A body that does not decode into the call's shape returns a
// *MalformedError (ErrMalformedBody); an op that breaks a rule or limit
// returns a *track.ValidationError (track.ErrInvalidOp), checked with track.ValidateOp except
// for track.MaxOpBytes, which v1 does not have. body must be valid UTF-8 (the
// caller checks; an invalid string is a *track.ValidationError here).
func (c V1Call) Op(body []byte) (*track.Op, error) {
	op, err := c.mapOp(body)
	if err != nil {
		return nil, err
	}
	if err := track.ValidateOp(op); err != nil {
		var ve *track.ValidationError
		if !errors.As(err, &ve) || ve.Field != "" || ve.Limit != track.MaxOpBytes {
			return nil, err
		}
	}
	return op, nil
}

func (c V1Call) mapOp(body []byte) (*track.Op, error) {
	person := func(action track.Action) *track.Op {
		ids := track.IdentifiersFromV1(c.Params[0])
		return &track.Op{Type: "person", Action: action, Identifiers: &ids}
	}
	switch c.Name {
	case V1Identify:
		return v1Identify(person(track.ActionIdentify), body)
	case V1Delete:
		return person(track.ActionDelete), nil
	case V1Suppress:
		return person(track.ActionSuppress), nil
	case V1Unsuppress:
		return person(track.ActionUnsuppress), nil
	case V1Track:
		ev, err := decodeV1Event(body)
		if err != nil {
			return nil, err
		}
		if ev.anonymousID != "" {
			return nil, malformed("anonymous_id: only for POST /api/v1/events")
		}
		return v1Event(ev, track.IdentifiersFromV1(c.Params[0]))
	case V1TrackAnonymous:
		ev, err := decodeV1Event(body)
		if err != nil {
			return nil, err
		}
		if ev.anonymousID == "" {
			// Customer.io takes an event without anonymous_id (an "invite"
			// event naming data.recipient); a v2 op needs a person.
			return nil, invalid("identifiers", "an anonymous event needs anonymous_id: cioq delivers through the v2 API, which has no event without a person")
		}
		return v1Event(ev, track.Identifiers{AnonymousID: ev.anonymousID})
	case V1AddDevice:
		return v1AddDevice(person(track.ActionAddDevice), body)
	case V1DeleteDevice:
		op := person(track.ActionDeleteDevice)
		op.Device = &track.Device{Token: c.Params[1]}
		return op, nil
	case V1Merge:
		var req struct {
			Primary   map[string]any `json:"primary"`
			Secondary map[string]any `json:"secondary"`
		}
		if err := decodeV1(body, &req); err != nil {
			if ve := asValidation(err); ve != nil {
				return nil, ve
			}
			return nil, malformed("malformed merge: %s", jsonErrorText(err))
		}
		primary, err := v1Identifiers("primary", req.Primary)
		if err != nil {
			return nil, err
		}
		secondary, err := v1Identifiers("secondary", req.Secondary)
		if err != nil {
			return nil, err
		}
		return &track.Op{Type: "person", Action: track.ActionMerge, Primary: primary, Secondary: secondary}, nil
	}
	return nil, &RouteError{StatusCode: http.StatusNotFound}
}

func v1Identify(op *track.Op, body []byte) (*track.Op, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return op, nil
	}
	var attrs map[string]any
	if err := decodeV1(body, &attrs); err != nil {
		if ve := asValidation(err); ve != nil {
			return nil, ve
		}
		return nil, malformed("body must be a JSON object of attributes")
	}
	// null (go-customerio's Identify with nil attributes) is no attributes.
	if u, ok := attrs["_update"]; ok {
		// v1's "only update a person who exists" has no v2 form, and as an
		// attribute it would be stored on the person: never forward it.
		delete(attrs, "_update")
		if u != false {
			return nil, &track.ValidationError{Field: "_update", Reason: "an update-only identify (_update: true) has no " +
				"v2 form and cioq delivers v2 batches: send the identify without _update"}
		}
	}
	if ts, ok := attrs["_timestamp"]; ok {
		n, err := v1Seconds(ts, false)
		if err != nil {
			return nil, v1FieldError("_timestamp", err)
		}
		op.Timestamp = n
		delete(attrs, "_timestamp")
	}
	if len(attrs) > 0 {
		op.Attributes = attrs
	}
	return op, nil
}

// v1EventBody is the body of a v1 event. ID, Timestamp and AnonymousID
// take what the official clients send (v1fields.go).
type v1EventBody struct {
	Name        string         `json:"name"`
	ID          any            `json:"id,omitempty"`
	Type        string         `json:"type,omitempty"`
	Timestamp   any            `json:"timestamp,omitempty"`
	Data        map[string]any `json:"data,omitempty"`
	AnonymousID any            `json:"anonymous_id,omitempty"`

	// Normalised by decodeV1Event.
	id, anonymousID string
	timestamp       int64
}

func decodeV1Event(body []byte) (v1EventBody, error) {
	var ev v1EventBody
	if err := decodeV1(body, &ev); err != nil {
		if ve := asValidation(err); ve != nil {
			return ev, ve
		}
		return ev, malformed("malformed event: %s", jsonErrorText(err))
	}
	var err error
	if ev.id, err = v1Text(ev.ID); err != nil {
		return ev, v1FieldError("id", err)
	}
	if ev.anonymousID, err = v1Text(ev.AnonymousID); err != nil {
		return ev, v1FieldError("anonymous_id", err)
	}
	if ev.timestamp, err = v1Seconds(ev.Timestamp, false); err != nil {
		return ev, v1FieldError("timestamp", err)
	}
	return ev, nil
}

func v1Event(ev v1EventBody, ids track.Identifiers) (*track.Op, error) {
	action := track.ActionEvent
	switch ev.Type {
	case "", "event":
	case "page":
		action = track.ActionPage
	case "screen":
		action = track.ActionScreen
	default:
		return nil, malformed(`type: must be "event", "page" or "screen"`)
	}
	op := &track.Op{Type: "person", Action: action, Name: ev.Name, ID: ev.id, Timestamp: ev.timestamp, Attributes: ev.Data}
	if !ids.IsZero() {
		op.Identifiers = &ids
	}
	return op, nil
}

func v1AddDevice(op *track.Op, body []byte) (*track.Op, error) {
	var req struct {
		Device *struct {
			ID         any            `json:"id"`
			Platform   string         `json:"platform,omitempty"`
			LastUsed   any            `json:"last_used,omitempty"`
			Attributes map[string]any `json:"attributes,omitempty"`
		} `json:"device"`
	}
	if err := decodeV1(body, &req); err != nil {
		if ve := asValidation(err); ve != nil {
			return nil, ve
		}
		return nil, malformed("malformed device: %s", jsonErrorText(err))
	}
	if d := req.Device; d != nil {
		token, err := v1Text(d.ID)
		if err != nil {
			return nil, v1FieldError("device.id", err)
		}
		lastUsed, err := v1Seconds(d.LastUsed, true)
		if err != nil {
			return nil, v1FieldError("device.last_used", err)
		}
		op.Device = &track.Device{Token: token, Platform: d.Platform, LastUsed: lastUsed, Attributes: d.Attributes}
	}
	return op, nil
}

// asValidation returns err's *track.ValidationError (a duplicate key or an
// out-of-range number found by track.CheckJSON), or nil.
func asValidation(err error) *track.ValidationError {
	var ve *track.ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	return nil
}

// decodeV1 is DecodeStrict plus what the Track API refuses that
// encoding/json takes silently (track.CheckJSON: a duplicate key, a number
// out of range).
func decodeV1(b []byte, v any) error {
	if err := DecodeStrict(b, v); err != nil {
		return err
	}
	return track.CheckJSON(b)
}
