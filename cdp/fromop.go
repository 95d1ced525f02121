package cdp

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/cioq/cioq/track"
)

// FromOp returns the Pipelines form of a Track API v2 op: the calls that do
// over the Pipelines API what op does over the Track API
// (docs/pipelines.md, "Track op → Pipelines call"). Every action has one:
//
//	identify             identify {userId, traits: attributes}
//	event                track {event: name, properties: attributes}
//	page                 page {name, properties: attributes + url: name}
//	screen               screen {name, properties: attributes}
//	delete               track "User Deleted"
//	suppress             track "User Suppressed"
//	unsuppress           track "User Unsuppressed"
//	add_device           track "Device Created or Updated" {context.device: {token, type}, properties: device attributes (+ last_used)}
//	delete_device        track "Device Deleted" {context.device: {token}}
//	merge                alias {userId: primary, previousId: secondary}
//	add_relationships    one group per relationship {groupId: object_id, traits: {object_type_id, relationshipAttributes}}
//	delete_relationships one track "Relationship Deleted" per relationship {properties: {objectId, objectTypeId}}
//
// The person becomes userId (an id as is, an email as is, a cio_id as
// "cio_<id>": the inverse of Call.Person) or anonymousId; a phone
// identifier has no Pipelines form. op.Timestamp (unix seconds) becomes an
// ISO-8601 timestamp. messageID is the first call's messageId (op.ID when
// empty); the calls of a multi-relationship op get messageID-1, -2, ...
// after the first. op is validated first (track.ValidateOp); errors are a
// *track.ValidationError for the op or a *ValidationError for a call.
func FromOp(op *track.Op, messageID string) ([]*Call, error) {
	if err := track.ValidateOp(op); err != nil {
		return nil, err
	}
	if messageID == "" {
		messageID = op.ID
	}
	base := Call{MessageID: messageID}
	if op.Timestamp > 0 {
		base.Timestamp = FormatTimestamp(time.Unix(op.Timestamp, 0))
	}
	if op.Action == track.ActionMerge {
		primary, err := userID("primary", *op.Primary)
		if err != nil {
			return nil, err
		}
		secondary, err := userID("secondary", *op.Secondary)
		if err != nil {
			return nil, err
		}
		c := base
		c.Type, c.UserID, c.PreviousID = TypeAlias, primary, secondary
		return checked([]*Call{&c})
	}
	ids := *op.Identifiers
	if ids.AnonymousID != "" {
		base.AnonymousID = ids.AnonymousID
	} else {
		id, err := userID("identifiers", ids)
		if err != nil {
			return nil, err
		}
		base.UserID = id
	}
	attrs := maps.Clone(op.Attributes)
	one := func(c Call) ([]*Call, error) { return checked([]*Call{&c}) }
	c := base
	switch op.Action {
	case track.ActionIdentify:
		c.Type, c.Traits = TypeIdentify, attrs
	case track.ActionEvent:
		c.Type, c.Event, c.Properties = TypeTrack, op.Name, attrs
	case track.ActionPage:
		c.Type, c.Name, c.Properties = TypePage, op.Name, attrs
		if _, ok := c.Properties["url"]; !ok {
			if c.Properties == nil {
				c.Properties = map[string]any{}
			}
			c.Properties["url"] = op.Name
		}
	case track.ActionScreen:
		c.Type, c.Name, c.Properties = TypeScreen, op.Name, attrs
	case track.ActionDelete:
		c.Type, c.Event = TypeTrack, EventUserDeleted
	case track.ActionSuppress:
		c.Type, c.Event = TypeTrack, EventUserSuppressed
	case track.ActionUnsuppress:
		c.Type, c.Event = TypeTrack, EventUserUnsuppressed
	case track.ActionAddDevice, track.ActionDeleteDevice:
		c.Type, c.Event = TypeTrack, EventDeviceCreatedOrUpdated
		if op.Action == track.ActionDeleteDevice {
			c.Event = EventDeviceDeleted
		}
		dev := map[string]any{"token": op.Device.Token}
		if op.Device.Platform != "" {
			dev["type"] = op.Device.Platform
		}
		c.Context = map[string]any{"device": dev}
		if op.Action == track.ActionAddDevice {
			c.Properties = maps.Clone(op.Device.Attributes)
			if op.Device.LastUsed > 0 {
				if c.Properties == nil {
					c.Properties = map[string]any{}
				}
				c.Properties["last_used"] = op.Device.LastUsed
			}
		}
	case track.ActionAddRelationships, track.ActionDeleteRelationships:
		return relationshipCalls(op, base)
	default:
		return nil, invalid("action", fmt.Sprintf("%q has no Pipelines form", op.Action))
	}
	return one(c)
}

// userID renders Track identifiers as a Pipelines userId.
func userID(field string, ids track.Identifiers) (string, error) {
	switch {
	case ids.ID != "":
		return ids.ID, nil
	case ids.Email != "":
		return ids.Email, nil
	case ids.CioID != "":
		return "cio_" + ids.CioID, nil
	case ids.Phone != "":
		return "", invalid(field+".phone", "a phone identifier has no Pipelines form")
	}
	return "", invalid(field, "names nobody a Pipelines userId can name")
}

// relationship is one element of a Track op's cio_relationships.
type relationship struct {
	Identifiers struct {
		ObjectTypeID json.RawMessage `json:"object_type_id"`
		ObjectID     string          `json:"object_id"`
	} `json:"identifiers"`
	Attributes map[string]any `json:"relationship_attributes"`
}

// relationshipCalls maps add_relationships to group calls and
// delete_relationships to "Relationship Deleted" track calls, one per
// relationship.
func relationshipCalls(op *track.Op, base Call) ([]*Call, error) {
	calls := make([]*Call, 0, len(op.Relationships))
	for i, raw := range op.Relationships {
		field := fmt.Sprintf("cio_relationships[%d]", i)
		var r relationship
		if err := decodeOne(raw, &r); err != nil {
			return nil, invalid(field, "is not a relationship object: "+jsonErrorText(err))
		}
		if strings.TrimSpace(r.Identifiers.ObjectID) == "" {
			return nil, invalid(field+".identifiers.object_id", "is required for a Pipelines form")
		}
		typeID, err := objectTypeID(field, r.Identifiers.ObjectTypeID)
		if err != nil {
			return nil, err
		}
		c := base
		if i > 0 && c.MessageID != "" {
			c.MessageID = fmt.Sprintf("%s-%d", base.MessageID, i)
		}
		if op.Action == track.ActionAddRelationships {
			c.Type, c.GroupID = TypeGroup, r.Identifiers.ObjectID
			c.Traits = map[string]any{"object_type_id": strconv.Itoa(typeID)}
			if len(r.Attributes) > 0 {
				c.Traits["relationshipAttributes"] = r.Attributes
			}
		} else {
			c.Type, c.Event = TypeTrack, EventRelationshipDeleted
			c.Properties = map[string]any{"objectId": r.Identifiers.ObjectID, "objectTypeId": typeID}
		}
		calls = append(calls, &c)
	}
	return checked(calls)
}

// objectTypeID reads a Track object_type_id ("1" or 1; absent means 1) as
// the integer Pipelines objectTypeId.
func objectTypeID(field string, raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 1, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return 0, invalid(field+".identifiers.object_type_id", "must be a positive integer (as a string or a number)")
	}
	return n, nil
}

// checked validates every call.
func checked(calls []*Call) ([]*Call, error) {
	for _, c := range calls {
		if err := ValidateCall(c); err != nil {
			return nil, err
		}
	}
	return calls, nil
}
