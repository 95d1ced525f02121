package producer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
	"github.com/cioq/cioq/track"
)

// Defaults of BulkOptions fields left zero.
const (
	// DefaultBulkMaxOps is the most ops in one bulk task (2,000).
	DefaultBulkMaxOps = task.DefaultBulkMaxOps
	// DefaultBulkMaxBytes bounds the v2 batch body of one bulk task
	// (450 KiB, as the worker bounds its batches; the API's limit is 500 KB).
	DefaultBulkMaxBytes = task.MaxBulkBytes
	// DefaultBulkPipeline is how many bulk tasks go to Redis at once.
	DefaultBulkPipeline = 4
)

// BulkOptions bounds the bulk tasks of one BulkWriter.
type BulkOptions struct {
	// MaxOps is the most ops packed into one bulk task. Zero means
	// DefaultBulkMaxOps (2,000); at most task.MaxBulkOps.
	MaxOps int
	// MaxBytes bounds the v2 batch body one bulk task makes, so the worker
	// sends it as one request. Zero means DefaultBulkMaxBytes (450 KiB); at
	// most task.MaxBulkBytes, at least track.MaxOpBytes plus the batch
	// envelope.
	MaxBytes int
	// Pipeline is how many bulk tasks are written to Redis at once while
	// the next ones are packed. Zero means DefaultBulkPipeline (4).
	Pipeline int
}

func (o BulkOptions) withDefaults() BulkOptions {
	o.MaxOps = cmp.Or(o.MaxOps, DefaultBulkMaxOps)
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultBulkMaxBytes)
	o.Pipeline = cmp.Or(o.Pipeline, DefaultBulkPipeline)
	return o
}

