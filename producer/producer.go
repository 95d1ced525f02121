package producer

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
	"github.com/cioq/cioq/internal/tracing"
	"github.com/cioq/cioq/track"
)

// Op is one operation to enqueue: a Track API v2 op, or a Pipelines API
// call (Call), plus the per-call knobs.
type Op struct {
	// Op is the v2 op: action, identifiers, name, attributes, device,
	// primary/secondary. Leave ID empty to let the producer stamp the event
	// id; a caller-set ID must be a ULID. Zero when Call is set.
	track.Op
	// Call, when set, makes the op a Pipelines API call (call.go): it is
	// delivered to the workspace's Pipelines API, and Op must be zero. The
	// producer validates it (cdp.EncodeCall) and never modifies it. Its
	// MessageID, Customer.io's dedupe key, is the op id when Key is empty;
	// empty means the producer stamps one, stable across retries with the
	// same Key. The workspace must have a Pipelines API key
	// (Config.PipelinesWorkspaces), else ErrNoPipelines.
	Call *cdp.Call
	// CallJSON is Call's encoding as cdp.EncodeCall, cdp.DecodeCall or
	// cdp.ValidateRawBatch returned it, when the caller has it (ingest
	// does): the producer stores it instead of encoding Call again, unless
	// it stamps the call (no messageId or timestamp, or Timestamp set). It
	// must be the encoding of Call. Nil means the producer encodes Call.
	CallJSON []byte
	// Key is the idempotency key: the op id. Enqueueing the same key in the
	// same workspace again is a reported no-op (Result.Duplicate); keys name
	// ops of both APIs alike. For event, page and screen ops it also fixes
	// the event id Customer.io sees, for a call without a messageId its
	// messageId. Empty means a new ULID (for a call: its messageId). At most
	// MaxKeyBytes bytes of UTF-8.
	Key string
	// Timestamp is sent to Customer.io as `timestamp` (unix seconds; for a
	// call ISO 8601 with milliseconds) on every delivery and retry. Zero
	// means the op's or call's own timestamp when set, else now.
	Timestamp time.Time
	// Workspace names the workspace. Empty means Config.Workspace.
	Workspace string
}

// Result says what Enqueue did.
type Result struct {
	// OpID is the op id: the caller's Key or a new ULID.
	OpID string
	// EventID is the event `id` Customer.io sees; "" unless the op is a
	// Track event, page or screen.
	EventID string
	// MessageID is the `messageId` of a Pipelines call, as sent; "" for a
	// Track op.
	MessageID string
	// Queue is the asynq queue (lane) of the task.
	Queue string
	// TaskID is the asynq task id (workspace:op id).
	TaskID string
	// Duplicate reports that a task with this id was already queued: the op
	// was not queued again. It is not an error.
	Duplicate bool
	// Spooled reports that Redis did not take the op within
	// Config.Spool.Budget and it went to the on-disk spool instead: it is
	// accepted and will be queued, in order and under the same TaskID, when
	// Redis answers again. A spooled op is never reported as Duplicate.
	Spooled bool
}

// Producer enqueues Customer.io operations as asynq tasks. It is safe for
// concurrent use. Call Close when done.
type Producer struct {
	cfg     Config
	sink    sink
	spool   *spoolSink // nil without Config.Spool.Dir; else also sink
	entropy *ulid.LockedMonotonicReader
	m       *metrics.Producer
	stamps  *idempotency.Store // stamp reservations for bulk writers

	mu       sync.RWMutex // guards closed against inflight.Add
	closed   bool
	inflight sync.WaitGroup
	running  atomic.Int64
}

