package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/wire"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// handle validates and maps the body of req, enqueues its ops and builds
// the answer. Nothing is enqueued for a request that is rejected as a whole.
func (h *Handler) handle(ctx context.Context, ws Workspace, req request, key string, body []byte) answer {
	switch req.kind {
	case kindV1:
		op, err := req.v1.Op(body)
		var me *wire.MalformedError
		if errors.As(err, &me) {
			return errorAnswer(http.StatusBadRequest, me.Reason)
		}
		return h.single(ctx, ws, op, err, key)
	case kindEntity:
		op, err := track.ValidateRawOp(body)
		return h.single(ctx, ws, op, err, key)
	default:
		return h.batch(ctx, ws, body, key)
	}
}

// single enqueues the one op of a v1 or entity request (or answers 400 for
// its validation error err).
func (h *Handler) single(ctx context.Context, ws Workspace, op *track.Op, err error, key string) answer {
	if err != nil {
		h.count(ws.Name, op, metrics.IngestRejected)
		return errorAnswer(http.StatusBadRequest, itemMessage(wire.NewItemError(0, err)))
	}
	res := h.enqueue(ctx, ws, []producer.Op{prepare(ws, op, key)})
	if res.failed {
		return unavailable()
	}
	if len(res.invalid) > 0 {
		return errorAnswer(http.StatusBadRequest, itemMessage(res.invalid[0]))
	}
	return answer{status: http.StatusOK, body: []byte("{}")}
}

// batch answers a v2 batch: invalid ops are listed as batch_index errors,
// the others enqueued; 200 when none failed, 207 when some did, 400 when
// all did.
func (h *Handler) batch(ctx context.Context, ws Workspace, body []byte, key string) answer {
	var env struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := wire.DecodeStrict(body, &env); err != nil {
		return errorAnswer(http.StatusBadRequest, "malformed JSON: "+err.Error())
	}
	if len(env.Batch) == 0 {
		return errorAnswer(http.StatusBadRequest, "batch must hold at least one op")
	}
	var (
		errs  []track.ItemError
		ops   = make([]producer.Op, 0, len(env.Batch))
		index = make([]int, 0, len(env.Batch)) // batch index of ops[i]
	)
	for i, raw := range env.Batch {
		op, err := track.ValidateRawOp(raw)
		if err == nil {
			k := key
			if k != "" {
				k += ":" + strconv.Itoa(i)
			}
			ops = append(ops, prepare(ws, op, k))
			index = append(index, i)
			continue
		}
		h.count(ws.Name, op, metrics.IngestRejected)
		errs = append(errs, wire.NewItemError(i, err))
	}
	if len(ops) > 0 {
		res := h.enqueue(ctx, ws, ops)
		if res.failed {
			return unavailable()
		}
		for _, it := range res.invalid {
			it.Index = index[it.Index]
			errs = append(errs, it)
		}
	}
	if len(errs) == 0 {
		return answer{status: http.StatusOK, body: []byte("{}")}
	}
	slices.SortFunc(errs, func(a, b track.ItemError) int { return a.Index - b.Index })
	status := http.StatusMultiStatus
	if len(errs) == len(env.Batch) {
		status = http.StatusBadRequest
	}
	b, _ := json.Marshal(wire.NewBatchResponse(errs)) // capped: track.MaxItemErrors
	return answer{status: status, body: b}
}

// prepare turns a validated op into the producer op: workspace and key.
// The producer validates the op again as it will store it (with its event
// id and timestamp) and refuses one that grew past a limit: enqueue reports
// such an op as invalid and queues the others.
//
// Key: the request's key when given, else an event's own id, else a new
// ULID: every op of the request has its op id before the first enqueue
// attempt, so enqueue can try again with the same ids (a repeat is a
// duplicate, never a second op). An event id that is not a ULID is dropped
// from the op (the producer derives a ULID from the key, the same for every
// repeat). A missing timestamp is stamped here, once, for the same reason.
func prepare(ws Workspace, op *track.Op, key string) producer.Op {
	o := *op
	if key == "" && o.Action.IsEvent() {
		key = o.ID
	}
	if key == "" {
		key = ulid.Make().String()
	}
	if o.Timestamp == 0 {
		o.Timestamp = time.Now().Unix()
	}
	if o.ID != "" {
		if _, err := ulid.ParseStrict(o.ID); err != nil {
			o.ID = ""
		}
	}
	return producer.Op{Op: o, Key: key, Workspace: ws.Name}
}

// enqueueResult is what enqueue did with a request's ops.
type enqueueResult struct {
	// failed reports that the queue did not take the ops: the request is
	// answered 503 and may be retried; none of its ops was queued (unless
	// Redis gave no answer in time and the outcome is unknown).
	failed bool
	// invalid are the ops the producer refused (index into the ops given).
	invalid []track.ItemError
}

