package track

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// slowDecodeOp is decodeRawOp without its shortcut.
func slowDecodeOp(raw []byte) (*Op, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var op Op
	if err := dec.Decode(&op); err != nil {
		return nil, err
	}
	if err := checkJSON(raw); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return &op, nil
}

// checkDecodeOpFast checks the shortcut takes only what the slow path
// takes, and decodes it to the same op.
func checkDecodeOpFast(t *testing.T, raw []byte) bool {
	t.Helper()
	if !utf8.Valid(raw) {
		return false
	}
	fast, ok := decodeOpFast(raw)
	if !ok {
		return false
	}
	slow, err := slowDecodeOp(raw)
	if err != nil {
		t.Fatalf("shortcut took what encoding/json or checkJSON refuse (%v): %s", err, raw)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("shortcut decoded %s\n to %#v\nnot %#v", raw, fast, slow)
	}
	return true
}

func TestDecodeOpFastMatchesEncodingJSON(t *testing.T) {
	taken := []string{
		`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro","n":1.5,"o":{"a":[1,"x",null,true,false,[],{}]}},"timestamp":1700000000}`,
		` {"action":"event","identifiers":{"anonymous_id":"a"},"name":"e\"\\\/\b\f\n\r\t\u00e9\u2028","id":"01J","timestamp":-0,"attributes":{}} ` + "\n",
		`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"email":"b@c.d","cio_id":"x","phone":"+1"}}`,
		`{"action":"add_device","identifiers":{"id":"u"},"device":{"token":"t","platform":"ios","last_used":5,"attributes":{"v":"1"}}}`,
		`{"device":{},"identifiers":{},"attributes":{"k\u0041":-0.5,"":0,"big":123456789012345678901234567890}}`,
		`{"typ\u0065":"person"}`, `{}`,
	}
	for _, s := range taken {
		if !checkDecodeOpFast(t, []byte(s)) {
			t.Errorf("shortcut declined %s", s)
		}
	}
	left := []string{
		`{"Type":"person"}`, `{"type":null}`, `{"type":1}`, `{"timestamp":1.5}`, `{"timestamp":1e3}`,
		`{"timestamp":99999999999999999999}`, `{"attributes":{"a":1e400}}`, `{"attributes":{"a":1,"a":2}}`,
		`{"action":"a","action":"b"}`, `{"cio_relationships":[{}]}`, `{"x":1}`, `{"attributes":{"s":"\ud800"}}`,
		`{"attributes":{"n":01}}`, `{"attributes":{"n":1.}}`, `{"attributes":{"n":-}}`, `{} x`, `{}{}`, `[]`,
		`{"attributes":{"s":"a` + "\x01" + `"}}`, `{"attributes":{"s":"\x"}}`, `{"attributes":null}`,
		`{"attributes":{"n":` + strings.Repeat("1", 301) + `}}`, `{"attributes":{"a":[1,]}}`, `{"attributes":{"a":tru}}`,
		`{"identifiers":{"ID":"x"}}`, `{"device":{"token":"t","x":1}}`, `{"a"}`, `{"type":"p",}`, `{"type":"p"`,
	}
	for _, s := range left {
		if checkDecodeOpFast(t, []byte(s)) {
			t.Errorf("shortcut took %s", s)
		}
	}
}

// FuzzDecodeOpFast compares the shortcut with encoding/json and checkJSON.
func FuzzDecodeOpFast(f *testing.F) {
	f.Add([]byte(`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro","n":1.5,"o":{"a":[1,"x",null,true]}},"timestamp":1700000000}`))
	f.Add([]byte(`{"action":"event","identifiers":{"id":"u"},"name":"e\u00e9\n","attributes":{"a":"\ud83d\ude00","b":1e400,"c":-0.0}}`))
	f.Add([]byte(`{"action":"add_device","device":{"token":"t","last_used":5,"attributes":{"x":[]}},"primary":{"email":"a"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodeOpFast(t, raw)
	})
}
