package producer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

// Pipelines API calls. An Op whose Call is set carries a call of
// Customer.io's Pipelines API (identify, track, page, screen, group, alias,
// and the semantic events "User Deleted", "Device Created or Updated", ...)
// instead of a Track API op. It is queued exactly like a Track op: the same
// lanes, the same per-person order, tombstones, retries, dead letters and
// history, because it is stored with the Track action and the person it
// means (cdp.Call.Action, cdp.Call.Person). A Track delete and a Pipelines
// identify of the same person keep their order. Workers deliver it to the
// workspace's Pipelines API (/v1/batch), never in a request with Track ops.

// ErrNoPipelines: an op carries a Pipelines call for a workspace that has
// no Pipelines API key (Config.PipelinesWorkspaces); nothing was queued.
// Errors matching it are *NoPipelinesError and also match
// track.ErrInvalidOp: the op can never be queued as it is.
var ErrNoPipelines = errors.New("producer: workspace has no Pipelines API key")

// NoPipelinesError is the error of a Pipelines call for a workspace without
// a Pipelines API key. It matches ErrNoPipelines and track.ErrInvalidOp.
type NoPipelinesError struct {
	// Workspace is the workspace the call was for.
	Workspace string
}

func (e *NoPipelinesError) Error() string {
	return fmt.Sprintf("workspace %q has no Pipelines API key", e.Workspace)
}

// Is matches ErrNoPipelines and track.ErrInvalidOp.
func (e *NoPipelinesError) Is(target error) bool {
	return target == ErrNoPipelines || target == track.ErrInvalidOp
}

// Person returns the person the op is about: the call's (cdp.Call.Person)
// for a Pipelines call, else the Track op's (for merge, the primary
// person). Routers (HashRouter) shard by it, so a person's Track ops and
// Pipelines calls land in the same workspace.
func (o *Op) Person() track.Identifiers {
	if o.Call != nil {
		return o.Call.Person()
	}
	return o.Op.Person()
}

// action names the op in errors and logs: the Track action (for a call,
// the one it means).
func (o *Op) action() track.Action {
	if o.Call != nil {
		if a := o.Call.Action(); a != "" {
			return a
		}
		return track.Action(o.Call.Type)
	}
	return o.Action
}

// callOpID is the op id of a call without a Key: its messageId (the
// Pipelines API's dedupe key, so a call enqueued twice is queued once),
// or, for a messageId too long or not UTF-8, "msg-" and the first 16 bytes
// (hex) of its SHA-256; "" when the call has no messageId.
func callOpID(messageID string) string {
	switch {
	case messageID == "":
		return ""
	case len(messageID) <= MaxKeyBytes && utf8.ValidString(messageID):
		return messageID
	}
	sum := sha256.Sum256([]byte(messageID))
	return "msg-" + hex.EncodeToString(sum[:16])
}

// prepareCall validates and stamps the Pipelines call of op (prepare has
// picked ws and checked it) and builds its payload.
//
// Stamps: the op id is op.Key, else the call's messageId, else a new ULID.
// A call without a messageId gets one: the op id when it is a ULID, else a
// ULID derived from workspace and op id (the same for every repeat, as the
// event id of a Track event). `timestamp` is op.Timestamp, else the call's,
// else now (ISO 8601 in UTC with milliseconds, as Customer.io's SDKs send
// it).
func (p *Producer) prepareCall(op Op, ws string, fail func(error) (*task.Payload, Result, error)) (*task.Payload, Result, error) {
	if op.Op.Action != "" || op.Op.Identifiers != nil || op.Op.Primary != nil {
		return fail(&track.ValidationError{Field: "call", Reason: "an op carries a Track op or a Pipelines call, not both"})
	}
	if p.cfg.PipelinesWorkspaces != nil && !slices.Contains(p.cfg.PipelinesWorkspaces, ws) {
		return fail(&NoPipelinesError{Workspace: ws})
	}
	now := p.cfg.Now()
	opID := op.Key
	switch {
	case opID != "":
		if verr := checkKey(opID); verr != nil {
			return fail(verr)
		}
	case op.Call.MessageID != "":
		opID = callOpID(op.Call.MessageID)
	default:
		id, err := p.newULID(now)
		if err != nil {
			return fail(err)
		}
		opID = id
	}
	c := op.Call
	body := op.CallJSON
	stamp := op.Call.MessageID == "" || op.Call.Timestamp == "" || !op.Timestamp.IsZero()
	if stamp {
		c = op.Call.Clone() // the caller's Call is never modified
		if c.MessageID == "" {
			c.MessageID = eventID(ws, opID)
		}
		switch {
		case !op.Timestamp.IsZero():
			c.Timestamp = cdp.FormatTimestamp(op.Timestamp)
		case c.Timestamp == "":
			c.Timestamp = cdp.FormatTimestamp(now)
		}
	}
	if stamp || len(body) == 0 {
		b, err := cdp.EncodeCall(c)
		if err != nil {
			return fail(err)
		}
		body = b
	} else if len(body) > cdp.MaxCallBytes || body[0] != '{' || body[len(body)-1] != '}' {
		return fail(&track.ValidationError{Field: "call", Reason: "CallJSON is not an encoded call (cdp.EncodeCall's output)"})
	}
	action, person := c.Action(), c.Person().Key()
	if action == "" {
		// "Object Deleted" has no Track action and is about an object,
		// not a person: queued as an event, ordered with nobody.
		action, person = track.ActionEvent, ""
	}
	var unix int64
	if t, ok := c.Time(); ok {
		unix = t.Unix()
	}
	payload := &task.Payload{
		Workspace: ws,
		API:       task.APIPipelines,
		OpID:      opID,
		Action:    action,
		Person:    person,
		Timestamp: unix,
		Op:        body, // EnqueuedAt: stamped by Redis as the op is queued
	}
	return payload, Result{
		OpID:      opID,
		MessageID: c.MessageID,
		Queue:     task.Queue(ws, action),
		TaskID:    task.TaskID(ws, opID),
	}, nil
}
