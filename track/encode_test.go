package track

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
	"unicode/utf8"
)

// stdEncode is encoding/json's encoding of v without HTML escaping, or an
// error.
func stdEncode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkAppendOp checks appendOp writes what encoding/json writes, or
// declines where encoding/json fails.
func checkAppendOp(t *testing.T, op *Op) {
	t.Helper()
	want, err := stdEncode(op)
	got, ok := appendOp([]byte("prefix"), op)
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("appendOp lost what b held: %q", got)
	}
	got = got[len("prefix"):]
	if !ok {
		if len(got) != 0 {
			t.Fatalf("appendOp declined but left %q", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("appendOp encoded what encoding/json refuses (%v): %s", err, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("appendOp differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

func TestAppendOpMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", `q"uo\te`, "ctl\x00\x01\x08\x0c\n\r\t\x1f\x7f", "<html>&amp;", "é😀",
		"\u2028\u2029", "bad\xffutf8\xc3", "\xed\xa0\x80", "a\u2028b"}
	floats := []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-7, 1e-6, 123456789, 1e20, 1e21, 1e300, -2.5e-10, math.SmallestNonzeroFloat64, math.MaxFloat64}
	var ops []*Op
	for _, s := range strs {
		attrs := map[string]any{s: s, "n" + s: json.Number("12.5e3"), "z": nil, "t": true, "f": false,
			"arr": []any{s, 1, nil, []any{}, map[string]any{}}, "nilarr": []any(nil), "nilmap": map[string]any(nil),
			"nested": map[string]any{"b": map[string]any{"c": []any{s}}, "a": 1}}
		ops = append(ops, &Op{Type: "person", Identifiers: &Identifiers{ID: s, Email: s, AnonymousID: s},
			Action: ActionEvent, Name: s, ID: s, Timestamp: 1700000000, Attributes: attrs})
		ops = append(ops, &Op{Type: s, Action: Action(s), Device: &Device{Token: s, Platform: s, LastUsed: -5,
			Attributes: map[string]any{"k": s}}, Primary: &Identifiers{CioID: s}, Secondary: &Identifiers{Phone: s}})
	}
	for _, f := range floats {
		ops = append(ops, &Op{Attributes: map[string]any{"f64": f, "f32": float32(f), "neg": -f}})
	}
	ops = append(ops,
		&Op{},
		&Op{Identifiers: &Identifiers{}, Device: &Device{}},
		&Op{Attributes: map[string]any{"int": 1, "i64": int64(-9), "i32": int32(7), "u": uint(3), "u64": uint64(math.MaxUint64)}},
		&Op{Attributes: map[string]any{"empty": json.Number(""), "bad": json.Number("1 ")}},
		&Op{Attributes: map[string]any{"bad": json.Number("0x10")}},
		&Op{Attributes: map[string]any{"nan": math.NaN()}},
		&Op{Attributes: map[string]any{"inf": float32(math.Inf(1))}},
		&Op{Attributes: map[string]any{"time": time.Unix(0, 0).UTC()}},
		&Op{Attributes: map[string]any{"strs": []string{"a"}, "m": map[string]string{"a": "b"}}},
		&Op{Relationships: []json.RawMessage{json.RawMessage(`{ "a" : 1 }`)}},
	)
	for _, op := range ops {
		checkAppendOp(t, op)
	}
}

// FuzzAppendOp compares appendOp with encoding/json on ops decoded from
// JSON and on ops built from fuzzed strings and numbers.
func FuzzAppendOp(f *testing.F) {
	f.Add([]byte(`{"type":"person","identifiers":{"id":"u1"},"action":"identify","attributes":{"plan":"pro","n":1.5,"o":{"a":[1,"x",null,true]}},"timestamp":1700000000}`), "s", 1.5)
	f.Add([]byte(`{"action":"event","identifiers":{"id":"u"},"name":"e","attributes":{"a":"\ud800","b":1e400,"c":-0.0e-5,"d":"\u2028<>&"}}`), "\xff", 1e21)
	f.Add([]byte(`{"action":"add_device","device":{"token":"t","last_used":5,"attributes":{"x":[]}}}`), "\u2029", -1e-7)
	f.Fuzz(func(t *testing.T, raw []byte, s string, x float64) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var op Op
		if dec.Decode(&op) == nil {
			checkAppendOp(t, &op)
			// ValidateRawOp's shortcut: the encoding is within the bound.
			o := op
			o.Type = "person"
			if enc, err := stdEncode(&o); err == nil && utf8.Valid(raw) {
				n := bytes.Count(raw, []byte("\u2028")) + bytes.Count(raw, []byte("\u2029"))
				if len(enc) > len(raw)+3*n+encodingSlack {
					t.Fatalf("encoding of %d bytes from %d bytes of JSON (%d line separators): %s", len(enc), len(raw), n, raw)
				}
			}
		}
		for _, v := range op.Attributes {
			checkAttrOK(t, v)
		}
		checkAttrOK(t, map[string]any{s: x, "s": []any{s, x}})
		checkAppendOp(t, &Op{Type: s, Identifiers: &Identifiers{Email: s}, Action: Action(s), Name: s,
			Attributes: map[string]any{s: x, "s": s, "l": []any{s, x, float32(x)}}})
	})
}

// checkAttrOK checks attrOK's shortcut agrees with checkAttrValue.
func checkAttrOK(t *testing.T, v any) {
	t.Helper()
	for _, perValue := range []bool{false, true} {
		var scratch []byte
		ok := attrOK(v, perValue, &scratch)
		err := checkAttrValue("attributes.x", v, perValue)
		if ok && err != nil {
			t.Fatalf("attrOK accepted what checkAttrValue rejects (%v): %#v", err, v)
		}
		if !ok && err == nil {
			t.Fatalf("attrOK declined a valid value: %#v", v)
		}
	}
}

func TestAttrOKMatchesCheckAttrValue(t *testing.T) {
	deep := any("x")
	for range maxNesting + 1 {
		deep = []any{deep}
	}
	long := string(make([]byte, MaxAttributeValueBytes+1))
	for _, v := range []any{nil, true, 1, int64(2), 1.5, math.NaN(), math.Inf(-1), "s", "\xff", long,
		json.Number("1"), json.Number("1 "), json.Number(""), map[string]any{"\xff": 1}, map[string]any{"a": long},
		[]any{math.NaN()}, deep, []any{deep}, map[string]any{"a": []any{1, "x", nil, map[string]any{}}}} {
		checkAttrOK(t, v)
	}
}
