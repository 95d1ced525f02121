package fake

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cioq/cioq/cdp"
)

// UserState is the final state of one person as the accepted calls left it
// (resent calls are dropped and change nothing). Calls apply in timestamp
// order whatever order they arrive in (a call without a timestamp is
// stamped when received; equal timestamps apply in arrival order): a trait,
// a device or a relationship keeps what the newest call about it said, and
// a delete or suppression hides what is older.
type UserState struct {
	// Traits are the person's traits, each from the newest identify that
	// set it, not older than the last delete.
	Traits map[string]any `json:"traits,omitempty"`
	// Events counts the track (not semantic), page and screen calls
	// applied.
	Events int64 `json:"events"`
	// Devices are the device tokens the person has, sorted.
	Devices []string `json:"devices,omitempty"`
	// Groups are the person's relationships as "objectTypeId:objectId",
	// sorted.
	Groups []string `json:"groups,omitempty"`
	// Aliases are the previousIds alias calls merged into the person,
	// sorted.
	Aliases []string `json:"aliases,omitempty"`
	// Deleted reports that a "User Deleted" or "User Suppressed" is the
	// newest thing that happened to the person's profile.
	Deleted bool `json:"deleted,omitempty"`
	// Suppressed reports that a "User Suppressed" is newer than any "User
	// Unsuppressed".
	Suppressed bool `json:"suppressed,omitempty"`
	// Calls counts the calls applied to the person.
	Calls int64 `json:"calls"`
}

// userState is the live state behind UserState.
type userState struct {
	traits       map[string]any
	traitTimes   map[string]time.Time
	events       int64
	devices      timedSet
	groups       timedSet
	aliases      map[string]struct{}
	deleted      bool
	deletedAt    time.Time
	suppressed   bool
	suppressedAt time.Time
	calls        int64
}

func newUserState() *userState {
	return &userState{
		traits: map[string]any{}, traitTimes: map[string]time.Time{},
		devices: timedSet{}, groups: timedSet{}, aliases: map[string]struct{}{},
	}
}

// apply changes the state by one call that happened at t.
func (u *userState) apply(c *cdp.Call, t time.Time) {
	u.calls++
	if c.Type == cdp.TypeTrack {
		switch c.Event {
		case cdp.EventUserDeleted:
			u.remove(t)
			return
		case cdp.EventUserSuppressed:
			u.remove(t)
			if !t.Before(u.suppressedAt) {
				u.suppressed, u.suppressedAt = true, t
			}
			return
		case cdp.EventUserUnsuppressed:
			if !t.Before(u.suppressedAt) {
				u.suppressed, u.suppressedAt = false, t
			}
			return
		}
	}
	if u.suppressed || t.Before(u.deletedAt) {
		return // Customer.io ignores a suppressed person; older calls are gone with the profile
	}
	switch c.Type {
	case cdp.TypeIdentify:
		u.deleted = false
		for k, v := range c.Traits {
			if !t.Before(u.traitTimes[k]) {
				u.traits[k], u.traitTimes[k] = v, t
			}
		}
	case cdp.TypePage, cdp.TypeScreen:
		u.events++
	case cdp.TypeGroup:
		u.groups.set(relationshipKey(c.Traits["object_type_id"], c.GroupID), true, t)
	case cdp.TypeAlias:
		u.aliases[c.PreviousID] = struct{}{}
	case cdp.TypeTrack:
		u.applyTrack(c, t)
	}
}

func (u *userState) applyTrack(c *cdp.Call, t time.Time) {
	switch c.Event {
	case cdp.EventDeviceCreatedOrUpdated, cdp.EventDeviceDeleted:
		dev, _ := c.Context["device"].(map[string]any)
		tok, _ := dev["token"].(string)
		u.devices.set(tok, c.Event == cdp.EventDeviceCreatedOrUpdated, t)
	case cdp.EventRelationshipDeleted:
		id, _ := c.Properties["objectId"].(string)
		u.groups.set(relationshipKey(c.Properties["objectTypeId"], id), false, t)
	default:
		u.events++
	}
}

// timedSet is a set whose adds and removes apply in timestamp order: a
// change older than the last one of its member is ignored (equal times
// apply in arrival order).
type timedSet map[string]timedMember

type timedMember struct {
	in bool
	at time.Time
}

func (s timedSet) set(k string, in bool, t time.Time) {
	if m, ok := s[k]; ok && t.Before(m.at) {
		return
	}
	s[k] = timedMember{in: in, at: t}
}

// removeUpTo removes every member changed at or before t.
func (s timedSet) removeUpTo(t time.Time) {
	for k, m := range s {
		if !m.at.After(t) {
			s[k] = timedMember{in: false, at: t}
		}
	}
}

// members returns the members in the set, sorted.
func (s timedSet) members() []string {
	var out []string
	for k, m := range s {
		if m.in {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// remove deletes the profile as of t: what is older goes.
func (u *userState) remove(t time.Time) {
	if t.Before(u.deletedAt) {
		return
	}
	u.deleted, u.deletedAt = true, t
	for k, at := range u.traitTimes {
		if !at.After(t) {
			delete(u.traits, k)
			delete(u.traitTimes, k)
		}
	}
	u.devices.removeUpTo(t)
	u.groups.removeUpTo(t)
}

// relationshipKey names a relationship "objectTypeId:objectId"; the type
// is 1 when absent, whether given as a string ("1") or a number (1).
func relationshipKey(typeID any, objectID string) string {
	t := "1"
	switch v := typeID.(type) {
	case string:
		if v != "" {
			t = v
		}
	case json.Number:
		t = v.String()
	case nil:
	default:
		t = fmt.Sprint(v)
	}
	return t + ":" + objectID
}

func (u *userState) snapshot() UserState {
	s := UserState{
		Events: u.events, Deleted: u.deleted, Suppressed: u.suppressed, Calls: u.calls,
		Devices: u.devices.members(), Groups: u.groups.members(), Aliases: sortedKeys(u.aliases),
	}
	if len(u.traits) > 0 {
		s.Traits = maps.Clone(u.traits)
	}
	return s
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}
