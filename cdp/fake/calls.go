package fake

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cioq/cioq/cdp"
)

// handleCalls answers an authorized, admitted request: it reads the body,
// validates the call or batch, and accepts, rejects (strict mode) or drops
// (permissive mode) its calls.
func (s *Server) handleCalls(c *call) {
	limit := int64(cdp.MaxCallBytes)
	if c.typ == "" {
		limit = cdp.MaxBatchBytes
	}
	body, err := s.readBody(c, limit)
	if err != nil {
		s.refuse(c, []string{err.Error()}, 1)
		return
	}
	var calls []*cdp.Call
	var problems []string
	if c.typ != "" {
		call, err := cdp.ValidateRawCall(body, c.typ)
		if err != nil {
			s.refuse(c, []string{message(err)}, 1)
			return
		}
		calls = []*cdp.Call{call}
	} else {
		b, err := cdp.ValidateRawBatch(body)
		if err != nil {
			s.refuse(c, []string{message(err)}, 1)
			return
		}
		calls = b.Calls
		for _, ve := range b.Invalid {
			problems = append(problems, ve.Message())
		}
	}
	poisoned := false
	for i, call := range calls {
		if call == nil {
			continue
		}
		if field, bad := s.poisoned(c, call); bad {
			if c.typ == "" {
				field = fmt.Sprintf("batch[%d].%s", i, field)
			}
			problems = append(problems, field+": rejected by the fake's reject_attribute fault")
			calls[i], poisoned = nil, true
		}
	}
	if poisoned {
		c.rec.Fault = FaultRejectAttribute
	}
	s.answer(c, calls, problems)
}

// answer accepts the valid calls (nil entries are invalid) and answers:
// 200 {} when all were valid; else 400 with every problem in strict mode
// (accepting none unless Faults.AcceptValidOnReject), 200 {} dropping the
// invalid ones in permissive mode.
func (s *Server) answer(c *call, calls []*cdp.Call, problems []string) {
	var valid []*cdp.Call
	for _, call := range calls {
		if call != nil {
			valid = append(valid, call)
		}
	}
	invalid := len(calls) - len(valid)
	o := outcome{status: http.StatusOK, nCalls: len(calls)}
	accept := true
	switch {
	case invalid > 0 && c.strict:
		o.status = http.StatusBadRequest
		o.rejected = len(calls)
		if c.faults.AcceptValidOnReject {
			o.rejected = invalid
		} else {
			accept = false
		}
	case invalid > 0:
		o.dropped, o.droppedCalls = true, invalid
	}
	if accept && len(valid) > 0 {
		o.accepted = make([]acceptedCall, len(valid))
		c.rec.Calls = make([]cdp.Call, len(valid))
		for i, call := range valid {
			at, ok := call.Time()
			if !ok {
				at = c.rec.Time
			}
			o.accepted[i] = acceptedCall{keys: ledgerKeys(c.rec.Workspace, call), call: call, at: at}
			c.rec.Calls[i] = *call
		}
	}
	c.rec.Errors = problems
	s.record(c, o)
	if o.status != http.StatusOK {
		writeJSON(c.w, o.status, cdp.NewErrorBody(problems...))
		return
	}
	writeJSON(c.w, http.StatusOK, []byte("{}"))
}

// refuse answers a request whose body is unusable as a whole (too large,
// not JSON, an invalid single call): 400 in strict mode, a 200 that drops
// it in permissive mode. n is how many calls it is counted as.
func (s *Server) refuse(c *call, problems []string, n int) {
	c.rec.Errors = problems
	if c.strict {
		s.record(c, outcome{status: http.StatusBadRequest, rejected: n})
		writeJSON(c.w, http.StatusBadRequest, cdp.NewErrorBody(problems...))
		return
	}
	s.record(c, outcome{status: http.StatusOK, dropped: true, droppedCalls: n})
	writeJSON(c.w, http.StatusOK, []byte("{}"))
}

// message renders a validation error as the API lists it.
func message(err error) string {
	var ve *cdp.ValidationError
	if errors.As(err, &ve) {
		return ve.Message()
	}
	return err.Error()
}

// errTooLarge is a body over the request limit.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("request body is larger than %d bytes", e.limit)
}

// readBody reads the whole body, at most limit bytes once decoded; a gzip
// body (Content-Encoding: gzip, which Customer.io's Python SDK can send) is
// decompressed first.
func (s *Server) readBody(c *call, limit int64) ([]byte, error) {
	enc := strings.ToLower(strings.TrimSpace(c.r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		if c.r.ContentLength > limit {
			return nil, errTooLarge{limit}
		}
	case "gzip":
		c.rec.Gzip = true
	default:
		return nil, fmt.Errorf("content encoding %q is not supported", enc)
	}
	// A gzip body of incompressible data is a little longer than what it
	// holds: bound the wire at twice the limit, the decoded body at limit.
	var rd io.Reader = http.MaxBytesReader(c.w, c.r.Body, 2*limit)
	if c.rec.Gzip {
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
	case err != nil && c.rec.Gzip:
		return nil, errors.New("body is not valid gzip")
	case err != nil:
		return nil, errors.New("cannot read body")
	case int64(len(body)) > limit:
		return nil, errTooLarge{limit}
	}
	return body, nil
}

// poisoned reports whether call holds Faults.RejectAttribute in its traits
// or properties, and names the field.
func (s *Server) poisoned(c *call, call *cdp.Call) (string, bool) {
	k := c.faults.RejectAttribute
	if k == "" {
		return "", false
	}
	if _, ok := call.Traits[k]; ok {
		return "traits." + k, true
	}
	if _, ok := call.Properties[k]; ok {
		return "properties." + k, true
	}
	return "", false
}
