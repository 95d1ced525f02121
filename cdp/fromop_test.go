package cdp_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/track"
)

func TestFromOp_EveryActionHasAPipelinesForm(t *testing.T) {
	t.Parallel()
	const ts = 1700000000
	const iso = "2023-11-14T22:13:20.000Z"
	u1 := &track.Identifiers{ID: "u1"}
	rels := []json.RawMessage{
		json.RawMessage(`{"identifiers":{"object_type_id":"2","object_id":"acme"},"relationship_attributes":{"role":"admin"}}`),
		json.RawMessage(`{"identifiers":{"object_id":"beta"}}`),
	}
	tests := []struct {
		name string
		op   track.Op
		want []*cdp.Call
	}{
		{"Identify", track.Op{Identifiers: u1, Action: track.ActionIdentify, Timestamp: ts, Attributes: map[string]any{"plan": "pro"}},
			[]*cdp.Call{{Type: cdp.TypeIdentify, MessageID: "m", Timestamp: iso, UserID: "u1", Traits: map[string]any{"plan": "pro"}}}},
		{"IdentifyByEmail", track.Op{Identifiers: &track.Identifiers{Email: "a@b.c"}, Action: track.ActionIdentify},
			[]*cdp.Call{{Type: cdp.TypeIdentify, MessageID: "m", UserID: "a@b.c"}}},
		{"IdentifyByCioID", track.Op{Identifiers: &track.Identifiers{CioID: "x9"}, Action: track.ActionIdentify},
			[]*cdp.Call{{Type: cdp.TypeIdentify, MessageID: "m", UserID: "cio_x9"}}},
		{"Event", track.Op{Identifiers: u1, Action: track.ActionEvent, Name: "purchase", ID: "01J", Attributes: map[string]any{"n": 1}},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", UserID: "u1", Event: "purchase", Properties: map[string]any{"n": 1}}}},
		{"AnonymousEvent", track.Op{Identifiers: &track.Identifiers{AnonymousID: "a1"}, Action: track.ActionEvent, Name: "viewed"},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", AnonymousID: "a1", Event: "viewed"}}},
		{"Page", track.Op{Identifiers: u1, Action: track.ActionPage, Name: "https://x.io/a"},
			[]*cdp.Call{{Type: cdp.TypePage, MessageID: "m", UserID: "u1", Name: "https://x.io/a", Properties: map[string]any{"url": "https://x.io/a"}}}},
		{"PageKeepsItsURL", track.Op{Identifiers: u1, Action: track.ActionPage, Name: "Home", Attributes: map[string]any{"url": "https://x.io/"}},
			[]*cdp.Call{{Type: cdp.TypePage, MessageID: "m", UserID: "u1", Name: "Home", Properties: map[string]any{"url": "https://x.io/"}}}},
		{"Screen", track.Op{Identifiers: u1, Action: track.ActionScreen, Name: "Cart"},
			[]*cdp.Call{{Type: cdp.TypeScreen, MessageID: "m", UserID: "u1", Name: "Cart"}}},
		{"Delete", track.Op{Identifiers: u1, Action: track.ActionDelete},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", UserID: "u1", Event: cdp.EventUserDeleted}}},
		{"Suppress", track.Op{Identifiers: u1, Action: track.ActionSuppress, Timestamp: ts},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", Timestamp: iso, UserID: "u1", Event: cdp.EventUserSuppressed}}},
		{"Unsuppress", track.Op{Identifiers: u1, Action: track.ActionUnsuppress},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", UserID: "u1", Event: cdp.EventUserUnsuppressed}}},
		{"AddDevice", track.Op{Identifiers: u1, Action: track.ActionAddDevice,
			Device: &track.Device{Token: "tok", Platform: "ios", LastUsed: ts, Attributes: map[string]any{"app_version": "2"}}},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", UserID: "u1", Event: cdp.EventDeviceCreatedOrUpdated,
				Context:    map[string]any{"device": map[string]any{"token": "tok", "type": "ios"}},
				Properties: map[string]any{"app_version": "2", "last_used": int64(ts)}}}},
		{"DeleteDevice", track.Op{Identifiers: u1, Action: track.ActionDeleteDevice, Device: &track.Device{Token: "tok"}},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", UserID: "u1", Event: cdp.EventDeviceDeleted,
				Context: map[string]any{"device": map[string]any{"token": "tok"}}}}},
		{"Merge", track.Op{Action: track.ActionMerge, Primary: u1, Secondary: &track.Identifiers{Email: "old@b.c"}},
			[]*cdp.Call{{Type: cdp.TypeAlias, MessageID: "m", UserID: "u1", PreviousID: "old@b.c"}}},
		{"AddRelationships", track.Op{Identifiers: u1, Action: track.ActionAddRelationships, Relationships: rels},
			[]*cdp.Call{
				{Type: cdp.TypeGroup, MessageID: "m", UserID: "u1", GroupID: "acme",
					Traits: map[string]any{"object_type_id": "2", "relationshipAttributes": map[string]any{"role": "admin"}}},
				{Type: cdp.TypeGroup, MessageID: "m-1", UserID: "u1", GroupID: "beta", Traits: map[string]any{"object_type_id": "1"}},
			}},
		{"DeleteRelationships", track.Op{Identifiers: u1, Action: track.ActionDeleteRelationships, Relationships: rels[:1]},
			[]*cdp.Call{{Type: cdp.TypeTrack, MessageID: "m", UserID: "u1", Event: cdp.EventRelationshipDeleted,
				Properties: map[string]any{"objectId": "acme", "objectTypeId": 2}}}},
	}
	seen := map[track.Action]bool{}
	for _, tt := range tests {
		seen[tt.op.Action] = true
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cdp.FromOp(&tt.op, "m")
			require.NoError(t, err)
			require.Empty(t, cmp.Diff(tt.want, got), "(-want +got)")
			for _, c := range got {
				require.Equal(t, tt.op.Action, c.Action(), "Action maps the call back to the op's action")
				require.Equal(t, tt.op.Person(), c.Person(), "Person maps the call back to the op's person")
			}
		})
	}
	for _, a := range track.Actions() {
		require.True(t, seen[a], "no FromOp case for %s", a)
	}
}

