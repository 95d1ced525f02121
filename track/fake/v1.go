package fake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/cioq/cioq/track"
)

// V1BodyLimit bounds a v1 request body: an event's data (≤
// track.MaxEventDataBytes) plus room for the rest. A longer body is answered
// 413. v1 ops are not held to track.MaxOpBytes, a v2 limit.
const V1BodyLimit = track.MaxEventDataBytes + track.MaxOpBytes

// Every v1 call is mapped to the v2 op it means (TRACK_API.md "v1 → v2"),
// validated with track.ValidateOp and counted as that op.

// v1Identify answers PUT /api/v1/customers/{id}: flat attributes, with
// _timestamp becoming the op's timestamp.
func (s *Server) v1Identify(c *call, p []string) {
	body, ok := s.readV1(c)
	if !ok {
		return
	}
	op := v1Op(track.ActionIdentify, p[0])
	if len(bytes.TrimSpace(body)) > 0 {
		var attrs map[string]any
		if err := decodeStrict(body, &attrs); err != nil || attrs == nil {
			s.fail(c, http.StatusBadRequest, "", "body must be a JSON object of attributes")
			return
		}
		if ts, ok := attrs["_timestamp"]; ok {
			n, err := unixSeconds(ts)
			if err != nil {
				s.fail(c, http.StatusBadRequest, "", "_timestamp: "+err.Error())
				return
			}
			op.Timestamp = n
			delete(attrs, "_timestamp")
		}
		if len(attrs) > 0 {
			op.Attributes = attrs
		}
	}
	s.acceptV1(c, op)
}

// v1Delete answers DELETE /api/v1/customers/{id}.
func (s *Server) v1Delete(c *call, p []string) {
	if _, ok := s.readV1(c); ok {
		s.acceptV1(c, v1Op(track.ActionDelete, p[0]))
	}
}

// v1Suppress answers POST /api/v1/customers/{id}/suppress (body ignored).
func (s *Server) v1Suppress(c *call, p []string) {
	if _, ok := s.readV1(c); ok {
		s.acceptV1(c, v1Op(track.ActionSuppress, p[0]))
	}
}

// v1Unsuppress answers POST /api/v1/customers/{id}/unsuppress (body ignored).
func (s *Server) v1Unsuppress(c *call, p []string) {
	if _, ok := s.readV1(c); ok {
		s.acceptV1(c, v1Op(track.ActionUnsuppress, p[0]))
	}
}

// v1EventBody is the body of a v1 event.
type v1EventBody struct {
	Name        string         `json:"name"`
	ID          string         `json:"id,omitempty"`
	Type        string         `json:"type,omitempty"`
	Timestamp   int64          `json:"timestamp,omitempty"`
	Data        map[string]any `json:"data,omitempty"`
	AnonymousID string         `json:"anonymous_id,omitempty"`
}

// v1Event answers POST /api/v1/customers/{id}/events.
func (s *Server) v1Event(c *call, p []string) {
	ev, ok := s.readV1Event(c)
	if !ok {
		return
	}
	if ev.AnonymousID != "" {
		s.fail(c, http.StatusBadRequest, "", "anonymous_id: only for POST /api/v1/events")
		return
	}
	s.finishV1Event(c, ev, track.IdentifiersFromV1(p[0]))
}

// v1AnonymousEvent answers POST /api/v1/events: anonymous_id becomes
// identifiers.anonymous_id.
func (s *Server) v1AnonymousEvent(c *call, _ []string) {
	ev, ok := s.readV1Event(c)
	if !ok {
		return
	}
	s.finishV1Event(c, ev, track.Identifiers{AnonymousID: ev.AnonymousID})
}

func (s *Server) readV1Event(c *call) (v1EventBody, bool) {
	var ev v1EventBody
	body, ok := s.readV1(c)
	if !ok {
		return ev, false
	}
	if err := decodeStrict(body, &ev); err != nil {
		s.fail(c, http.StatusBadRequest, "", "malformed event: "+err.Error())
		return ev, false
	}
	return ev, true
}