// New returns a Producer for cfg. It does not contact Redis: an unreachable
// Redis shows up as ErrUnavailable from Enqueue, or, with Config.Spool.Dir,
// as spooled ops. With a spool, New locks the directory (ErrSpoolLocked when
// another producer holds it) and starts replaying the ops an earlier run
// left there as soon as Redis answers.
func New(cfg Config) (*Producer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := metrics.NewProducer(nil) // registered once the spool is open
	if err != nil {
		return nil, err
	}
	rdb, owned := cfg.Client, false
	if rdb == nil {
		c, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			return nil, fmt.Errorf("%w: Redis %T does not make a go-redis client", ErrInvalidConfig, cfg.Redis)
		}
		rdb, owned = c, true
	}
	idem := idempotency.New(rdb, idempotency.Config{Prefix: cfg.KeyPrefix})
	w := taskq.New(rdb, idem)
	hist := newHistory(cfg, rdb) // history.go
	if hist != nil {
		// Best effort: the committer loads it again when Redis lost it.
		lctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		_ = hist.Load(lctx)
		cancel()
	}
	s := &redisSink{
		w:        w,
		commit:   newCommitter(w, hist, cfg.Logger, cfg.Timeout),
		maxRetry: max(cfg.MaxRetry, 0),
		hist:     hist,
		log:      cfg.Logger,
	}
	if owned {
		s.closer = rdb
	}
	if cfg.Spool.Dir == "" {
		if err := m.Register(cfg.Registerer); err != nil {
			_ = s.close(context.Background())
			return nil, fmt.Errorf("producer: register metrics: %w", err)
		}
		p := newProducer(cfg, s)
		p.m, p.stamps = m, idem
		return p, nil
	}
	sp, err := openSpool(cfg.Spool, cfg.Logger, m)
	if err != nil {
		_ = s.close(context.Background())
		return nil, err
	}
	if err := m.Register(cfg.Registerer); err != nil {
		_ = sp.close()
		_ = s.close(context.Background())
		return nil, fmt.Errorf("producer: register metrics: %w", err)
	}
	ss := newSpoolSink(s, sp, cfg)
	p := newProducer(cfg, ss)
	p.spool = ss
	p.m, p.stamps = m, idem
	return p, nil
}

func newProducer(cfg Config, s sink) *Producer {
	m, _ := metrics.NewProducer(nil) // unregistered; New swaps in the registered set
	return &Producer{
		cfg:     cfg,
		sink:    s,
		entropy: &ulid.LockedMonotonicReader{MonotonicReader: ulid.Monotonic(rand.Reader, 0)},
		m:       m,
	}
}

// Enqueue validates op, stamps it and queues it as one asynq task.
//
// Stamps: the op id is op.Key, else a new ULID. An event, page or screen
// gets an event id: the caller's op.ID (which must be a ULID), else the op id
// when it is a ULID, else a ULID derived from workspace and key (so a repeat
// carries the same id). `timestamp` is op.Timestamp, else op.Op.Timestamp,
// else now. The op's stamp (its place in its workspace's order, on Redis's
// clock) is given as it is queued, in the same atomic step as the task, its
// order registration and, for a delete or suppress, its person's tombstone.
//
// Errors: an invalid op returns an error matching track.ErrInvalidOp (a
// *track.ValidationError) and queues nothing; a Redis failure or no answer
// in time returns one matching ErrUnavailable; after Close, ErrClosed. A
// context already done returns its error and queues nothing. A repeat of an
// op already queued is not an error: Result.Duplicate is true.
//
// With Config.Spool.Dir, a Redis failure or no answer within Spool.Budget
// is not an error: the op goes to the on-disk spool (Result.Spooled) and is
// replayed later, in order. Only a full spool returns an error, matching
// ErrSpoolFull (and ErrUnavailable).
func (p *Producer) Enqueue(ctx context.Context, op Op) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("producer: enqueue %s: %w", op.action(), context.Cause(ctx))
	}
	if p.isClosed() {
		return Result{}, fmt.Errorf("producer: enqueue %s: %w", op.action(), ErrClosed)
	}
	start := time.Now()
	payload, res, err := p.prepare(op)
	if err != nil {
		p.m.Enqueued.WithLabelValues(cmp.Or(op.Workspace, p.cfg.Workspace), "invalid").Inc()
		return Result{}, err
	}
	if !p.begin() {
		return Result{}, fmt.Errorf("producer: enqueue %s: %w", op.action(), ErrClosed)
	}
	st, err := p.putTraced(ctx, &entry{payload: payload})
	p.m.EnqueueDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.Enqueued.WithLabelValues(payload.Workspace, "failed").Inc()
		p.cfg.Logger.WarnContext(ctx, "enqueue failed", slog.String("workspace", payload.Workspace),
			slog.String("action", string(payload.Action)), slog.String("op_id", payload.OpID),
			slog.String("error", err.Error()))
		return Result{}, fmt.Errorf("producer: enqueue %s %s: %w: %w", payload.Action, payload.OpID, ErrUnavailable, err)
	}
	res.Duplicate, res.Spooled = st.duplicate, st.spooled
	p.m.Enqueued.WithLabelValues(payload.Workspace, res.outcome()).Inc()
	return res, nil
}

func (r Result) outcome() string {
	switch {
	case r.Duplicate:
		return "duplicate"
	case r.Spooled:
		return "spooled"
	}
	return "queued"
}

// InvalidOpsError is EnqueueAll's error when some ops are invalid: nothing
// was queued. It matches track.ErrInvalidOp.
type InvalidOpsError struct {
	// Invalid lists the invalid ops, in input order.
	Invalid []InvalidOp
}

