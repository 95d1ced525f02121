package cdp_test

import (
	"bytes"
	"testing"

	"github.com/cioq/cioq/cdp"
)

// FuzzValidateRawCall checks that decoding and validation never panic, and
// that whatever ValidateRawCall accepts encodes within MaxCallBytes and
// round-trips through ValidateRawCall to the same bytes.
func FuzzValidateRawCall(f *testing.F) {
	seeds := []string{
		`{"type":"identify","userId":"u1","traits":{"plan":"pro","n":1.50,"o":{"a":[1,"x",null,true]}},"messageId":"m","timestamp":"2024-01-02T03:04:05.678Z"}`,
		`{"type":"track","anonymousId":"a","event":"Viewed <b>","properties":{"u":"\u2028é"},"integrations":{},"context":{"library":{"name":"@customerio/cdp-analytics-node","version":"0.5.9"}},"_metadata":{"nodeVersion":"20.20.2","jsRuntime":"node"}}`,
		`{"type":"page","userId":"u","name":"Home","category":"Docs","properties":{"url":"https://x/?a=1&b=2"}}`,
		`{"type":"track","userId":"u","event":"Device Created or Updated","context":{"device":{"token":"t","type":"ios"}}}`,
		`{"type":"track","userId":"u","event":"Relationship Deleted","properties":{"objectId":"acme","objectTypeId":1}}`,
		`{"type":"group","userId":"u","groupId":"g","traits":{"object_type_id":"1","relationshipAttributes":{"role":"x"}}}`,
		`{"type":"alias","userId":"u","previousId":"a","writeKey":"k","sentAt":"2024-01-02T03:04:05Z"}`,
		`{"type":"screen","userId":"u","properties":{"big":1e400,"neg":-0.0e-5,"s":"\ud800"}}`,
		`{"userId":null,"type":null}`,
		`[]`, `{`, `null`, "{\"type\":\"track\",\"userId\":\"\xff\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "track")
	}
	f.Fuzz(func(t *testing.T, raw []byte, typ string) {
		c, err := cdp.ValidateRawCall(raw, cdp.Type(typ))
		if err != nil {
			return
		}
		b, err := cdp.EncodeCall(c)
		if err != nil {
			t.Fatalf("EncodeCall rejected an accepted call: %v", err)
		}
		if len(b) > cdp.MaxCallBytes {
			t.Fatalf("EncodeCall returned %d bytes", len(b))
		}
		back, err := cdp.ValidateRawCall(b, "")
		if err != nil {
			t.Fatalf("ValidateRawCall(%s): %v", b, err)
		}
		b2, err := cdp.EncodeCall(back)
		if err != nil {
			t.Fatalf("EncodeCall after round trip: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the call:\n%s\n%s", b, b2)
		}
		if back.Action() == "" && back.Type != cdp.TypeTrack {
			t.Fatalf("a valid %s call has no action", back.Type)
		}
	})
}

// FuzzValidateRawBatch checks that batch decoding never panics, that every
// index is either a call or an error, and that the calls it returns (with
// the batch context folded in) encode and validate.
func FuzzValidateRawBatch(f *testing.F) {
	f.Add([]byte(`{"batch":[{"type":"track","userId":"u","event":"e"},{"type":"identify"}],"context":{"ip":"1.2.3.4"},"integrations":{"All":true}}`))
	f.Add([]byte(`{"batch":[],"sentAt":"x"}`))
	f.Add([]byte(`{"batch":[null,1,"x",{}],"context":null}`))
	f.Add([]byte(`{"batch":{"a":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := cdp.ValidateRawBatch(body)
		if err != nil {
			return
		}
		n := 0
		for i, c := range b.Calls {
			if c == nil {
				n++
				continue
			}
			if _, err := cdp.EncodeCall(c); err != nil {
				t.Fatalf("batch[%d] was returned valid but does not encode: %v", i, err)
			}
		}
		if n != len(b.Invalid) {
			t.Fatalf("%d nil calls but %d errors", n, len(b.Invalid))
		}
	})
}
