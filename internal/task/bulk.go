package task

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"

	"github.com/hibiken/asynq"

	"github.com/cioq/cioq/track"
)

// TypeBulk is the asynq task type of a bulk task: many ops of one workspace
// in one task, delivered in one v2 batch request.
const TypeBulk = TypePrefix + "bulk"

// TypeBulkPipelines is the asynq task type of a bulk task of Pipelines API
// ops, delivered in one /v1/batch request.
const TypeBulkPipelines = TypePrefixPipelines + "bulk"

// BulkTypeName returns the bulk task type of api: TypeBulk or
// TypeBulkPipelines.
func BulkTypeName(api API) string {
	if api == APIPipelines {
		return TypeBulkPipelines
	}
	return TypeBulk
}

// QueueBulk is the asynq queue (lane) of DefaultWorkspace's bulk tasks; any
// other workspace's bulk lane is "bulk.<workspace>" (BulkQueue).
const QueueBulk = "bulk"

// Bounds of one bulk task, so that it always fits one v2 batch request.
const (
	// DefaultBulkMaxOps is the most ops the producer packs into one bulk
	// task by default: 100 requests/s × 2,000 small ops is Customer.io's
	// ~200K ops/s per workspace.
	DefaultBulkMaxOps = 2000
	// MaxBulkOps is the hard bound on the ops of one bulk task; DecodeBulk
	// refuses more.
	MaxBulkOps = 10000
	// MaxBulkBytes bounds the v2 batch body built from a bulk task's ops
	// (`{"batch":[` + ops joined by "," + `]}`), as the worker's batches are
	// bounded (450 KiB; the API's limit is 500 KB).
	MaxBulkBytes = 450 * 1024
	// BatchOverhead is the size of `{"batch":[]}` around the ops.
	BatchOverhead = len(`{"batch":[]}`)
)

// BulkVersion2 is the first byte of a bulk payload in the current format:
//
//	version      1 byte (BulkVersion2)
//	workspace    uvarint length + bytes (shared by every op)
//	count        uvarint number of ops (1..MaxBulkOps)
//	count times:
//	  enqueued_at  8 bytes, big-endian unix µs (the op's stamp; 0: to stamp)
//	  op id        uvarint length + bytes
//	  action       uvarint length + bytes
//	  person       uvarint length + bytes
//	  timestamp    varint, unix seconds
//	  op           uvarint length + bytes (the v2 op JSON)
//	then nothing
//
// Each op carries the same fields as a single-op Payload; its stamp has a
// fixed width so the enqueue script can write it (EncodeBulkStamped gives
// the offsets). EncodeBulk writes it for a bulk of Track API ops.
const BulkVersion2 byte = 2

// BulkVersion3 is BulkVersion2 with the API of every op after the version
// byte (api: 1 byte, 0 track, 1 pipelines), then the rest as BulkVersion2.
// EncodeBulk writes it for a bulk of any API but APITrack.
const BulkVersion3 byte = 3

// Bulk is what one bulk task carries: ops of one workspace and one API
// (one request).
type Bulk struct {
	// Workspace names the workspace of every op.
	Workspace string
	// API is the API of every op; zero is APITrack.
	API API
	// Ops are the ops, each a full Payload. EncodeBulk ignores their
	// Workspace and API fields (Bulk's are written once); DecodeBulk sets
	// them.
	Ops []*Payload
}

// BodyBytes returns the size of the batch body the ops of b make (the v2
// batch and the Pipelines /v1/batch have the same envelope).
func (b *Bulk) BodyBytes() int {
	n := BatchOverhead
	for i, p := range b.Ops {
		if i > 0 {
			n++
		}
		n += len(p.Op)
	}
	return n
}

// EncodeBulk returns the binary form of b (BulkVersion2 for APITrack, else
// BulkVersion3).
func EncodeBulk(b *Bulk) []byte {
	out, _ := EncodeBulkStamped(b)
	return out
}

