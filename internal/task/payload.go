package task

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cioq/cioq/track"
)

// Version1 is the first byte of a payload in the current format:
//
//	version      1 byte (Version1)
//	workspace    uvarint length + bytes
//	op id        uvarint length + bytes
//	action       uvarint length + bytes
//	person       uvarint length + bytes
//	enqueued_at  varint, unix microseconds
//	op           uvarint length + bytes (the v2 op JSON), then nothing
const Version1 byte = 1

// ErrCorrupt matches every error Decode and FromTask return: the bytes are
// not a payload this version can read. Retrying does not help.
var ErrCorrupt = errors.New("task: corrupt payload")

// CorruptError says why a payload could not be decoded. It matches
// ErrCorrupt with errors.Is.
type CorruptError struct {
	// Offset is the byte offset where decoding stopped; -1 when the problem
	// is not at one place (a missing field, a task type mismatch).
	Offset int
	// Reason says what was wrong.
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Offset < 0 {
		return "task: corrupt payload: " + e.Reason
	}
	return fmt.Sprintf("task: corrupt payload: %s (at byte %d)", e.Reason, e.Offset)
}

// Is matches ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Payload is what one asynq task carries for one op.
type Payload struct {
	// Workspace names the Customer.io workspace the op goes to.
	Workspace string
	// OpID is the op's id: the caller's idempotency key or a ULID. It names
	// the op in done-markers, claims and dead letters.
	OpID string
	// Action is the op's v2 action; it also names the task type.
	Action track.Action
	// Person is track.Identifiers.Key() of the op's person ("" for none).
	Person string
	// EnqueuedAt is cioq's clock at enqueue, kept to the microsecond;
	// tombstones compare it.
	EnqueuedAt time.Time
	// Op is the v2 op JSON exactly as it will be sent (event id and timestamp
	// stamped), as track.EncodeOp produced it. After Decode it may alias the
	// decoded bytes.
	Op []byte
}

// Encode returns the binary form of p (see Version1). EnqueuedAt is kept to
// the microsecond. Decode rejects a payload without Workspace, OpID, a valid
// Action or Op, so the producer fills all four.
func Encode(p *Payload) []byte {
	us := p.EnqueuedAt.UnixMicro()
	n := 1 + binary.MaxVarintLen64 +
		lenField(len(p.Workspace)) + lenField(len(p.OpID)) + lenField(len(p.Action)) +
		lenField(len(p.Person)) + lenField(len(p.Op))
	b := make([]byte, 0, n)
	b = append(b, Version1)
	b = appendString(b, p.Workspace)
	b = appendString(b, p.OpID)
	b = appendString(b, string(p.Action))
	b = appendString(b, p.Person)
	b = binary.AppendVarint(b, us)
	b = binary.AppendUvarint(b, uint64(len(p.Op)))
	return append(b, p.Op...)
}

func lenField(n int) int { return binary.MaxVarintLen64 + n }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode reads a payload written by Encode. Anything malformed (truncated,
// unknown version, lengths past the end, trailing bytes, a missing field, an
// unknown action) returns a *CorruptError matching ErrCorrupt; Decode never
// panics. The returned Op aliases b: do not modify b while it is in use.
func Decode(b []byte) (*Payload, error) {
	if len(b) == 0 {
		return nil, &CorruptError{Offset: 0, Reason: "empty"}
	}
	if b[0] != Version1 {
		return nil, &CorruptError{Offset: 0, Reason: "unknown version " + strconv.Itoa(int(b[0]))}
	}
	// The four strings lie between their length prefixes; find their bounds
	// first, then copy that whole stretch into one string and slice it.
	var bounds [4][2]int
	off := 1
	for i := range bounds {
		start, end, err := field(b, off)
		if err != nil {
			return nil, err
		}
		bounds[i] = [2]int{start, end}
		off = end
	}
	s := string(b[1:off])
	sub := func(i int) string { return s[bounds[i][0]-1 : bounds[i][1]-1] }

	us, n := binary.Varint(b[off:])
	if n <= 0 {
		return nil, &CorruptError{Offset: off, Reason: "bad enqueued_at"}
	}
	off += n
	start, end, err := field(b, off)
	if err != nil {
		return nil, err
	}
	if end != len(b) {
		return nil, &CorruptError{Offset: end, Reason: strconv.Itoa(len(b)-end) + " trailing byte(s)"}
	}
	p := &Payload{
		Workspace:  sub(0),
		OpID:       sub(1),
		Action:     track.Action(sub(2)),
		Person:     sub(3),
		EnqueuedAt: time.UnixMicro(us).UTC(),
		Op:         b[start:end:end],
	}
	switch {
	case p.Workspace == "":
		return nil, &CorruptError{Offset: -1, Reason: "no workspace"}
	case p.OpID == "":
		return nil, &CorruptError{Offset: -1, Reason: "no op id"}
	case !p.Action.Valid():
		return nil, &CorruptError{Offset: -1, Reason: "unknown action " + quote(string(p.Action))}
	case len(p.Op) == 0:
		return nil, &CorruptError{Offset: -1, Reason: "no op"}
	}
	return p, nil
}

// field reads a uvarint length at off and returns the bounds of the bytes
// that follow it.
func field(b []byte, off int) (start, end int, err error) {
	l, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return 0, 0, &CorruptError{Offset: off, Reason: "bad length"}
	}
	start = off + n
	if l > uint64(len(b)-start) {
		return 0, 0, &CorruptError{Offset: off, Reason: "length " + strconv.FormatUint(l, 10) + " past the end"}
	}
	return start, start + int(l), nil
}

// quote quotes s for an error message, cut to a readable length.
func quote(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return strconv.Quote(s[:maxLen]) + "..."
	}
	return strconv.Quote(s)
}
