package fake

import (
	"maps"
	"time"

	"github.com/cioq/cioq/track"
)

// Person is the state the fake holds for one person after every op it
// accepted, applied in the order the fake accepted them, the way
// Customer.io applies them:
//
//   - identify sets each attribute unless the attribute holds a value with
//     a newer timestamp (Customer.io orders attribute updates by the op's
//     `timestamp`, whole seconds; of two updates with the same timestamp the
//     one that arrives last wins). An identify creates the person.
//   - event, page and screen count for the person and create it.
//   - delete removes the person and its attributes; a later op creates a
//     new, empty one.
//   - suppress removes the person and ignores every later op for it until
//     an unsuppress; unsuppress lifts that and does not bring the person
//     back.
//   - add_device / delete_device add and remove a device token; merge
//     moves the secondary's attributes (where the primary has none newer)
//     and devices into the primary and removes the secondary.
//
// An op without timestamp counts as stamped when the fake accepted it.
// Anonymous ops (identifiers.anonymous_id only) are not tracked.
type Person struct {
	// Exists: the person exists (created and not deleted or suppressed).
	Exists bool `json:"exists"`
	// Suppressed: a suppress was applied and no unsuppress since.
	Suppressed bool `json:"suppressed"`
	// Attributes are the person's attributes.
	Attributes map[string]any `json:"attributes,omitempty"`
	// Devices are the person's device tokens.
	Devices map[string]bool `json:"devices,omitempty"`
	// Events counts events, pages and screens applied since the person was
	// last created.
	Events int `json:"events"`
	// Ignored counts ops ignored because the person was suppressed.
	Ignored int `json:"ignored"`
	// Deletes counts deletes and suppresses applied.
	Deletes int `json:"deletes"`
}

// person is a Person plus the timestamp of each attribute.
type person struct {
	Person
	attrTS map[string]int64
}

// people holds the persons of each site id, by identifier key
// (track.Identifiers.Key: "id:u1", "email:a@b.c").
type people map[string]map[string]*person

func (pp people) get(site, key string) *person {
	m := pp[site]
	if m == nil {
		m = map[string]*person{}
		pp[site] = m
	}
	p := m[key]
	if p == nil {
		p = &person{}
		m[key] = p
	}
	return p
}

// create makes p exist again after a delete: new and empty.
func (p *person) create() {
	if !p.Exists {
		p.Exists = true
		p.Attributes, p.attrTS, p.Devices, p.Events = map[string]any{}, map[string]int64{}, map[string]bool{}, 0
	}
}

func (p *person) remove() {
	p.Exists = false
	p.Attributes, p.attrTS, p.Devices, p.Events = nil, nil, nil, 0
	p.Deletes++
}

// apply applies the ops of one accepted request, in order, at now.
func (pp people) apply(site string, now time.Time, ops []track.Op) {
	for i := range ops {
		op := &ops[i]
		id := op.Person()
		if id.Key() == "" || (id.AnonymousID != "" && id.ID == "" && id.Email == "" && id.CioID == "" && id.Phone == "") {
			continue
		}
		p := pp.get(site, id.Key())
		ts := op.Timestamp
		if ts == 0 {
			ts = now.Unix()
		}
		switch op.Action {
		case track.ActionUnsuppress:
			p.Suppressed = false
			continue
		case track.ActionSuppress:
			if !p.Suppressed {
				p.remove()
				p.Suppressed = true
			}
			continue
		}
		if p.Suppressed {
			p.Ignored++
			continue
		}
		switch op.Action {
		case track.ActionDelete:
			if p.Exists {
				p.remove()
			}
		case track.ActionIdentify:
			p.create()
			for k, v := range op.Attributes {
				if cur, ok := p.attrTS[k]; ok && cur > ts {
					continue
				}
				p.Attributes[k], p.attrTS[k] = v, ts
			}
		case track.ActionEvent, track.ActionPage, track.ActionScreen:
			p.create()
			p.Events++
		case track.ActionAddDevice:
			p.create()
			if op.Device != nil {
				p.Devices[op.Device.Token] = true
			}
		case track.ActionDeleteDevice:
			if p.Exists && op.Device != nil {
				delete(p.Devices, op.Device.Token)
			}
		case track.ActionMerge:
			if op.Secondary == nil {
				continue
			}
			sec := pp.get(site, op.Secondary.Key())
			p.create()
			if sec.Exists {
				for k, v := range sec.Attributes {
					if cur, ok := p.attrTS[k]; !ok || cur < sec.attrTS[k] {
						p.Attributes[k], p.attrTS[k] = v, sec.attrTS[k]
					}
				}
				maps.Copy(p.Devices, sec.Devices)
				sec.remove()
			}
		}
	}
}

// snapshot returns a copy of the persons of site.
func (pp people) snapshot(site string) map[string]Person {
	out := make(map[string]Person, len(pp[site]))
	for k, p := range pp[site] {
		c := p.Person
		c.Attributes = maps.Clone(p.Attributes)
		c.Devices = maps.Clone(p.Devices)
		out[k] = c
	}
	return out
}

// People returns the state of every person of site id site the fake has
// seen (see Person for how ops apply). Use "" for requests that named no
// site id.
func (s *Server) People(site string) map[string]Person {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.people.snapshot(site)
}

// Expect returns the persons Customer.io would hold after ops applied in
// the given order (the order an application enqueued them), by identifier
// key, with the rules of Person; ops without timestamp count as stamped at
// now. A test compares it with People to check that the state Customer.io
// ends with is the one the application meant.
func Expect(ops []track.Op, now time.Time) map[string]Person {
	pp := people{}
	pp.apply("", now, ops)
	return pp.snapshot("")
}