// EncodeBulkStamped returns the binary form of b and, for each op, the
// offset of its stamp in it.
func EncodeBulkStamped(b *Bulk) ([]byte, []int) {
	n := 2 + lenField(len(b.Workspace)) + binary.MaxVarintLen64
	for _, p := range b.Ops {
		n += StampBytes + 5*binary.MaxVarintLen64 + len(p.OpID) + len(p.Action) + len(p.Person) + len(p.Op)
	}
	out := make([]byte, 0, n)
	stamps := make([]int, len(b.Ops))
	if b.API == APITrack {
		out = append(out, BulkVersion2)
	} else {
		out = append(out, BulkVersion3, byte(b.API))
	}
	out = appendString(out, b.Workspace)
	out = binary.AppendUvarint(out, uint64(len(b.Ops)))
	for i, p := range b.Ops {
		stamps[i] = len(out)
		out = binary.BigEndian.AppendUint64(out, uint64(p.Stamp()))
		out = appendString(out, p.OpID)
		out = appendString(out, string(p.Action))
		out = appendString(out, p.Person)
		out = binary.AppendVarint(out, p.Timestamp)
		out = binary.AppendUvarint(out, uint64(len(p.Op)))
		out = append(out, p.Op...)
	}
	return out, stamps
}

// DecodeBulk reads a bulk payload written by EncodeBulk. Anything malformed
// (truncated, unknown version or API, lengths past the end, trailing bytes,
// no workspace, no ops or more than MaxBulkOps, an op without id, action or
// op JSON, an unknown action) returns a *CorruptError matching ErrCorrupt;
// DecodeBulk never panics. The ops' Op fields alias b.
func DecodeBulk(b []byte) (*Bulk, error) {
	if len(b) == 0 {
		return nil, &CorruptError{Offset: 0, Reason: "empty"}
	}
	if b[0] != BulkVersion2 && b[0] != BulkVersion3 {
		return nil, &CorruptError{Offset: 0, Reason: "unknown bulk version " + strconv.Itoa(int(b[0]))}
	}
	api, wsAt := APITrack, 1
	if b[0] == BulkVersion3 {
		if len(b) < 2 {
			return nil, &CorruptError{Offset: 1, Reason: "truncated api"}
		}
		api, wsAt = API(b[1]), 2
		if !api.Valid() {
			return nil, &CorruptError{Offset: 1, Reason: "unknown api " + strconv.Itoa(int(b[1]))}
		}
	}
	start, end, err := field(b, wsAt)
	if err != nil {
		return nil, err
	}
	ws := string(b[start:end])
	if ws == "" {
		return nil, &CorruptError{Offset: -1, Reason: "no workspace"}
	}
	off := end
	if off >= len(b) {
		return nil, &CorruptError{Offset: off, Reason: "bad op count"}
	}
	count, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return nil, &CorruptError{Offset: off, Reason: "bad op count"}
	}
	if count == 0 || count > MaxBulkOps {
		return nil, &CorruptError{Offset: off, Reason: "op count " + strconv.FormatUint(count, 10) + " outside [1, " + strconv.Itoa(MaxBulkOps) + "]"}
	}
	off += n
	out := &Bulk{Workspace: ws, API: api, Ops: make([]*Payload, 0, count)}
	for i := range int(count) {
		if len(b)-off < StampBytes {
			return nil, &CorruptError{Offset: off, Reason: "truncated enqueued_at"}
		}
		us := int64(binary.BigEndian.Uint64(b[off:]))
		off += StampBytes
		var s [3]string
		for j := range s {
			start, end, err := field(b, off)
			if err != nil {
				return nil, err
			}
			s[j] = string(b[start:end])
			off = end
		}
		if off >= len(b) {
			return nil, &CorruptError{Offset: off, Reason: "bad timestamp"}
		}
		ts, n := binary.Varint(b[off:])
		if n <= 0 {
			return nil, &CorruptError{Offset: off, Reason: "bad timestamp"}
		}
		off += n
		start, end, err := field(b, off)
		if err != nil {
			return nil, err
		}
		p := &Payload{Workspace: ws, API: api, OpID: s[0], Action: track.Action(s[1]), Person: s[2],
			EnqueuedAt: TimeOfStamp(us), Timestamp: ts, Op: b[start:end:end]}
		off = end
		switch {
		case p.OpID == "":
			return nil, &CorruptError{Offset: -1, Reason: "op " + strconv.Itoa(i) + ": no op id"}
		case !p.Action.Valid():
			return nil, &CorruptError{Offset: -1, Reason: "op " + strconv.Itoa(i) + ": unknown action " + quote(string(p.Action))}
		case len(p.Op) == 0:
			return nil, &CorruptError{Offset: -1, Reason: "op " + strconv.Itoa(i) + ": no op"}
		}
		out.Ops = append(out.Ops, p)
	}
	if off != len(b) {
		return nil, &CorruptError{Offset: off, Reason: strconv.Itoa(len(b)-off) + " trailing byte(s)"}
	}
	return out, nil
}

