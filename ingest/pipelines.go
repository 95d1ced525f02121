package ingest

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// The Pipelines API paths: POST /v1/identify, /v1/track, /v1/page,
// /v1/screen, /v1/group, /v1/alias and /v1/batch, on the same handler as
// the Track API paths (docs/pipelines.md, docs/ingest.md).
//
// A request is authenticated by the workspace's Pipelines API key, the
// Basic-auth user name (the password is blank), and answered as the
// Pipelines API answers it, with its error body {"meta":{"errors":[...]}}:
//
//   - X-Strict-Mode: 1 (what cioq's own senders and customerio-node's
//     strict option send): an invalid call, a body over the limits or
//     malformed JSON is a 400 listing every problem, and nothing of the
//     request is queued.
//   - Without it (what Customer.io's SDKs send): the Pipelines API's
//     permissive mode. Invalid calls are dropped and the valid calls of the
//     request queued; the answer is 200 {}. The drop is counted
//     (cioq_ingest_ops_total{outcome="rejected"}) and logged, as the
//     Pipelines API only logs it. An SDK that got a 400 for one bad call
//     would drop its whole batch, valid calls included.
//
// Unlike the permissive Pipelines API, a missing or wrong key is always a
// 401 and queues nothing: a 200 would make every call of a misconfigured
// application vanish without a trace.
//
// Either way 200 {} comes only once every queued call is durable (Redis or
// the spool); when the queue does not take them the answer is a retryable
// 503, which every SDK retries.

// Limits of a Pipelines request body, once decoded (a gzip body is bounded
// on the wire at twice the limit).
const (
	// maxCallBody bounds a single-call body: cdp.MaxCallBytes.
	maxCallBody = cdp.MaxCallBytes
	// maxBatchBody bounds a /v1/batch body: cdp.MaxBatchBytes.
	maxBatchBody = cdp.MaxBatchBytes
)

// pipelinesRequest is one routed Pipelines request.
type pipelinesRequest struct {
	pattern string   // the path: /v1/identify, ..., /v1/batch
	typ     cdp.Type // the call type a single-call path sets; "" for /v1/batch
	strict  bool
}

// isPipelinesPath reports whether path is one of the Pipelines API paths.
func isPipelinesPath(path string) bool {
	return path == cdp.BatchPath || cdp.TypeFromPath(path) != ""
}

// pipelinesError is an answer with the Pipelines API's error body.
func pipelinesError(status int, msgs ...string) answer {
	return answer{status: status, body: cdp.NewErrorBody(msgs...)}
}

// cdpKeyOf is the lookup key of a Pipelines API key: its SHA-256, so the
// map lookup's timing tells nothing of the key.
func cdpKeyOf(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }

// servePipelines runs the pipeline of one Pipelines API request: route,
// auth, the per-client cap, the body, validation, enqueue.
func (h *Handler) servePipelines(w http.ResponseWriter, r *http.Request) (string, answer) {
	req := pipelinesRequest{
		pattern: r.URL.Path,
		typ:     cdp.TypeFromPath(r.URL.Path),
		strict:  r.Header.Get(cdp.StrictModeHeader) == "1",
	}
	if r.Method != http.MethodPost {
		a := pipelinesError(http.StatusMethodNotAllowed, "method not allowed")
		a.header = http.Header{"Allow": {http.MethodPost}}
		return req.pattern, a
	}
	key, _, ok := track.BasicAuth(r)
	var c *client
	if ok && key != "" {
		c = h.byCDPKey[cdpKeyOf(key)]
	}
	if c == nil {
		a := pipelinesError(http.StatusUnauthorized, "unauthorized: check your Pipelines API key")
		a.header = http.Header{"Www-Authenticate": {`Basic realm="Customer.io Pipelines API"`}}
		return req.pattern, a
	}
	if n := c.inflight.Add(1); n > int64(h.cfg.MaxConcurrentPerClient) {
		c.inflight.Add(-1)
		a := pipelinesError(http.StatusTooManyRequests,
			fmt.Sprintf("too many concurrent requests: at most %d per Pipelines API key", h.cfg.MaxConcurrentPerClient))
		a.header = http.Header{"Retry-After": {"1"}}
		return req.pattern, a
	}
	gauge := h.metrics.InFlight.WithLabelValues(c.ws.Name)
	gauge.Inc()
	defer func() {
		c.inflight.Add(-1)
		gauge.Dec()
	}()
	idemKey, err := idempotencyKey(r.Header.Get(IdempotencyKeyHeader))
	if err != nil {
		return req.pattern, pipelinesError(http.StatusBadRequest, err.Error())
	}
	limit := int64(maxCallBody)
	if req.typ == "" {
		limit = maxBatchBody
	}
	body, err := readPipelinesBody(w, r, limit)
	if err != nil {
		return req.pattern, h.refuse(r.Context(), c.ws, req, []string{err.Error()}, 1)
	}
	return req.pattern, h.handlePipelines(r.Context(), c.ws, req, idemKey, body)
}

