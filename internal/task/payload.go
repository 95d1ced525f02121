package task

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cioq/cioq/track"
)

// Version2 is the first byte of a payload in the current format:
//
//	version      1 byte (Version2)
//	enqueued_at  8 bytes, big-endian unix microseconds (the stamp; see below)
//	workspace    uvarint length + bytes
//	op id        uvarint length + bytes
//	action       uvarint length + bytes
//	person       uvarint length + bytes
//	timestamp    varint, the op's `timestamp` in unix seconds (0: none)
//	op           uvarint length + bytes (the v2 op JSON), then nothing
//
// enqueued_at is the op's stamp: its place in the order of its workspace's
// ops, on Redis's clock. It has a fixed width and a fixed offset
// (StampOffset) so the enqueue script can write it in the stored task, in
// the same atomic step that queues the op (package taskq): an encoded
// payload whose stamp is zero is stamped there.
//
// Encode writes Version2 for a Track API op, so its bytes are those a
// worker without Pipelines support reads during a rolling upgrade.
const Version2 byte = 2

// Version3 is Version2 with the op's API after the stamp:
//
//	version      1 byte (Version3)
//	enqueued_at  8 bytes, as in Version2
//	api          1 byte (API: 0 track, 1 pipelines)
//	...          the rest as in Version2
//
// Encode writes it for an op of any API but APITrack; Decode reads both
// versions (a Version2 payload is APITrack).
const Version3 byte = 3

// StampOffset is the byte offset of enqueued_at in an encoded Payload.
const StampOffset = 1

// StampBytes is the width of an encoded stamp.
const StampBytes = 8

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
	// API is the API the op is delivered to; zero is APITrack. Op holds a
	// v2 op for APITrack and a Pipelines call for APIPipelines.
	API API
	// OpID is the op's id: the caller's idempotency key or a ULID. It names
	// the op in op keys, order registrations and dead letters.
	OpID string
	// Action is the op's v2 action (for a Pipelines call, the Track action
	// it means: cdp.Call.Action); with API it names the task type.
	Action track.Action
	// Person is track.Identifiers.Key() of the op's person ("" for none).
	Person string
	// EnqueuedAt is the op's stamp: Redis's clock when the op was queued,
	// in microseconds, unique and increasing within the workspace. It orders
	// the ops of a person (tombstones and order registrations compare it).
	// Zero until the enqueue script stamps the stored copy.
	EnqueuedAt time.Time
	// Timestamp is the op's `timestamp` (unix seconds) as it is sent on
	// every delivery; 0 when the op has none. Identifies of one person with
	// the same Timestamp are ordered by EnqueuedAt (docs/architecture.md).
	Timestamp int64
	// Op is the op JSON exactly as it will be sent: the v2 op (event id and
	// timestamp stamped) as track.EncodeOp produced it, or the Pipelines
	// call (messageId and timestamp stamped) as cdp.EncodeCall did. After
	// Decode it may alias the decoded bytes.
	Op []byte
}

// Stamp returns p.EnqueuedAt in unix microseconds; 0 for the zero time.
func (p *Payload) Stamp() int64 { return StampOf(p.EnqueuedAt) }

// StampOf returns t in unix microseconds; 0 for the zero time.
func StampOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// TimeOfStamp is the inverse of StampOf: 0 is the zero time.
func TimeOfStamp(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// Encode returns the binary form of p: Version2 for APITrack, else
// Version3. EnqueuedAt is kept to the microsecond. Decode rejects a payload
// without Workspace, OpID, a valid Action or Op, or with an unknown API, so
// the producer fills them all.
func Encode(p *Payload) []byte {
	n := 2 + StampBytes + binary.MaxVarintLen64 +
		lenField(len(p.Workspace)) + lenField(len(p.OpID)) + lenField(len(p.Action)) +
		lenField(len(p.Person)) + lenField(len(p.Op))
	b := make([]byte, 0, n)
	if p.API == APITrack {
		b = append(b, Version2)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Stamp()))
	} else {
		b = append(b, Version3)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Stamp()))
		b = append(b, byte(p.API))
	}
	b = appendString(b, p.Workspace)
	b = appendString(b, p.OpID)
	b = appendString(b, string(p.Action))
	b = appendString(b, p.Person)
	b = binary.AppendVarint(b, p.Timestamp)
	b = binary.AppendUvarint(b, uint64(len(p.Op)))
	return append(b, p.Op...)
}

func lenField(n int) int { return binary.MaxVarintLen64 + n }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode reads a payload written by Encode. Anything malformed (truncated,
// unknown version or API, lengths past the end, trailing bytes, a missing
// field, an unknown action) returns a *CorruptError matching ErrCorrupt;
// Decode never panics. The returned Op aliases b: do not modify b while it
// is in use.
func Decode(b []byte) (*Payload, error) {
	if len(b) == 0 {
		return nil, &CorruptError{Offset: 0, Reason: "empty"}
	}
	if b[0] != Version2 && b[0] != Version3 {
		return nil, &CorruptError{Offset: 0, Reason: "unknown version " + strconv.Itoa(int(b[0]))}
	}
	if len(b) < 1+StampBytes {
		return nil, &CorruptError{Offset: 1, Reason: "truncated enqueued_at"}
	}
	us := int64(binary.BigEndian.Uint64(b[1:]))
	api := APITrack
	first := 1 + StampBytes
	if b[0] == Version3 {
		if len(b) <= first {
			return nil, &CorruptError{Offset: first, Reason: "truncated api"}
		}
		api = API(b[first])
		if !api.Valid() {
			return nil, &CorruptError{Offset: first, Reason: "unknown api " + strconv.Itoa(int(b[first]))}
		}
		first++
	}
	// The four strings lie between their length prefixes; find their bounds
	// first, then copy that whole stretch into one string and slice it.
	var bounds [4][2]int
	off := first
	for i := range bounds {
		start, end, err := field(b, off)
		if err != nil {
			return nil, err
		}
		bounds[i] = [2]int{start, end}
		off = end
	}
	s := string(b[first:off])
	sub := func(i int) string { return s[bounds[i][0]-first : bounds[i][1]-first] }

	ts, n := binary.Varint(b[off:])
	if n <= 0 {
		return nil, &CorruptError{Offset: off, Reason: "bad timestamp"}
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
		API:        api,
		OpID:       sub(1),
		Action:     track.Action(sub(2)),
		Person:     sub(3),
		EnqueuedAt: TimeOfStamp(us),
		Timestamp:  ts,
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
	if off >= len(b) {
		return 0, 0, &CorruptError{Offset: off, Reason: "bad length"}
	}
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