func (e *InvalidOpsError) Error() string {
	if len(e.Invalid) == 1 {
		return fmt.Sprintf("producer: op %d: %v", e.Invalid[0].Index, e.Invalid[0].Err)
	}
	return fmt.Sprintf("producer: %d invalid ops (op %d: %v)", len(e.Invalid), e.Invalid[0].Index, e.Invalid[0].Err)
}

// Is matches track.ErrInvalidOp.
func (e *InvalidOpsError) Is(target error) bool { return target == track.ErrInvalidOp }

// EnqueueAll validates and stamps every op as Enqueue does, then queues
// them all or none: the ops of one workspace go to Redis in one atomic
// script (on a Redis Cluster, atomic per Redis slot only), or, with a
// spool, to the spool as one record. It returns one Result per op, in
// order; a repeat of an op already queued is Result.Duplicate. It is what
// an HTTP request with many ops needs: when it fails, none of its ops is
// queued, so the client's retry cannot queue any twice.
//
// Errors: any invalid op returns an *InvalidOpsError (matching
// track.ErrInvalidOp) and queues nothing; otherwise as Enqueue.
func (p *Producer) EnqueueAll(ctx context.Context, ops []Op) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("producer: enqueue: %w", context.Cause(ctx))
	}
	if p.isClosed() {
		return nil, fmt.Errorf("producer: enqueue: %w", ErrClosed)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	start := time.Now()
	es := make([]*entry, len(ops))
	res := make([]Result, len(ops))
	var invalid []InvalidOp
	for i, op := range ops {
		payload, r, err := p.prepare(op)
		if err != nil {
			invalid = append(invalid, InvalidOp{Index: i, Err: err})
			p.m.Enqueued.WithLabelValues(cmp.Or(op.Workspace, p.cfg.Workspace), "invalid").Inc()
			continue
		}
		es[i], res[i] = &entry{payload: payload}, r
	}
	if len(invalid) > 0 {
		return nil, &InvalidOpsError{Invalid: invalid}
	}
	if !p.begin() {
		return nil, fmt.Errorf("producer: enqueue: %w", ErrClosed)
	}
	if tr := tracing.Tracer(p.cfg.TracerProvider); tr != nil {
		var span trace.Span
		ctx, span = tr.Start(ctx, SpanEnqueue, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("cioq.workspace", es[0].payload.Workspace), attribute.Int("cioq.ops", len(es))))
		defer span.End()
		h := tracing.Inject(ctx)
		for _, e := range es {
			e.headers = h
		}
	}
	st, err := p.put(ctx, es)
	p.m.EnqueueDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.Enqueued.WithLabelValues(es[0].payload.Workspace, "failed").Add(float64(len(es)))
		p.cfg.Logger.WarnContext(ctx, "enqueue failed", slog.String("workspace", es[0].payload.Workspace),
			slog.Int("ops", len(es)), slog.String("error", err.Error()))
		return nil, fmt.Errorf("producer: enqueue %d ops: %w: %w", len(es), ErrUnavailable, err)
	}
	for i := range res {
		res[i].Duplicate, res[i].Spooled = st[i].duplicate, st[i].spooled
		p.m.Enqueued.WithLabelValues(es[i].payload.Workspace, res[i].outcome()).Inc()
	}
	return res, nil
}

func (p *Producer) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// begin registers one enqueue in flight, or reports false after Close.
func (p *Producer) begin() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	p.running.Add(1)
	return true
}

// put hands the unit es to the sink, waiting at most Config.Timeout or until
// ctx is done. A put that outlives the wait is left to finish on its own
// (Close waits for it); its ops may still be queued, which a retry with the
// same keys reports as duplicates.
//
// With a spool the spool sink bounds the wait itself (Spool.Budget).
func (p *Producer) put(ctx context.Context, es []*entry) ([]stored, error) {
	defer p.inflight.Done()
	defer p.running.Add(-1)
	if p.spool != nil {
		return p.spool.put(ctx, es)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	st, err := p.sink.put(ctx, es)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("no answer from Redis in time: %w", context.Cause(ctx))
	}
	return st, err
}

// SpoolStats returns the spool's depth, size and counters; all zero when
// the Producer has no spool.
func (p *Producer) SpoolStats() SpoolStats {
	if p.spool == nil {
		return SpoolStats{}
	}
	return p.spool.sp.stats()
}