func (o BulkOptions) validate() error {
	var errs []error
	if o.MaxOps < 1 || o.MaxOps > task.MaxBulkOps {
		errs = append(errs, fmt.Errorf("bulk max ops %d outside [1, %d]", o.MaxOps, task.MaxBulkOps))
	}
	if o.MaxBytes < track.MaxOpBytes+task.BatchOverhead || o.MaxBytes > task.MaxBulkBytes {
		errs = append(errs, fmt.Errorf("bulk max bytes %d outside [%d, %d]", o.MaxBytes, track.MaxOpBytes+task.BatchOverhead, task.MaxBulkBytes))
	}
	if o.Pipeline < 1 {
		errs = append(errs, fmt.Errorf("bulk pipeline %d < 1", o.Pipeline))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// InvalidOp is an op a bulk enqueue refused: it was skipped, nothing of it
// was queued.
type InvalidOp struct {
	// Index is the op's position in the input (0-based, counting every op
	// given, valid or not).
	Index int
	// Err says why; it matches track.ErrInvalidOp.
	Err error
}

// BulkResult says what a bulk enqueue did. Every op given is counted in
// exactly one of Enqueued, Duplicates, Spooled and Invalid, unless the
// enqueue stopped with an error.
type BulkResult struct {
	// Ops counts the ops given, valid or not.
	Ops int
	// Enqueued counts ops newly queued: in new bulk tasks, or (critical ops)
	// as new single-op tasks.
	Enqueued int
	// Duplicates counts ops already queued: their bulk or single-op task
	// existed, or the op repeated the op id of an op packed into the same
	// bulk task. Not an error.
	Duplicates int
	// Spooled counts ops that went to the on-disk spool (Redis did not
	// answer); they are queued as single-op tasks when Redis returns.
	Spooled int
	// Tasks counts the bulk tasks newly queued (not those already there).
	Tasks int
	// Critical counts the suppress, unsuppress and delete ops, queued one by
	// one on the critical lane with their tombstones (they are also counted
	// in Enqueued, Duplicates or Spooled).
	Critical int
	// Invalid lists the ops refused, in input order.
	Invalid []InvalidOp
}

// bulkSink is a sink that also stores bulk tasks.
type bulkSink interface {
	putBulk(ctx context.Context, b *task.Bulk) (stored, error)
}

// BulkWriter packs ops into bulk tasks: many ops of one workspace and one
// API in one asynq task that the worker delivers in one batch request (a
// Track v2 batch, or a Pipelines /v1/batch for calls). It is the
// stream form of EnqueueBulk, for inputs too large to hold: memory stays
// bounded by the tasks being packed (one per workspace) and in flight
// (Pipeline). A BulkWriter is not safe for concurrent use; call Close at
// the end.
//
// Each op is validated and stamped exactly as Enqueue does (op id, event
// id, timestamp, enqueued_at; enqueued_at strictly increases from one op to
// the next, so input order is kept where it matters). Suppress, unsuppress
// and delete are never packed: each is queued at once as a single task on
// the critical lane, after its tombstone. A bulk task's TaskID derives from
// its op ids (task.BulkTaskID), so packing the same input again is a
// reported no-op (Duplicates), and the worker's done-markers skip any op
// already delivered.
type BulkWriter struct {
	p    *Producer
	opts BulkOptions
	bs   bulkSink
	n    int

	// stamps reserved per workspace (stamp.go of package idempotency): the
	// next one to give and how many are left. Ops take their stamps in
	// input order as they are added, so the order holds however the bulk
	// tasks race to Redis.
	next map[string]int64
	left map[string]int

	packs map[packKey]*pack

	jobs chan *task.Bulk
	wg   sync.WaitGroup

	mu     sync.Mutex // guards res and err
	res    BulkResult
	err    error
	closed bool
}

// packKey names a pack: a bulk task holds ops of one workspace and one API
// (one request).
type packKey struct {
	ws  string
	api task.API
}

// pack is the bulk task being filled for one workspace and API.
type pack struct {
	ops   []*task.Payload
	bytes int
	ids   map[string]struct{}
}

// NewBulkWriter returns a BulkWriter bounded by opts. It returns an error
// matching ErrInvalidConfig for bad options and ErrClosed after Close.
func (p *Producer) NewBulkWriter(opts BulkOptions) (*BulkWriter, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if p.isClosed() {
		return nil, fmt.Errorf("producer: bulk: %w", ErrClosed)
	}
	bs, ok := p.sink.(bulkSink)
	if !ok {
		return nil, fmt.Errorf("%w: the producer's sink cannot store bulk tasks", ErrInvalidConfig)
	}
	w := &BulkWriter{p: p, opts: opts, bs: bs, packs: map[packKey]*pack{}, jobs: make(chan *task.Bulk),
		next: map[string]int64{}, left: map[string]int{}}
	for range opts.Pipeline {
		w.wg.Add(1)
		go w.run()
	}
	return w, nil
}

// Add validates and stamps op and packs it; a full bulk task is handed to
// the pipeline, waiting while Pipeline tasks are already in flight.
//
// An invalid op returns an error matching track.ErrInvalidOp: it is
// skipped, recorded in BulkResult.Invalid with its index, and the writer
// goes on. Any other error (Redis, ErrClosed, ctx) stops the writer: this
// and later calls return it. Ops added before may or may not be queued;
// adding them again with the same keys is safe.
func (w *BulkWriter) Add(ctx context.Context, op Op) error {
	idx := w.n
	w.n++
	if err := w.failed(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return w.fail(fmt.Errorf("producer: bulk: %w", context.Cause(ctx)))
	}
	payload, _, err := w.p.prepare(op)
	if err != nil {
		if errors.Is(err, track.ErrInvalidOp) {
			w.mu.Lock()
			w.res.Ops++
			w.res.Invalid = append(w.res.Invalid, InvalidOp{Index: idx, Err: err})
			w.mu.Unlock()
			return err
		}
		return w.fail(err)
	}
	payload.EnqueuedAt = task.TimeOfStamp(w.stamp(ctx, payload.Workspace))
	w.mu.Lock()
	w.res.Ops++
	w.mu.Unlock()
	if task.Critical(payload.Action) {
		return w.putCritical(ctx, payload)
	}
	key := packKey{payload.Workspace, payload.API}
	pk := w.packs[key]
	if pk == nil {
		pk = &pack{bytes: task.BatchOverhead, ids: map[string]struct{}{}}
		w.packs[key] = pk
	}
	if _, dup := pk.ids[payload.OpID]; dup {
		w.mu.Lock()
		w.res.Duplicates++
		w.mu.Unlock()
		return nil
	}
	if len(pk.ops) > 0 && pk.bytes+1+len(payload.Op) > w.opts.MaxBytes {
		if err := w.flush(ctx, key, pk); err != nil {
			return err
		}
	}
	if len(pk.ops) > 0 {
		pk.bytes++ // the comma
	}
	pk.ops = append(pk.ops, payload)
	pk.bytes += len(payload.Op)
	pk.ids[payload.OpID] = struct{}{}
	if len(pk.ops) >= w.opts.MaxOps {
		return w.flush(ctx, key, pk)
	}
	return nil
}

// stamp returns the next stamp of workspace ws, reserving a block of
// MaxOps stamps in one round trip when none is left. When Redis does not
// answer it returns 0 for the next MaxOps ops: they are stamped as they
// reach Redis (through the spool, in order).
func (w *BulkWriter) stamp(ctx context.Context, ws string) int64 {
	if w.left[ws] == 0 {
		rctx, cancel := context.WithTimeout(ctx, w.p.cfg.Timeout)
		first, err := w.p.stamps.ReserveStamps(rctx, ws, w.opts.MaxOps)
		cancel()
		if err != nil {
			first = 0
		}
		w.next[ws], w.left[ws] = first, w.opts.MaxOps
	}
	s := w.next[ws]
	if s != 0 {
		w.next[ws]++
	}
	w.left[ws]--
	return s
}

// putCritical queues a suppress, unsuppress or delete as Enqueue does: one
// task on the critical lane (a delete or suppress writes its tombstone in
// the same step), with the stamp its input position gave it.
func (w *BulkWriter) putCritical(ctx context.Context, payload *task.Payload) error {
	if !w.p.begin() {
		return w.fail(fmt.Errorf("producer: bulk: %w", ErrClosed))
	}
	sts, err := w.p.put(ctx, []*entry{{payload: payload}})
	var st stored
	if err == nil {
		st = sts[0]
	}
	if err != nil {
		return w.fail(fmt.Errorf("producer: bulk: enqueue %s %s: %w: %w", payload.Action, payload.OpID, ErrUnavailable, err))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.res.Critical++
	w.count(st, 1)
	return nil
}

// count adds n ops stored as st; w.mu is held.
func (w *BulkWriter) count(st stored, n int) {
	switch {
	case st.spooled:
		w.res.Spooled += n
	case st.duplicate:
		w.res.Duplicates += n
	default:
		w.res.Enqueued += n
	}
}

// flush hands the pack of key to the pipeline and starts a new one.
func (w *BulkWriter) flush(ctx context.Context, key packKey, pk *pack) error {
	if len(pk.ops) == 0 {
		return nil
	}
	b := &task.Bulk{Workspace: key.ws, API: key.api, Ops: pk.ops}
	pk.ops, pk.bytes, pk.ids = nil, task.BatchOverhead, map[string]struct{}{}
	select {
	case w.jobs <- b:
		return nil
	case <-ctx.Done():
		return w.fail(fmt.Errorf("producer: bulk: %w", context.Cause(ctx)))
	}
}

// run writes bulk tasks to the sink until jobs is closed. After a failure
// it drops what is left: the writer already reports the error.
func (w *BulkWriter) run() {
	defer w.wg.Done()
	for b := range w.jobs {
		if w.failed() != nil {
			continue
		}
		if !w.p.begin() {
			w.fail(fmt.Errorf("producer: bulk: %w", ErrClosed))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(w.p.cfg.Timeout, 5*time.Second))
		st, err := w.bs.putBulk(ctx, b)
		cancel()
		w.p.inflight.Done()
		w.p.running.Add(-1)
		if err != nil {
			w.p.cfg.Logger.Warn("bulk enqueue failed", "workspace", b.Workspace, "ops", len(b.Ops), "error", err.Error())
			w.fail(fmt.Errorf("producer: bulk: enqueue %d ops: %w: %w", len(b.Ops), ErrUnavailable, err))
			continue
		}
		w.mu.Lock()
		if !st.spooled && !st.duplicate {
			w.res.Tasks++
		}
		w.count(st, len(b.Ops))
		w.mu.Unlock()
	}
}

func (w *BulkWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// fail records the first fatal error and returns the one recorded.
func (w *BulkWriter) fail(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Result returns what the writer did so far (ops in the pipeline are not
// counted yet).
func (w *BulkWriter) Result() BulkResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.res
	r.Invalid = append([]InvalidOp(nil), w.res.Invalid...)
	return r
}

// Close queues the tasks still being packed, waits for the pipeline and
// returns the result, with the first fatal error if any. Calling Close
// again returns the same.
func (w *BulkWriter) Close(ctx context.Context) (BulkResult, error) {
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	if !closed {
		for key, pk := range w.packs {
			if w.failed() != nil {
				break
			}
			_ = w.flush(ctx, key, pk)
		}
		close(w.jobs)
		w.wg.Wait()
	}
	return w.Result(), w.failed()
}

// EnqueueBulk validates, stamps and packs ops into bulk tasks (see
// BulkWriter) with the default BulkOptions. Invalid ops are listed in
// BulkResult.Invalid with their index and skipped; they are not an error.
// An error (Redis unavailable, ErrClosed, ctx) stops the enqueue; the
// result says what was done until then, and enqueueing the same ops again
// with the same keys is safe.
func (p *Producer) EnqueueBulk(ctx context.Context, ops []Op) (BulkResult, error) {
	return p.EnqueueBulkSeq(ctx, func(yield func(Op) bool) {
		for _, op := range ops {
			if !yield(op) {
				return
			}
		}
	})
}

// EnqueueBulkSeq is EnqueueBulk for a stream of ops: it holds only the bulk
// tasks being packed and in flight, however long the stream.
func (p *Producer) EnqueueBulkSeq(ctx context.Context, ops iter.Seq[Op]) (BulkResult, error) {
	w, err := p.NewBulkWriter(BulkOptions{})
	if err != nil {
		return BulkResult{}, err
	}
	for op := range ops {
		if err := w.Add(ctx, op); err != nil && !errors.Is(err, track.ErrInvalidOp) {
			break
		}
	}
	return w.Close(ctx)
}

// putBulk queues b as one bulk task; a task with the same id already
// queued is reported as a duplicate.
func (s *redisSink) putBulk(ctx context.Context, b *task.Bulk) (stored, error) {
	res, err := s.commit.write(ctx, []taskq.Task{taskq.Bulk(b, s.maxRetry)}, nil)
	if err != nil {
		return stored{}, err
	}
	return stored{duplicate: res[0].Duplicate}, nil
}

// putBulk queues b as one bulk task while Redis answers. While the spool
// holds ops, or when Redis fails, the ops of b go to the spool as one
// record: replayed, they become single-op tasks under their own op ids,
// queued in one step.
func (s *spoolSink) putBulk(ctx context.Context, b *task.Bulk) (stored, error) {
	if !s.sp.isDegraded() {
		live, ok := s.live.(bulkSink)
		if !ok {
			return stored{}, errors.New("live sink cannot store bulk tasks")
		}
		st, err := live.putBulk(ctx, b)
		if err == nil {
			return st, nil
		}
		if s.sp.markDegraded() {
			s.log.WarnContext(ctx, "redis unavailable; spooling ops to disk", "error", err.Error())
		}
	}
	es := make([]*entry, len(b.Ops))
	for i, p := range b.Ops {
		es[i] = &entry{payload: p}
	}
	if err := s.sp.append(es); err != nil {
		return stored{}, err
	}
	return stored{spooled: true}, nil
}