func TestFromOp_MessageIDDefaultsToTheEventID(t *testing.T) {
	t.Parallel()
	op := &track.Op{Identifiers: &track.Identifiers{ID: "u1"}, Action: track.ActionEvent, Name: "e", ID: "01HZZZZZZZZZZZZZZZZZZZZZZZ"}
	got, err := cdp.FromOp(op, "")
	require.NoError(t, err)
	require.Equal(t, op.ID, got[0].MessageID)
}

func TestFromOp_RejectsWhatHasNoForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		op        track.Op
		wantField string
	}{
		{"Phone", track.Op{Identifiers: &track.Identifiers{Phone: "+1"}, Action: track.ActionIdentify}, "identifiers.phone"},
		{"RelationshipWithoutObjectID", track.Op{Identifiers: &track.Identifiers{ID: "u"}, Action: track.ActionAddRelationships,
			Relationships: []json.RawMessage{json.RawMessage(`{"identifiers":{"object_type_id":"1"}}`)}}, "cio_relationships[0].identifiers.object_id"},
		{"ObjectTypeNotANumber", track.Op{Identifiers: &track.Identifiers{ID: "u"}, Action: track.ActionDeleteRelationships,
			Relationships: []json.RawMessage{json.RawMessage(`{"identifiers":{"object_type_id":"company","object_id":"x"}}`)}}, "cio_relationships[0].identifiers.object_type_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cdp.FromOp(&tt.op, "m")
			var ve *cdp.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tt.wantField, ve.Field)
			require.ErrorIs(t, err, cdp.ErrInvalidCall)
		})
	}
	_, err := cdp.FromOp(&track.Op{Action: track.ActionIdentify}, "m")
	var tve *track.ValidationError
	require.ErrorAs(t, err, &tve, "an invalid op fails track validation first")
}

func TestCall_ActionAndPerson(t *testing.T) {
	t.Parallel()
	tests := []struct {
		call       cdp.Call
		wantAction track.Action
		wantPerson string
	}{
		{cdp.Call{Type: cdp.TypeIdentify, UserID: "u1"}, track.ActionIdentify, "id:u1"},
		{cdp.Call{Type: cdp.TypeIdentify, Traits: map[string]any{"email": "a@b.c"}}, track.ActionIdentify, "email:a@b.c"},
		{cdp.Call{Type: cdp.TypeTrack, UserID: "a@b.c", Event: "x"}, track.ActionEvent, "email:a@b.c"},
		{cdp.Call{Type: cdp.TypeTrack, AnonymousID: "a", Event: "x"}, track.ActionEvent, "anonymous_id:a"},
		{cdp.Call{Type: cdp.TypeTrack, UserID: "cio_9", Event: cdp.EventUserSuppressed}, track.ActionSuppress, "cio_id:9"},
		{cdp.Call{Type: cdp.TypeTrack, AnonymousID: "a", Event: cdp.EventObjectDeleted}, "", "anonymous_id:a"},
		{cdp.Call{Type: cdp.TypeAlias, UserID: "u2", PreviousID: "u1"}, track.ActionMerge, "id:u2"},
		{cdp.Call{Type: "nope"}, "", ""},
	}
	for _, tt := range tests {
		require.Equal(t, tt.wantAction, tt.call.Action(), "%+v", tt.call)
		require.Equal(t, tt.wantPerson, tt.call.Person().Key(), "%+v", tt.call)
	}
	require.Equal(t, track.ActionDelete, (&cdp.Call{Type: cdp.TypeTrack, UserID: "u", Event: cdp.EventUserDeleted}).Action())
	require.True(t, cdp.IsSemantic(cdp.EventObjectDeleted))
	require.False(t, cdp.IsSemantic("purchase"))
}
