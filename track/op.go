package track

import (
	"encoding/json"
	"slices"
	"strings"
)

// Action is the v2 `action` of a person operation.
type Action string

// The v2 person actions (TRACK_API.md, "v2").
const (
	ActionIdentify            Action = "identify"
	ActionEvent               Action = "event"
	ActionPage                Action = "page"
	ActionScreen              Action = "screen"
	ActionDelete              Action = "delete"
	ActionSuppress            Action = "suppress"
	ActionUnsuppress          Action = "unsuppress"
	ActionAddDevice           Action = "add_device"
	ActionDeleteDevice        Action = "delete_device"
	ActionMerge               Action = "merge"
	ActionAddRelationships    Action = "add_relationships"
	ActionDeleteRelationships Action = "delete_relationships"
)

// actions is every action the Track API v2 accepts, in a stable order.
var actions = [...]Action{
	ActionIdentify, ActionEvent, ActionPage, ActionScreen, ActionDelete, ActionSuppress,
	ActionUnsuppress, ActionAddDevice, ActionDeleteDevice, ActionMerge,
	ActionAddRelationships, ActionDeleteRelationships,
}

// Actions returns every action the Track API v2 accepts, in a stable order,
// in a new slice the caller may change.
func Actions() []Action { return slices.Clone(actions[:]) }

// Valid reports whether a is an action the Track API accepts.
func (a Action) Valid() bool {
	for _, v := range actions {
		if a == v {
			return true
		}
	}
	return false
}

// IsEvent reports whether a records an event (event, page, screen): the actions
// that carry a `name` and an event `id`.
func (a Action) IsEvent() bool {
	return a == ActionEvent || a == ActionPage || a == ActionScreen
}

// Identifiers names one person. Exactly one of ID, Email, CioID (or Phone) is
// set for a person op; AnonymousID alone names an anonymous person in an event.
type Identifiers struct {
	ID          string `json:"id,omitempty"`
	Email       string `json:"email,omitempty"`
	CioID       string `json:"cio_id,omitempty"`
	Phone       string `json:"phone,omitempty"`
	AnonymousID string `json:"anonymous_id,omitempty"`
}

// IsZero reports whether no identifier is set.
func (i Identifiers) IsZero() bool { return i == Identifiers{} }

// Key returns a stable, typed form of the identifier ("id:u1", "email:a@b.c",
// "cio_id:x", "phone:+1", "anonymous_id:a"), used to name the person in
// tombstones and history. It is "" when no identifier is set.
func (i Identifiers) Key() string {
	switch {
	case i.ID != "":
		return "id:" + i.ID
	case i.Email != "":
		return "email:" + i.Email
	case i.CioID != "":
		return "cio_id:" + i.CioID
	case i.Phone != "":
		return "phone:" + i.Phone
	case i.AnonymousID != "":
		return "anonymous_id:" + i.AnonymousID
	}
	return ""
}

// count returns how many identifiers are set.
func (i Identifiers) count() int {
	n := 0
	for _, s := range []string{i.ID, i.Email, i.CioID, i.Phone, i.AnonymousID} {
		if s != "" {
			n++
		}
	}
	return n
}

// IdentifiersFromV1 maps a v1 path id to v2 identifiers: "cio_<x>" is a cio_id,
// a value containing "@" is an email, anything else an id.
func IdentifiersFromV1(pathID string) Identifiers {
	switch {
	case strings.HasPrefix(pathID, "cio_") && len(pathID) > len("cio_"):
		return Identifiers{CioID: strings.TrimPrefix(pathID, "cio_")}
	case strings.Contains(pathID, "@"):
		return Identifiers{Email: pathID}
	default:
		return Identifiers{ID: pathID}
	}
}

// Device is a push device in add_device / delete_device ops.
type Device struct {
	Token    string `json:"token"`
	Platform string `json:"platform,omitempty"`
	LastUsed int64  `json:"last_used,omitempty"`
	// Attributes are optional device attributes.
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Op is one v2 person operation, the unit cioq queues and delivers. Its JSON
// form is exactly what goes into a v2 `batch` array or an `entity` body.
type Op struct {
	// Type is always "person"; zero means "person".
	Type string `json:"type"`
	// Identifiers names the person. Unset only for merge.
	Identifiers *Identifiers `json:"identifiers,omitempty"`
	// Action is what to do.
	Action Action `json:"action"`
	// Name is the event name (event), URL (page) or screen name (screen).
	Name string `json:"name,omitempty"`
	// ID is the event id, a ULID; Customer.io drops a repeated id.
	ID string `json:"id,omitempty"`
	// Timestamp is the unix time in seconds Customer.io orders updates by.
	Timestamp int64 `json:"timestamp,omitempty"`
	// Attributes are person attributes (identify) or event properties (event).
	Attributes map[string]any `json:"attributes,omitempty"`
	// Device is set for add_device / delete_device.
	Device *Device `json:"device,omitempty"`
	// Primary and Secondary are set for merge only.
	Primary   *Identifiers `json:"primary,omitempty"`
	Secondary *Identifiers `json:"secondary,omitempty"`
	// Relationships are set for add_relationships / delete_relationships:
	// each a JSON object such as
	// {"identifiers":{"object_type_id":"1","object_id":"acme"}}. The Track
	// API names the field cio_relationships.
	Relationships []json.RawMessage `json:"cio_relationships,omitempty"`
}

// Person returns the identifiers of the person the op is about (for merge,
// the primary person), or the zero value.
func (o *Op) Person() Identifiers {
	if o.Identifiers != nil {
		return *o.Identifiers
	}
	if o.Primary != nil {
		return *o.Primary
	}
	return Identifiers{}
}
