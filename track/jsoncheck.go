package track

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
)

// checkJSON refuses what encoding/json would take silently but Customer.io
// would not receive as sent: an object with the same key twice (encoding/json
// keeps the last value, another reader the first) and a number a float64
// cannot hold (1e99999 decodes, as json.Number, then reaches Customer.io as
// infinity or as an error). It returns a *ValidationError naming the path,
// or nil; malformed JSON is left to the decoder, which says more.
func checkJSON(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]struct{}
		key    bool // the next string token in an object is a key
		path   string
		last   string
	}
	var stack []*frame
	path := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := stack[len(stack)-1]
		if f.object {
			if f.path == "" {
				return f.last
			}
			return f.path + "." + f.last
		}
		return f.path
	}
	value := func() { // a value was read: the next token is a key again
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				p := path()
				if top != nil && !top.object {
					p = top.path
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]struct{}{}, key: true, path: p})
			case '}', ']':
				stack = stack[:len(stack)-1]
				value()
			}
		case string:
			if top != nil && top.object && top.key {
				if _, dup := top.keys[t]; dup {
					top.last = t
					return invalid(path(), "key appears twice in one object")
				}
				top.keys[t] = struct{}{}
				top.last, top.key = t, false
				continue
			}
			value()
		case json.Number:
			if f, err := strconv.ParseFloat(t.String(), 64); err != nil || math.IsInf(f, 0) {
				return invalid(path(), "number "+truncate(t.String(), 32)+" is out of range")
			}
			value()
		default:
			value()
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
