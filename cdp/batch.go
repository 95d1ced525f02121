package cdp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"unicode/utf8"
)

// BatchPath is the path of the batch call.
const BatchPath = "/v1/batch"

const (
	batchPrefix = `{"batch":[`
	batchSuffix = `]}`
)

// EncodedBatchSize returns the size of the body BatchEncoded sends for
// calls: {"batch":[c0,c1,...]}. A batcher packs calls while this stays at
// most MaxBatchBytes.
func EncodedBatchSize(calls [][]byte) int {
	n := len(batchPrefix) + len(batchSuffix)
	for _, c := range calls {
		n += len(c)
	}
	if len(calls) > 1 {
		n += len(calls) - 1
	}
	return n
}

// Batch is a decoded /v1/batch body: each call validated alone, with the
// batch's top-level context and integrations folded in.
type Batch struct {
	// Calls holds the valid calls by batch index; nil at an invalid one.
	Calls []*Call
	// Encoded holds each valid call's encoding (EncodeCall's output, batch
	// defaults included) by batch index; nil at an invalid one.
	Encoded [][]byte
	// Invalid lists the invalid calls' errors, in index order; each Field
	// starts with "batch[i]".
	Invalid []*ValidationError
}

// Valid returns the valid calls, in order.
func (b *Batch) Valid() []*Call {
	out := make([]*Call, 0, len(b.Calls))
	for _, c := range b.Calls {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// ValidateRawBatch decodes a /v1/batch body: at most MaxBatchBytes of
// UTF-8 JSON, an object whose `batch` is a non-empty array of calls. Each
// call is validated alone (ValidateRawCall; its `type` is required); its
// problems land in Batch.Invalid. The top-level `context` and
// `integrations`, which apply to every call of the batch, are folded into
// each call with ApplyBatchDefaults. Other top-level fields (messageId,
// sentAt, writeKey, ...) are ignored. The error is a *ValidationError for
// the body as a whole; then no call is usable.
func ValidateRawBatch(body []byte) (*Batch, error) {
	if len(body) > MaxBatchBytes {
		return nil, tooBig("", "batch body", len(body), MaxBatchBytes)
	}
	if !utf8.Valid(body) {
		return nil, invalid("", "body is not valid UTF-8")
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, invalid("", "body is not a JSON object")
	}
	var env struct {
		Batch        *[]json.RawMessage `json:"batch"`
		Context      json.RawMessage    `json:"context"`
		Integrations json.RawMessage    `json:"integrations"`
	}
	if err := decodeOne(body, &env); err != nil {
		return nil, invalid("", "malformed JSON: "+jsonErrorText(err))
	}
	if env.Batch == nil {
		return nil, invalid("batch", "is required")
	}
	if len(*env.Batch) == 0 {
		return nil, invalid("batch", "is empty")
	}
	ctx, err := envelopeObject("context", env.Context)
	if err != nil {
		return nil, err
	}
	integ, err := envelopeObject("integrations", env.Integrations)
	if err != nil {
		return nil, err
	}
	n := len(*env.Batch)
	b := &Batch{Calls: make([]*Call, n), Encoded: make([][]byte, n)}
	for i, raw := range *env.Batch {
		prefix := fmt.Sprintf("batch[%d]", i)
		c, err := decodeRaw(raw, "")
		var enc []byte
		if err == nil {
			ApplyBatchDefaults(c, ctx, integ)
			enc, err = EncodeCall(c)
		}
		if err != nil {
			ve := &ValidationError{Reason: err.Error()}
			errors.As(err, &ve)
			b.Invalid = append(b.Invalid, prefixed(prefix, ve))
			continue
		}
		b.Calls[i], b.Encoded[i] = c, enc
	}
	return b, nil
}

// envelopeObject decodes a top-level object of a batch; null or absent is
// nil.
func envelopeObject(field string, raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := decodeOne(raw, &m); err != nil {
		return nil, invalid(field, "must be an object")
	}
	if err := checkObject(field, m, 1); err != nil {
		return nil, err
	}
	return m, nil
}

// ApplyBatchDefaults folds a batch's top-level context and integrations
// into c, so the call carries them once it leaves its batch: a key the call
// sets itself wins, the batch fills in the others (one level deep, as
// Customer.io's customerio-node merges its default context).
func ApplyBatchDefaults(c *Call, context, integrations map[string]any) {
	c.Context = mergeDefaults(c.Context, context)
	c.Integrations = mergeDefaults(c.Integrations, integrations)
}

func mergeDefaults(own, defaults map[string]any) map[string]any {
	if len(defaults) == 0 {
		return own
	}
	out := maps.Clone(defaults)
	maps.Copy(out, own)
	return out
}