// BulkQueue returns the bulk lane of workspace: QueueBulk for
// DefaultWorkspace, "bulk.<workspace>" for any other. Bulk tasks have a lane
// of their own, served by a server of small concurrency, so a backfill
// never stands in front of the live ops of the default lane.
func BulkQueue(workspace string) string {
	if workspace == DefaultWorkspace || workspace == "" {
		return QueueBulk
	}
	return QueueBulk + "." + workspace
}

// BulkTaskID returns the asynq task id of a bulk task of workspace holding
// the ops opIDs: workspace + ":bulk-" + the first 16 bytes (hex) of the
// SHA-256 of the sorted op ids. It is deterministic, so packing the same ops
// again (a re-run import) conflicts instead of queueing them twice. opIDs is
// not modified.
func BulkTaskID(workspace string, opIDs []string) string {
	ids := slices.Clone(opIDs)
	slices.Sort(ids)
	h := sha256.New()
	var l [binary.MaxVarintLen64]byte
	for _, id := range ids {
		h.Write(l[:binary.PutUvarint(l[:], uint64(len(id)))])
		h.Write([]byte(id))
	}
	return workspace + ":bulk-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// NewBulkTask returns the asynq task for b: type BulkTypeName(b.API), payload
// EncodeBulk(b), and the options Queue(BulkQueue(b.Workspace)) and
// TaskID(BulkTaskID(...)) ahead of opts.
func NewBulkTask(b *Bulk, opts ...asynq.Option) *asynq.Task {
	ids := make([]string, len(b.Ops))
	for i, p := range b.Ops {
		ids[i] = p.OpID
	}
	all := make([]asynq.Option, 0, 2+len(opts))
	all = append(all, asynq.Queue(BulkQueue(b.Workspace)), asynq.TaskID(BulkTaskID(b.Workspace, ids)))
	all = append(all, opts...)
	return asynq.NewTask(BulkTypeName(b.API), EncodeBulk(b), all...)
}

// BulkFromTask decodes the bulk payload of t. A task of another type, a
// payload of another API than its type names, or a malformed payload is an
// error matching ErrCorrupt.
func BulkFromTask(t *asynq.Task) (*Bulk, error) {
	if t.Type() != TypeBulk && t.Type() != TypeBulkPipelines {
		return nil, &CorruptError{Offset: -1, Reason: "task type " + quote(t.Type()) + " is not " + TypeBulk + " or " + TypeBulkPipelines}
	}
	b, err := DecodeBulk(t.Payload())
	if err != nil {
		return nil, err
	}
	if BulkTypeName(b.API) != t.Type() {
		return nil, &CorruptError{Offset: -1, Reason: "task type " + quote(t.Type()) + " carries ops of the " + b.API.String() + " API"}
	}
	return b, nil
}