func (s *Server) finishV1Event(c *call, ev v1EventBody, ids track.Identifiers) {
	action := track.ActionEvent
	switch ev.Type {
	case "", "event":
	case "page":
		action = track.ActionPage
	case "screen":
		action = track.ActionScreen
	default:
		s.fail(c, http.StatusBadRequest, "", `type: must be "event", "page" or "screen"`)
		return
	}
	op := &track.Op{Type: "person", Action: action, Name: ev.Name, ID: ev.ID,
		Timestamp: ev.Timestamp, Attributes: ev.Data}
	if !ids.IsZero() {
		op.Identifiers = &ids
	}
	s.acceptV1(c, op)
}

// v1AddDevice answers PUT /api/v1/customers/{id}/devices: device.id
// becomes device.token.
func (s *Server) v1AddDevice(c *call, p []string) {
	body, ok := s.readV1(c)
	if !ok {
		return
	}
	var req struct {
		Device *struct {
			ID         string         `json:"id"`
			Platform   string         `json:"platform,omitempty"`
			LastUsed   int64          `json:"last_used,omitempty"`
			Attributes map[string]any `json:"attributes,omitempty"`
		} `json:"device"`
	}
	if err := decodeStrict(body, &req); err != nil {
		s.fail(c, http.StatusBadRequest, "", "malformed device: "+err.Error())
		return
	}
	op := v1Op(track.ActionAddDevice, p[0])
	if d := req.Device; d != nil {
		op.Device = &track.Device{Token: d.ID, Platform: d.Platform, LastUsed: d.LastUsed, Attributes: d.Attributes}
	}
	s.acceptV1(c, op)
}

// v1DeleteDevice answers DELETE /api/v1/customers/{id}/devices/{device_id}.
func (s *Server) v1DeleteDevice(c *call, p []string) {
	if _, ok := s.readV1(c); ok {
		op := v1Op(track.ActionDeleteDevice, p[0])
		op.Device = &track.Device{Token: p[1]}
		s.acceptV1(c, op)
	}
}

// v1Merge answers POST /api/v1/merge_customers.
func (s *Server) v1Merge(c *call, _ []string) {
	body, ok := s.readV1(c)
	if !ok {
		return
	}
	var req struct {
		Primary   *track.Identifiers `json:"primary"`
		Secondary *track.Identifiers `json:"secondary"`
	}
	if err := decodeStrict(body, &req); err != nil {
		s.fail(c, http.StatusBadRequest, "", "malformed merge: "+err.Error())
		return
	}
	s.acceptV1(c, &track.Op{Type: "person", Action: track.ActionMerge, Primary: req.Primary, Secondary: req.Secondary})
}

// v1Op returns the v2 op of action for the person a v1 path names.
func v1Op(action track.Action, pathID string) *track.Op {
	ids := track.IdentifiersFromV1(pathID)
	return &track.Op{Type: "person", Action: action, Identifiers: &ids}
}

func (s *Server) readV1(c *call) ([]byte, bool) {
	return s.readBody(c, V1BodyLimit, fmt.Sprintf("v1 body must be at most %d bytes", V1BodyLimit))
}

// acceptV1 validates the mapped op and accepts it (200 {}) or answers 400.
// v1 has no per-op size limit, so only track.MaxOpBytes is not enforced.
func (s *Server) acceptV1(c *call, op *track.Op) {
	if err := track.ValidateOp(op); err != nil {
		var ve *track.ValidationError
		if !errors.As(err, &ve) || ve.Field != "" || ve.Limit != track.MaxOpBytes {
			s.rejectOp(c, "", itemError(0, err))
			return
		}
	}
	if it, bad := s.poisoned(c, 0, op); bad {
		s.rejectOp(c, FaultRejectAttribute, it)
		return
	}
	s.accept(c, []*track.Op{op}, nil, 1)
}

// unixSeconds reads a v1 _timestamp: a whole number of seconds.
func unixSeconds(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, errors.New("must be a number of unix seconds")
	}
	i, err := n.Int64()
	if err != nil {
		return 0, errors.New("must be a whole number of unix seconds")
	}
	return i, nil
}
