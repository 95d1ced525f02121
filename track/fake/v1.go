package fake

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cioq/cioq/internal/wire"
	"github.com/cioq/cioq/track"
)

// V1BodyLimit bounds a v1 request body: an event's data (≤
// track.MaxEventDataBytes) plus room for the rest. A longer body is answered
// 413. v1 ops are not held to track.MaxOpBytes, a v2 limit.
const V1BodyLimit = track.MaxV1BodyBytes

// v1Call answers every v1 path: the call is mapped to the v2 op it means
// with wire.V1ToV2 (TRACK_API.md "v1 → v2", the one mapping cioq ingest
// uses too), validated there and counted as that op.
func (s *Server) v1Call(c *call, _ []string) {
	body, ok := s.readBody(c, V1BodyLimit, fmt.Sprintf("v1 body must be at most %d bytes", V1BodyLimit))
	if !ok {
		return
	}
	op, err := wire.V1ToV2(c.r.Method, c.rec.Path, body)
	var me *wire.MalformedError
	switch {
	case errors.As(err, &me):
		s.fail(c, http.StatusBadRequest, "", me.Reason)
		return
	case err != nil:
		s.rejectOp(c, "", itemError(0, err))
		return
	}
	if it, bad := s.poisoned(c, 0, op); bad {
		s.rejectOp(c, FaultRejectAttribute, it)
		return
	}
	s.accept(c, []*track.Op{op}, nil, 1)
}