// prepare validates and stamps op and builds its payload.
func (p *Producer) prepare(op Op) (*task.Payload, Result, error) {
	fail := func(err error) (*task.Payload, Result, error) {
		return nil, Result{}, fmt.Errorf("producer: enqueue %s: %w", op.action(), err)
	}
	ws := op.Workspace
	if ws == "" && p.cfg.Route != nil {
		ws = p.cfg.Route(&op)
	}
	ws = cmp.Or(ws, p.cfg.Workspace)
	if verr := checkWorkspace(ws); verr != nil {
		return fail(verr)
	}
	if len(p.cfg.Workspaces) > 0 && !slices.Contains(p.cfg.Workspaces, ws) {
		return fail(&track.ValidationError{Field: "workspace", Reason: "not one of the configured workspaces"})
	}
	if op.Call != nil {
		return p.prepareCall(op, ws, fail) // call.go
	}
	now := p.cfg.Now()
	opID := op.Key
	if opID == "" {
		id, err := p.newULID(now)
		if err != nil {
			return fail(err)
		}
		opID = id
	} else if verr := checkKey(opID); verr != nil {
		return fail(verr)
	}

	o := op.Op // a copy: the caller's Op is never modified
	if o.Action.IsEvent() {
		if o.ID != "" {
			id, err := ulid.ParseStrict(o.ID)
			if err != nil {
				return fail(&track.ValidationError{Field: "id", Reason: "event id is not a ULID"})
			}
			o.ID = id.String()
		} else {
			o.ID = eventID(ws, opID)
		}
	}
	switch {
	case !op.Timestamp.IsZero():
		o.Timestamp = op.Timestamp.Unix()
	case o.Timestamp == 0:
		o.Timestamp = now.Unix()
	}
	body, err := track.EncodeOp(&o)
	if err != nil {
		return fail(err)
	}
	payload := &task.Payload{
		Workspace: ws,
		OpID:      opID,
		Action:    o.Action,
		Person:    o.Person().Key(),
		Timestamp: o.Timestamp,
		Op:        body, // EnqueuedAt: stamped by Redis as the op is queued
	}
	res := Result{
		OpID:   opID,
		Queue:  task.Queue(payload.Workspace, o.Action),
		TaskID: task.TaskID(ws, opID),
	}
	if o.Action.IsEvent() {
		res.EventID = o.ID
	}
	return payload, res, nil
}

// newULID returns a new ULID for time now.
func (p *Producer) newULID(now time.Time) (string, error) {
	id, err := ulid.New(ulid.Timestamp(now), p.entropy)
	if err != nil {
		return "", fmt.Errorf("new op id: %w", err)
	}
	return id.String(), nil
}

// eventID returns the event id for an op: the op id itself when it is a
// ULID, else a ULID made of the first 16 bytes of
// sha256(workspace + "\x00" + opID), the same for every repeat.
func eventID(workspace, opID string) string {
	if id, err := ulid.ParseStrict(opID); err == nil {
		return id.String()
	}
	sum := sha256.Sum256([]byte(workspace + "\x00" + opID))
	return ulid.ULID(sum[:16]).String()
}

func checkWorkspace(ws string) *track.ValidationError {
	switch {
	case ws == "":
		return &track.ValidationError{Field: "workspace", Reason: "empty"}
	case len(ws) > MaxKeyBytes:
		return &track.ValidationError{Field: "workspace", Reason: fmt.Sprintf("is %d bytes, limit %d", len(ws), MaxKeyBytes),
			Limit: MaxKeyBytes, Got: len(ws)}
	case !utf8.ValidString(ws):
		return &track.ValidationError{Field: "workspace", Reason: "not valid UTF-8"}
	case strings.ContainsAny(ws, ":{}"):
		return &track.ValidationError{Field: "workspace", Reason: "contains ':', '{' or '}'"}
	}
	return nil
}

func checkKey(key string) *track.ValidationError {
	switch {
	case len(key) > MaxKeyBytes:
		return &track.ValidationError{Field: "key", Reason: fmt.Sprintf("is %d bytes, limit %d", len(key), MaxKeyBytes),
			Limit: MaxKeyBytes, Got: len(key)}
	case !utf8.ValidString(key):
		return &track.ValidationError{Field: "key", Reason: "not valid UTF-8"}
	}
	return nil
}

// Close stops the Producer: later calls return ErrClosed. It waits for
// enqueues in flight until ctx is done. With a spool it then makes one last
// replay pass within ctx (when Redis answers, it replays until the spool is
// empty) and leaves the rest on disk for the next New on the same
// directory. Last it closes the Redis connection the Producer made (a
// Config.Client is left open). Calling Close again returns nil.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(done)
	}()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("producer: close: %d enqueue(s) still running: %w", p.running.Load(), context.Cause(ctx)))
	}
	if err := p.sink.close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("producer: close: %w", err))
	}
	return errors.Join(errs...)
}
