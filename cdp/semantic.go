package cdp

import "github.com/cioq/cioq/track"

// Customer.io's semantic events: track calls whose event name makes
// Customer.io do something other than record an event (pipelines.json,
// "Deletions, suppressions, and other semantic events").
const (
	// EventDeviceCreatedOrUpdated adds or updates the device
	// context.device.token ({token, type: ios|android}) of UserID.
	EventDeviceCreatedOrUpdated = "Device Created or Updated"
	// EventDeviceDeleted deletes the device context.device.token.
	EventDeviceDeleted = "Device Deleted"
	// EventUserDeleted removes the person UserID.
	EventUserDeleted = "User Deleted"
	// EventUserSuppressed removes the person UserID and suppresses the
	// identifier so it cannot be added back.
	EventUserSuppressed = "User Suppressed"
	// EventUserUnsuppressed lifts a suppression.
	EventUserUnsuppressed = "User Unsuppressed"
	// EventRelationshipDeleted removes the relationship between UserID and
	// the object properties.objectId (of type properties.objectTypeId, an
	// integer, 1 when absent).
	EventRelationshipDeleted = "Relationship Deleted"
	// EventObjectDeleted removes the object properties.objectId.
	EventObjectDeleted = "Object Deleted"
)

// semanticActions maps the semantic events that have a Track API action.
var semanticActions = map[string]track.Action{
	EventDeviceCreatedOrUpdated: track.ActionAddDevice,
	EventDeviceDeleted:          track.ActionDeleteDevice,
	EventUserDeleted:            track.ActionDelete,
	EventUserSuppressed:         track.ActionSuppress,
	EventUserUnsuppressed:       track.ActionUnsuppress,
	EventRelationshipDeleted:    track.ActionDeleteRelationships,
}

// IsSemantic reports whether event is one of Customer.io's semantic event
// names (Event* constants).
func IsSemantic(event string) bool {
	_, ok := semanticActions[event]
	return ok || event == EventObjectDeleted
}

// Action returns the Track API action the call amounts to, so that lanes,
// tombstones and history treat Pipelines calls as the Track ops they mean:
// identify → identify, track → event (or the semantic event's action:
// add_device, delete_device, delete, suppress, unsuppress,
// delete_relationships), page → page, screen → screen, group →
// add_relationships, alias → merge. It is "" for an "Object Deleted" call
// (no Track action) and for an invalid type.
func (c *Call) Action() track.Action {
	switch c.Type {
	case TypeIdentify:
		return track.ActionIdentify
	case TypeTrack:
		if a, ok := semanticActions[c.Event]; ok {
			return a
		}
		if c.Event == EventObjectDeleted {
			return ""
		}
		return track.ActionEvent
	case TypePage:
		return track.ActionPage
	case TypeScreen:
		return track.ActionScreen
	case TypeGroup:
		return track.ActionAddRelationships
	case TypeAlias:
		return track.ActionMerge
	}
	return ""
}

// Person returns the person the call is about, as Track API identifiers:
// UserID read with the rule cioq uses for Track v1 path ids
// (track.IdentifiersFromV1: "cio_<x>" is a cio_id, a value with "@" an
// email, anything else an id), else AnonymousID, else (an identify by
// email trait) the email. For an alias it is the person kept (UserID). The
// zero value when the call names nobody.
func (c *Call) Person() track.Identifiers {
	switch {
	case c.UserID != "":
		return track.IdentifiersFromV1(c.UserID)
	case c.AnonymousID != "":
		return track.Identifiers{AnonymousID: c.AnonymousID}
	}
	if email, _ := c.Traits["email"].(string); c.Type == TypeIdentify && email != "" {
		return track.Identifiers{Email: email}
	}
	return track.Identifiers{}
}
