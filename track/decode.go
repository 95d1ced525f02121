package track

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeOpFast decodes one v2 op from raw in one pass, for the JSON ops
// are usually sent as. It reports false for anything it does not take:
// then ValidateRawOp decodes with encoding/json and checkJSON, which say
// what is wrong, or accept what this shortcut left to them. When it
// reports true, the op is the one encoding/json decodes from raw (unknown
// fields disallowed, numbers as json.Number) and checkJSON and the
// trailing-data check accept raw (decode_test.go compares the two).
//
// It takes: one object and whitespace around it; field names as the Op,
// Identifiers and Device fields name them (exact case); strings where the
// fields are strings, integers where they are int64; attributes of any
// JSON value. It leaves to encoding/json: null for a field, another case
// of a name, cio_relationships, a key twice in one object, numbers with an
// exponent or of more than 300 characters (checkJSON parses them), \u
// escapes of surrogates, nesting past maxNesting+1. raw must be valid
// UTF-8 (ValidateRawOp checks it first).
func decodeOpFast(raw []byte) (*Op, bool) {
	d := fastDecoder{b: raw}
	d.ws()
	var op Op
	if !d.object(func(key string) bool { return d.opField(&op, key) }) {
		return nil, false
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, false
	}
	return &op, true
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// object reads an object, calling field for each key with d at its value
// (past the colon and whitespace). Keys must not repeat.
func (d *fastDecoder) object(field func(key string) bool) bool {
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return false
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return true
	}
	var seen [8]string
	keys := seen[:0]
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return false
		}
		key, ok := d.str()
		if !ok {
			return false
		}
		for _, k := range keys {
			if k == key {
				return false // checkJSON names it
			}
		}
		keys = append(keys, key)
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return false
		}
		d.i++
		d.ws()
		if !field(key) {
			return false
		}
		d.ws()
		if d.i >= len(d.b) {
			return false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
			d.ws()
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

func (d *fastDecoder) opField(op *Op, key string) bool {
	ok := true
	switch key {
	case "type":
		op.Type, ok = d.str()
	case "action":
		var s string
		s, ok = d.str()
		op.Action = Action(s)
	case "name":
		op.Name, ok = d.str()
	case "id":
		op.ID, ok = d.str()
	case "timestamp":
		op.Timestamp, ok = d.int()
	case "identifiers":
		op.Identifiers, ok = d.identifiers()
	case "primary":
		op.Primary, ok = d.identifiers()
	case "secondary":
		op.Secondary, ok = d.identifiers()
	case "attributes":
		op.Attributes, ok = d.attrs()
	case "device":
		var dev Device
		ok = d.object(func(key string) bool {
			ok := true
			switch key {
			case "token":
				dev.Token, ok = d.str()
			case "platform":
				dev.Platform, ok = d.str()
			case "last_used":
				dev.LastUsed, ok = d.int()
			case "attributes":
				dev.Attributes, ok = d.attrs()
			default:
				return false
			}
			return ok
		})
		op.Device = &dev
	default:
		return false
	}
	return ok
}

func (d *fastDecoder) identifiers() (*Identifiers, bool) {
	var ids Identifiers
	ok := d.object(func(key string) bool {
		var p *string
		switch key {
		case "id":
			p = &ids.ID
		case "email":
			p = &ids.Email
		case "cio_id":
			p = &ids.CioID
		case "phone":
			p = &ids.Phone
		case "anonymous_id":
			p = &ids.AnonymousID
		default:
			return false
		}
		var ok bool
		*p, ok = d.str()
		return ok
	})
	return &ids, ok
}

func (d *fastDecoder) attrs() (map[string]any, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, false
	}
	v, ok := d.value(0)
	m, _ := v.(map[string]any)
	return m, ok
}

// value reads any JSON value as encoding/json decodes it into an any with
// UseNumber.
func (d *fastDecoder) value(depth int) (any, bool) {
	if d.i >= len(d.b) || depth > maxNesting+1 {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		return d.str()
	case c == '{':
		m := map[string]any{}
		ok := d.object(func(key string) bool {
			v, ok := d.value(depth + 1)
			m[key] = v
			return ok
		})
		return m, ok
	case c == '[':
		d.i++
		d.ws()
		a := []any{}
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			return a, true
		}
		for {
			v, ok := d.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			d.ws()
			if d.i >= len(d.b) {
				return nil, false
			}
			switch d.b[d.i] {
			case ',':
				d.i++
				d.ws()
			case ']':
				d.i++
				return a, true
			default:
				return nil, false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		n, ok := d.number()
		return json.Number(n), ok
	case d.literal("true"):
		return true, true
	case d.literal("false"):
		return false, true
	case d.literal("null"):
		return nil, true
	}
	return nil, false
}

func (d *fastDecoder) literal(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

// number reads a number without an exponent (JSON grammar: -?(0|[1-9]\d*)(\.\d+)?),
// at most 300 characters: always finite, so checkJSON accepts it.
func (d *fastDecoder) number() (string, bool) {
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return "", false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return "", false
		}
	}
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return "", false // an exponent, or digits after a leading 0
		}
	}
	if d.i-start > 300 {
		return "", false
	}
	return string(d.b[start:d.i]), true
}

// int reads an integer field (int64), as encoding/json does: an integer
// literal in range.
func (d *fastDecoder) int() (int64, bool) {
	if d.i >= len(d.b) || (d.b[d.i] != '-' && (d.b[d.i] < '0' || d.b[d.i] > '9')) {
		return 0, false
	}
	s, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// str reads a string. raw is valid UTF-8, so its bytes are the string's
// but for escapes.
func (d *fastDecoder) str() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	d.i++
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := string(d.b[start:d.i])
			d.i++
			return s, true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		}
		d.i++
	}
	return "", false
}

// escaped finishes a string that holds escapes, from its first byte at
// start; d.i is at the first backslash.
func (d *fastDecoder) escaped(start int) (string, bool) {
	out := append(make([]byte, 0, d.i-start+16), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if d.i+4 > len(d.b) {
				return "", false
			}
			r, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 32)
			if err != nil || (r >= 0xD800 && r < 0xE000) {
				return "", false // surrogates: encoding/json pairs or replaces them
			}
			out = utf8.AppendRune(out, rune(r))
			d.i += 4
		default:
			return "", false
		}
	}
	return "", false
}
