package fake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/cioq/cioq/internal/wire"
	"github.com/cioq/cioq/track"
)

// Reasons of the batch_index errors the fake answers with.
const (
	// ReasonInvalid: the op breaks a shape rule (missing identifiers, unknown
	// action, malformed JSON, ...).
	ReasonInvalid = track.ReasonInvalid
	// ReasonTooLarge: the op breaks a size or count limit.
	ReasonTooLarge = track.ReasonTooLarge
	// ReasonRejected: the op holds Faults.RejectAttribute (a poison op).
	ReasonRejected = "rejected"
)

// v2Entity answers POST /api/v2/entity: one op, body ≤ track.MaxOpBytes.
func (s *Server) v2Entity(c *call, _ []string) {
	body, ok := s.readBody(c, track.MaxOpBytes, fmt.Sprintf("entity body must be at most %d bytes", track.MaxOpBytes))
	if !ok {
		return
	}
	op, err := track.ValidateRawOp(body)
	if err != nil {
		s.rejectOp(c, "", itemError(0, err))
		return
	}
	if it, bad := s.poisoned(c, 0, op); bad {
		s.rejectOp(c, FaultRejectAttribute, it)
		return
	}
	s.accept(c, []*track.Op{op}, nil, 1)
}

// v2Batch answers POST /api/v2/batch: body < track.MaxBatchBytes holding
// {"batch":[op, ...]}. Each op is validated alone: the invalid ones are
// listed as batch_index errors and the others accepted (200 when none
// failed, 207 when some did, 400 when all did).
func (s *Server) v2Batch(c *call, _ []string) {
	body, ok := s.readBody(c, track.MaxBatchBytes-1, fmt.Sprintf("batch body must be smaller than %d bytes", track.MaxBatchBytes))
	if !ok {
		return
	}
	var env struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := wire.DecodeStrict(body, &env); err != nil {
		s.fail(c, http.StatusBadRequest, "", "malformed JSON: "+err.Error())
		return
	}
	if len(env.Batch) == 0 {
		s.fail(c, http.StatusBadRequest, "", "batch must hold at least one op")
		return
	}
	ops := make([]*track.Op, 0, len(env.Batch))
	var errs []track.ItemError
	for i, raw := range env.Batch {
		op, err := track.ValidateRawOp(raw)
		if err != nil {
			errs = append(errs, itemError(i, err))
			continue
		}
		if it, bad := s.poisoned(c, i, op); bad {
			c.rec.Fault = FaultRejectAttribute
			errs = append(errs, it)
			continue
		}
		ops = append(ops, op)
	}
	s.accept(c, ops, errs, len(env.Batch))
}

// readBody reads the whole body, at most limit bytes. It answers 413 when
// the body is longer and 400 when it is not valid UTF-8, and then returns
// false.
func (s *Server) readBody(c *call, limit int64, tooLarge string) ([]byte, bool) {
	if c.r.ContentLength > limit {
		s.fail(c, http.StatusRequestEntityTooLarge, "", tooLarge)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		s.fail(c, http.StatusRequestEntityTooLarge, "", tooLarge)
		return nil, false
	case err != nil:
		s.fail(c, http.StatusBadRequest, "", "cannot read body")
		return nil, false
	case !utf8.Valid(body):
		s.fail(c, http.StatusBadRequest, "", "body is not valid UTF-8")
		return nil, false
	}
	if f := &c.faults; f.FailContaining != "" && bytes.Contains(body, []byte(f.FailContaining)) &&
		(f.FailTimes == 0 || s.failed.Add(1) <= int64(f.FailTimes)) {
		status := f.FailStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		s.fail(c, status, FaultFailContaining, "injected failure")
		return nil, false
	}
	return body, true
}

// itemError turns a validation error into a batch_index error.
func itemError(i int, err error) track.ItemError { return wire.NewItemError(i, err) }

// poisoned reports whether op holds Faults.RejectAttribute.
func (s *Server) poisoned(c *call, i int, op *track.Op) (track.ItemError, bool) {
	k := c.faults.RejectAttribute
	if k == "" {
		return track.ItemError{}, false
	}
	if _, ok := op.Attributes[k]; !ok {
		return track.ItemError{}, false
	}
	return track.ItemError{Index: i, Reason: ReasonRejected, Field: "attributes." + k,
		Message: "rejected by the fake's reject_attribute fault"}, true
}

// rejectOp answers 400 for the one op of a v1 or entity call.
func (s *Server) rejectOp(c *call, fault string, it track.ItemError) {
	c.rec.Fault = fault
	s.record(c, outcome{status: http.StatusBadRequest, rejected: 1})
	msg := it.Message
	if it.Field != "" {
		msg = it.Field + ": " + msg
	}
	writeJSON(c.w, http.StatusBadRequest, wire.ErrorBody(msg))
}

// accept counts ops as accepted and answers: 200 {} when errs is empty, else
// 207 (some ops accepted) or 400 (none) with the batch_index errors: the
// first track.MaxItemErrors and the count of the others (errors_omitted).
func (s *Server) accept(c *call, ops []*track.Op, errs []track.ItemError, nOps int) {
	status := http.StatusOK
	switch {
	case len(errs) > 0 && len(ops) > 0:
		status = http.StatusMultiStatus
	case len(errs) > 0:
		status = http.StatusBadRequest
	}
	o := outcome{status: status, nOps: nOps, rejected: len(errs)}
	if len(ops) > 0 {
		o.accepted = make([]keys, len(ops))
		c.rec.Ops = make([]track.Op, len(ops))
		for i, op := range ops {
			o.accepted[i] = ledgerKeys(c.rec.SiteID, op)
			c.rec.Ops[i] = *op
		}
	}
	c.rec.Errors = errs
	s.record(c, o)
	body := []byte("{}")
	if len(errs) > 0 {
		body, _ = json.Marshal(wire.NewBatchResponse(errs))
	}
	writeJSON(c.w, status, body)
}
