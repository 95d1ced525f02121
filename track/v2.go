package track

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
)

// The v2 paths.
const (
	EntityPath = "/api/v2/entity"
	BatchPath  = "/api/v2/batch"
)

const (
	batchPrefix = `{"batch":[`
	batchSuffix = `]}`
)

// Entity sends one op (POST /api/v2/entity). It sets op.Type to "person"
// when empty and validates op first (see EncodeOp); an invalid op returns a
// *ValidationError and nothing is sent.
func (c *Client) Entity(ctx context.Context, op *Op) error {
	b, err := EncodeOp(op)
	if err != nil {
		return err
	}
	return c.send(ctx, request{method: http.MethodPost, path: EntityPath, body: b})
}

// Batch encodes ops with EncodeOp and sends them in one v2 batch; see
// BatchEncoded for the outcomes. An invalid op fails the call before
// anything is sent, with an error naming its index and wrapping its
// *ValidationError.
func (c *Client) Batch(ctx context.Context, ops []*Op) error {
	enc := make([][]byte, len(ops))
	for i, op := range ops {
		b, err := EncodeOp(op)
		if err != nil {
			return fmt.Errorf("track: batch op %d: %w", i, err)
		}
		enc[i] = b
	}
	return c.BatchEncoded(ctx, enc)
}

// EncodedBatchSize returns the size of the body BatchEncoded sends for ops:
// {"batch":[op0,op1,...]}. A batcher packs ops while this stays below
// MaxBatchBytes.
func EncodedBatchSize(ops [][]byte) int {
	n := len(batchPrefix) + len(batchSuffix)
	for _, op := range ops {
		n += len(op)
	}
	if len(ops) > 1 {
		n += len(ops) - 1
	}
	return n
}

// BatchEncoded sends pre-encoded ops (each the output of EncodeOp) in one
// v2 batch (POST /api/v2/batch). The body is built by concatenation in a
// pooled buffer; ops are not decoded or re-encoded, only checked to be
// non-empty JSON objects of at most MaxOpBytes.
//
// Outcomes:
//   - nil: the answer was 2xx without per-op errors; every op was accepted.
//   - *BatchError: the answer (2xx, 207, or a permanent 4xx such as 400)
//     listed per-op errors by batch_index; those ops failed, every other op
//     was accepted.
//   - *APIError: any other non-2xx answer; no op was accepted. Also an
//     answer whose error list was cut short (errors_omitted, see
//     BatchResponse): some ops may have been accepted, but which of the
//     unlisted ones failed is unknown; send the ops again in smaller
//     batches (the worker halves a batch on a permanent error).
//   - *TransportError: no answer (network error, timeout, reset, or a body
//     that could not be read); the outcome is unknown.
//   - *ValidationError: nothing was sent: no ops is not an error (nil is
//     returned at once), but an empty or oversized op, or a body of
//     MaxBatchBytes or more, is.
func (c *Client) BatchEncoded(ctx context.Context, ops [][]byte) error {
	if len(ops) == 0 {
		return nil
	}
	for i, op := range ops {
		if len(op) > MaxOpBytes {
			return tooBig(fmt.Sprintf("batch[%d]", i), "op", len(op), MaxOpBytes)
		}
		if len(op) < 2 || op[0] != '{' || op[len(op)-1] != '}' {
			return invalid(fmt.Sprintf("batch[%d]", i), "is not an encoded op (a JSON object)")
		}
	}
	size := EncodedBatchSize(ops)
	if size >= MaxBatchBytes {
		return &ValidationError{Field: "batch", Reason: fmt.Sprintf("batch is %d bytes, must be below %d", size, MaxBatchBytes), Limit: MaxBatchBytes, Got: size}
	}
	buf, _ := c.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Grow(size)
	buf.WriteString(batchPrefix)
	for i, op := range ops {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(op)
	}
	buf.WriteString(batchSuffix)
	body := &pooledBody{pool: &c.bufs, buf: buf}
	return c.send(ctx, request{method: http.MethodPost, path: BatchPath, pooled: body, batchOps: len(ops)})
}