// enqueue hands the ops of one request to the producer in one call and
// waits until they are all durable: one atomic enqueue (one Redis round
// trip, or one spool record), so a request that fails queues none of its
// ops and the client's retry cannot queue any twice. When Redis fails or
// gives no answer (the outcome is then unknown), enqueue tries again with
// the same op ids until Config.EnqueueTimeout: a write that did land is
// then reported as duplicates, not queued twice, and the client gets its
// answer within the server's write timeout. Ops the producer refuses are
// reported and the others enqueued in another call. The client's
// disconnect does not cancel a request under way.
func (h *Handler) enqueue(ctx context.Context, ws Workspace, ops []producer.Op) enqueueResult {
	refused, failed := h.enqueueOps(ctx, ws, ops, false)
	res := enqueueResult{failed: failed}
	for _, r := range refused {
		res.invalid = append(res.invalid, wire.NewItemError(r.Index, r.Err))
	}
	return res
}

// enqueueOps enqueues ops (Track ops, Pipelines calls, or both) in one
// EnqueueAll and counts each op's outcome. Ops the producer refuses are
// returned, with their index in ops; unless allOrNothing, the others are
// then enqueued in another EnqueueAll. While Redis fails or gives no answer
// it tries again with the same ops (same ids) until Config.EnqueueTimeout.
// failed reports that the queue did not take the ops in that time (none was
// queued, unless Redis gave no answer at all and the outcome is unknown).
func (h *Handler) enqueueOps(ctx context.Context, ws Workspace, ops []producer.Op, allOrNothing bool) (refused []producer.InvalidOp, failed bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.EnqueueTimeout)
	defer cancel()
	index := make([]int, len(ops)) // request index of ops[i]
	for i := range index {
		index[i] = i
	}
	backoff := 50 * time.Millisecond
	for len(ops) > 0 {
		results, err := h.cfg.Producer.EnqueueAll(ctx, ops)
		var ie *producer.InvalidOpsError
		if errors.As(err, &ie) {
			bad := make(map[int]bool, len(ie.Invalid))
			for _, inv := range ie.Invalid {
				bad[inv.Index] = true
				refused = append(refused, producer.InvalidOp{Index: index[inv.Index], Err: inv.Err})
			}
			var keep []producer.Op
			var keepIndex []int
			for i := range ops {
				if bad[i] || allOrNothing {
					h.countOp(ws.Name, ops[i], metrics.IngestRejected)
					continue
				}
				keep, keepIndex = append(keep, ops[i]), append(keepIndex, index[i])
			}
			ops, index = keep, keepIndex
			continue
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, producer.ErrClosed) {
				select {
				case <-time.After(backoff):
					backoff = min(2*backoff, time.Second)
					continue
				case <-ctx.Done():
				}
			}
			h.logEnqueueFailure(ctx, ws.Name, len(ops), err)
			for i := range ops {
				h.countOp(ws.Name, ops[i], metrics.IngestFailed)
			}
			return refused, true
		}
		for i, r := range results {
			if r.Duplicate {
				h.countOp(ws.Name, ops[i], metrics.IngestDuplicate)
			} else {
				h.countOp(ws.Name, ops[i], metrics.IngestQueued)
			}
		}
		break
	}
	return refused, false
}

// unavailable is the answer when the queue did not take every op: 503, a
// retryable status for Track API clients.
func unavailable() answer {
	a := errorAnswer(http.StatusServiceUnavailable, "queue unavailable: retry the request (with the same Idempotency-Key)")
	a.header = http.Header{"Retry-After": {"1"}}
	return a
}

// itemMessage renders a single op's error as the Track API does:
// "field: message".
func itemMessage(it track.ItemError) string {
	if it.Field != "" {
		return it.Field + ": " + it.Message
	}
	return it.Message
}

// count counts a Track op that was refused before it became a producer
// op (op may be nil).
func (h *Handler) count(ws string, op *track.Op, outcome string) {
	action := track.Action("unknown")
	if op != nil && op.Action.Valid() {
		action = op.Action
	}
	h.metrics.Ops.WithLabelValues(ws, task.APITrack.String(), string(action), outcome).Inc()
}

// countOp counts op under its API and the Track action it means.
func (h *Handler) countOp(ws string, op producer.Op, outcome string) {
	api, action := task.APITrack, op.Action
	if op.Call != nil {
		api, action = task.APIPipelines, op.Call.Action()
	}
	if !action.Valid() {
		action = "unknown"
	}
	h.metrics.Ops.WithLabelValues(ws, api.String(), string(action), outcome).Inc()
}
