package track_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cioq/cioq/track"
)

// FuzzValidateOp checks that validation never panics, and that whatever
// EncodeOp accepts round-trips through ValidateRawOp to the same bytes.
func FuzzValidateOp(f *testing.F) {
	f.Add([]byte(`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro","n":1.5,"o":{"a":[1,"x",null,true]}},"timestamp":1700000000}`),
		"identify", "u1", "", "plan", "pro", int64(1700000000))
	f.Add([]byte(`{"type":"person","identifiers":{"anonymous_id":"a"},"action":"page","name":"https://x/?a=<b>","id":"01J"}`),
		"page", "a", "https://x/?a=<b>", "k", "v\u2028", int64(0))
	f.Add([]byte(`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"email":"b@c.d"}}`),
		"merge", "a", "", "", "", int64(0))
	f.Add([]byte(`{"type":"person","identifiers":{"id":"u1"},"action":"add_device","device":{"token":"t","platform":"ios","attributes":{"v":"1"}}}`),
		"add_device", "u1", "", "k", "\xff", int64(-1))
	f.Add([]byte(`{"type":"person","identifiers":{"id":"u1"},"action":"add_relationships","cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"acme"}}]}`),
		"add_relationships", "u1", "", "", "", int64(0))
	f.Add([]byte(`{"action":"event","identifiers":{"id":"u"},"name":"e","attributes":{"a":"\ud800","b":1e400,"c":-0.0e-5}}`),
		"event", "u", "e", "a", "b", int64(9999999999))

	f.Fuzz(func(t *testing.T, raw []byte, action, id, name, key, val string, ts int64) {
		if op, err := track.ValidateRawOp(raw); err == nil {
			roundTrip(t, op)
		}
		op := &track.Op{Action: track.Action(action), Identifiers: &track.Identifiers{ID: id}, Name: name, Timestamp: ts}
		switch op.Action {
		case track.ActionMerge:
			op.Identifiers = nil
			op.Primary, op.Secondary = &track.Identifiers{ID: id}, &track.Identifiers{Email: val}
		case track.ActionAddDevice, track.ActionDeleteDevice:
			op.Device = &track.Device{Token: val, Attributes: map[string]any{key: name}}
		case track.ActionAddRelationships, track.ActionDeleteRelationships:
			op.Relationships = []json.RawMessage{json.RawMessage(val)}
		default:
			op.Attributes = map[string]any{key: val, "nested": map[string]any{key: []any{val, ts}}}
		}
		if track.ValidateOp(op) == nil {
			roundTrip(t, op)
		} else if _, err := track.EncodeOp(op); err == nil {
			t.Fatalf("EncodeOp accepted an op ValidateOp rejects: %+v", op)
		}
	})
}

// roundTrip encodes op and checks the encoding decodes, validates and
// re-encodes to the same bytes.
func roundTrip(t *testing.T, op *track.Op) {
	t.Helper()
	b, err := track.EncodeOp(op)
	if err != nil {
		t.Fatalf("EncodeOp rejected a valid op: %v", err)
	}
	if len(b) > track.MaxOpBytes {
		t.Fatalf("EncodeOp returned %d bytes", len(b))
	}
	back, err := track.ValidateRawOp(b)
	if err != nil {
		t.Fatalf("ValidateRawOp(%s): %v", b, err)
	}
	b2, err := track.EncodeOp(back)
	if err != nil {
		t.Fatalf("EncodeOp after round trip: %v", err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the op:\n%s\n%s", b, b2)
	}
}
