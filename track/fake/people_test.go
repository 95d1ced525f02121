package fake

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cioq/cioq/track"
)

func TestPeopleApply(t *testing.T) {
	t.Parallel()
	u1 := &track.Identifiers{ID: "u1"}
	identify := func(ts int64, attrs map[string]any) track.Op {
		return track.Op{Action: track.ActionIdentify, Identifiers: u1, Timestamp: ts, Attributes: attrs}
	}
	op := func(a track.Action) track.Op { return track.Op{Action: a, Identifiers: u1, Timestamp: 100} }
	now := time.Unix(1000, 0)
	tests := []struct {
		name string
		ops  []track.Op
		want Person
	}{
		{"NewerTimestampWins", []track.Op{identify(10, map[string]any{"plan": "pro"}), identify(9, map[string]any{"plan": "free", "x": 1})},
			Person{Exists: true, Attributes: map[string]any{"plan": "pro", "x": 1}, Devices: map[string]bool{}}},
		{"SameSecondLastArrivalWins", []track.Op{identify(10, map[string]any{"plan": "pro"}), identify(10, map[string]any{"plan": "free"})},
			Person{Exists: true, Attributes: map[string]any{"plan": "free"}, Devices: map[string]bool{}}},
		{"DeleteThenIdentifyRecreates", []track.Op{identify(10, map[string]any{"a": 1}), op(track.ActionDelete), identify(5, map[string]any{"b": 2})},
			Person{Exists: true, Attributes: map[string]any{"b": 2}, Devices: map[string]bool{}, Deletes: 1}},
		{"IdentifyThenDeleteIsGone", []track.Op{identify(10, map[string]any{"a": 1}), op(track.ActionDelete)},
			Person{Deletes: 1}},
		{"SuppressIgnoresUntilUnsuppress", []track.Op{identify(10, map[string]any{"a": 1}), op(track.ActionSuppress),
			identify(11, map[string]any{"b": 2}), op(track.ActionEvent), op(track.ActionUnsuppress), identify(12, map[string]any{"c": 3})},
			Person{Exists: true, Attributes: map[string]any{"c": 3}, Devices: map[string]bool{}, Ignored: 2, Deletes: 1}},
		{"EventsCreateAndCount", []track.Op{op(track.ActionEvent), op(track.ActionPage)},
			Person{Exists: true, Attributes: map[string]any{}, Devices: map[string]bool{}, Events: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pp := people{}
			pp.apply("s", now, tt.ops)
			if diff := cmp.Diff(map[string]Person{"id:u1": tt.want}, pp.snapshot("s")); diff != "" {
				t.Fatalf("state (-want +got):\n%s", diff)
			}
		})
	}
}