// handlePipelines validates the calls of body and enqueues the valid ones
// (strict mode: all or none).
func (h *Handler) handlePipelines(ctx context.Context, ws Workspace, req pipelinesRequest, idemKey string, body []byte) answer {
	var (
		calls    []*cdp.Call
		encoded  [][]byte
		problems []string
	)
	if req.typ != "" {
		call, enc, err := cdp.DecodeCall(body, req.typ)
		if err != nil {
			return h.refuse(ctx, ws, req, []string{validationMessage(err)}, 1)
		}
		calls, encoded = []*cdp.Call{call}, [][]byte{enc}
	} else {
		b, err := cdp.ValidateRawBatch(body)
		if err != nil {
			return h.refuse(ctx, ws, req, []string{validationMessage(err)}, 1)
		}
		calls, encoded = b.Calls, b.Encoded
		for _, ve := range b.Invalid {
			problems = append(problems, ve.Message())
		}
	}
	ops := make([]producer.Op, 0, len(calls))
	index := make([]int, 0, len(calls)) // request index of ops[i]
	for i, call := range calls {
		if call == nil {
			continue
		}
		k := idemKey
		if k != "" && req.typ == "" {
			k += ":" + strconv.Itoa(i)
		}
		ops = append(ops, producer.Op{Call: call, CallJSON: encoded[i], Key: k, Workspace: ws.Name})
		index = append(index, i)
	}
	if len(problems) > 0 {
		h.countPipelines(ws.Name, len(problems), metrics.IngestRejected)
		if req.strict || len(ops) == 0 {
			return h.refuse(ctx, ws, req, problems, 0)
		}
		h.logDropped(ctx, ws, req, problems)
	}
	// One EnqueueAll for the request: a request that fails queues none of
	// its calls, and the client's retry cannot queue any twice. In strict
	// mode a call the producer refuses fails the request, nothing queued.
	refused, failed := h.enqueueOps(ctx, ws, ops, req.strict)
	if failed {
		a := pipelinesError(http.StatusServiceUnavailable, "queue unavailable: retry the request")
		a.header = http.Header{"Retry-After": {"1"}}
		return a
	}
	if len(refused) > 0 {
		msgs := make([]string, len(refused))
		for i, r := range refused {
			msgs[i] = callMessage(req, index[r.Index], r.Err)
		}
		if req.strict {
			return pipelinesError(http.StatusBadRequest, capMessages(msgs)...)
		}
		h.logDropped(ctx, ws, req, msgs)
	}
	return answer{status: http.StatusOK, body: []byte("{}")}
}

// refuse answers a request whose calls (n of them counted here; the
// caller counted them when n is 0) are not queued: 400 with the problems
// in strict mode, 200 {} in permissive mode (the Pipelines API drops
// them), logged.
func (h *Handler) refuse(ctx context.Context, ws Workspace, req pipelinesRequest, problems []string, n int) answer {
	if n > 0 {
		h.countPipelines(ws.Name, n, metrics.IngestRejected)
	}
	if req.strict {
		return pipelinesError(http.StatusBadRequest, capMessages(problems)...)
	}
	h.logDropped(ctx, ws, req, problems)
	return answer{status: http.StatusOK, body: []byte("{}")}
}

// logDropped warns about calls a permissive request carried that were not
// queued (the messages name fields and rules, never values).
func (h *Handler) logDropped(ctx context.Context, ws Workspace, req pipelinesRequest, problems []string) {
	h.cfg.Logger.WarnContext(ctx, "ingest dropped invalid Pipelines calls of a permissive request",
		slog.String("workspace", ws.Name), slog.String("path", req.pattern), slog.Int("calls", len(problems)),
		slog.String("first", problems[0]))
}

// capMessages keeps at most track.MaxItemErrors messages, saying how many
// more there were.
func capMessages(msgs []string) []string {
	if len(msgs) <= track.MaxItemErrors {
		return msgs
	}
	out := append([]string(nil), msgs[:track.MaxItemErrors]...)
	return append(out, fmt.Sprintf("... and %d more", len(msgs)-track.MaxItemErrors))
}

// validationMessage renders a cdp validation error as the API lists it.
func validationMessage(err error) string {
	var ve *cdp.ValidationError
	if errors.As(err, &ve) {
		return ve.Message()
	}
	return err.Error()
}

// callMessage renders the producer's refusal of the call at request index
// i: "batch[i].field: reason" for a batch.
func callMessage(req pipelinesRequest, i int, err error) string {
	msg := err.Error()
	var ve *cdp.ValidationError
	var te *track.ValidationError
	switch {
	case errors.As(err, &ve):
		msg = ve.Message()
	case errors.As(err, &te):
		msg = strings.TrimPrefix(te.Error(), "track: invalid op: ")
	}
	if req.typ == "" {
		return fmt.Sprintf("batch[%d]: %s", i, msg)
	}
	return msg
}

// countPipelines counts n calls of ws with outcome, under action "unknown"
// (calls refused before they were decoded, or in bulk).
func (h *Handler) countPipelines(ws string, n int, outcome string) {
	h.metrics.Ops.WithLabelValues(ws, task.APIPipelines.String(), "unknown", outcome).Add(float64(n))
}

// errTooLarge is a Pipelines body over its limit; its text is the fake
// Pipelines API's (cdp/fake).
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("request body is larger than %d bytes", e.limit)
}

// readPipelinesBody reads the whole body, at most limit bytes once decoded;
// a gzip body (Content-Encoding: gzip, which Customer.io's Python SDK can
// send) is decompressed, and bounded on the wire at twice the limit.
func readPipelinesBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	gz := false
	switch enc {
	case "", "identity":
		if r.ContentLength > limit {
			return nil, errTooLarge{limit}
		}
	case "gzip":
		gz = true
	default:
		return nil, fmt.Errorf("content encoding %q is not supported", enc)
	}
	var rd io.Reader = http.MaxBytesReader(w, r.Body, 2*limit)
	if gz {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, errors.New("body is not valid gzip")
		}
		defer zr.Close()
		rd = zr
	}
	body, err := io.ReadAll(io.LimitReader(rd, limit+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errTooLarge{limit}
	case err != nil && gz:
		return nil, errors.New("body is not valid gzip")
	case err != nil:
		return nil, errors.New("cannot read body")
	case int64(len(body)) > limit:
		return nil, errTooLarge{limit}
	}
	return body, nil
}
