package taskq

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cioq/cioq/idempotency"
)

// allQueues is asynq's set of queue names (asynq:queues); asynq's client
// adds a queue to it the first time it writes there, and so does Writer.
const allQueues = "asynq:queues"

// maxOpsPerCall bounds the ops of one script call; larger
// writes are split into calls of whole tasks.
const maxOpsPerCall = 4096

// Task is one asynq task to write.
type Task struct {
	// Workspace is the workspace of the ops the task carries: their stamps
	// are unique and increasing within it.
	Workspace string
	// Type is the asynq task type.
	Type string
	// Payload is the encoded payload (task.Encode, task.EncodeBulk).
	Payload []byte
	// ID is the asynq task id.
	ID string
	// Queue is the asynq queue.
	Queue string
	// MaxRetry is asynq's retry count for the task.
	MaxRetry int
	// Headers are asynq task headers (trace context); nil for none.
	Headers map[string]string
	// ProcessAt schedules the task; zero means pending now.
	ProcessAt time.Time
	// Ops are the ops the task carries, in payload order.
	Ops []Op
}

// Op is one op a Task carries.
type Op struct {
	// Item is the op as the order registrations see it. A zero Item.Stamp
	// asks for a new stamp, written at StampAt in the stored payload.
	Item idempotency.Item
	// StampAt is the offset of the op's stamp in Task.Payload (as
	// task.StampOffset for a single op); -1 means the payload holds no
	// stamp to fill.
	StampAt int
}

// Result says what Write did with one task.
type Result struct {
	// Duplicate: a task with the same id (in the same queue) existed, or
	// came earlier in the same call; nothing was written for it.
	Duplicate bool
	// Stamps are the stamps of the task's ops, in order (zero for the ops of
	// a duplicate task that asked for one).
	Stamps []int64
}

// Unit is tasks written all or nothing: the tasks of one workspace in one
// unit go to Redis in one atomic script call (on a Redis Cluster, atomic
// per slot only; a unit across workspaces is atomic per workspace).
type Unit struct {
	// Tasks to write.
	Tasks []Task
	// Results are filled by Write, one per task, when Err is nil.
	Results []Result
	// Err is set by Write when the unit's write failed: nothing is known of
	// its tasks (a retry of the same tasks reports those written as
	// duplicates).
	Err error
}

// Writer writes cioq tasks into Redis the way asynq's client does, many per
// round trip, and stamps and registers their ops (package idempotency) in
// the same atomic script. On a Redis Cluster, where a workspace's keys and
// a queue's keys live in different slots, a write takes two steps per
// workspace (register, then write the tasks) and is atomic per slot only.
type Writer struct {
	rdb     redis.UniversalClient
	idem    *idempotency.Store
	cluster bool

	mu        sync.Mutex
	published map[string]bool // queues added to asynq:queues
}

// New returns a Writer on rdb whose registrations follow idem's keys.
func New(rdb redis.UniversalClient, idem *idempotency.Store) *Writer {
	_, cluster := rdb.(*redis.ClusterClient)
	return &Writer{rdb: rdb, idem: idem, cluster: cluster, published: map[string]bool{}}
}

// Write writes the units and fills their Results or Err. Units of one
// workspace share script calls (up to about 4,096 ops a call; a unit is
// never split), workspaces go in one pipelined round trip. also, when not
// nil, queues more commands in that round trip (the producer's history);
// their errors are theirs to read. The returned error is the first unit's
// error, for callers that write one unit.
func (w *Writer) Write(ctx context.Context, also func(redis.Pipeliner), units ...*Unit) error {
	var all []Task
	var owner []int // unit of all[i]
	for u, unit := range units {
		unit.Results, unit.Err = nil, nil
		for _, t := range unit.Tasks {
			all = append(all, t)
			owner = append(owner, u)
		}
	}
	if len(all) == 0 {
		return nil
	}
	fail := func(err error) error {
		for _, unit := range units {
			unit.Err = err
		}
		return err
	}
	if err := w.publish(ctx, all); err != nil {
		return fail(err)
	}
	res := make([]Result, len(all))
	errs := make([]error, len(all))
	groups := w.calls(all, owner)
	if w.cluster {
		for _, g := range groups {
			if err := w.writeSplit(ctx, all, g, res); err != nil {
				for _, i := range g {
					errs[i] = err
				}
			}
		}
		if also != nil {
			_, _ = w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { also(p); return nil })
		}
	} else {
		run := func(cmds []*redis.Cmd) error {
			_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, g := range groups {
					keys, args := w.scriptArgs(all, g, true, w.idem.StampKey(all[g[0]].Workspace))
					cmds[i] = enqueueScript.EvalSha(ctx, p, keys, args...)
				}
				if also != nil {
					also(p)
				}
				return nil
			})
			return err
		}
		cmds := make([]*redis.Cmd, len(groups))
		if err := run(cmds); err != nil && noScript(cmds) {
			// Nothing ran (the script was not loaded): load it, run again.
			if lerr := enqueueScript.Load(ctx, w.rdb).Err(); lerr != nil {
				return fail(fmt.Errorf("taskq: load script: %w", lerr))
			}
			_ = run(cmds)
		}
		for i, g := range groups {
			if err := readResults(cmds[i], all, g, res); err != nil {
				for _, j := range g {
					errs[j] = err
				}
			}
		}
	}
	for i := range all {
		unit := units[owner[i]]
		if errs[i] != nil && unit.Err == nil {
			unit.Err = errs[i]
		}
		unit.Results = append(unit.Results, res[i])
	}
	var first error
	for _, unit := range units {
		if unit.Err != nil {
			unit.Results = nil
			if first == nil {
				first = unit.Err
			}
		}
	}
	return first
}

// calls splits tasks into script calls: one workspace each, about
// maxOpsPerCall ops at most, never splitting a unit's tasks of one
// workspace between calls.
func (w *Writer) calls(tasks []Task, owner []int) [][]int {
	type key struct {
		unit int
		ws   string
	}
	var parts [][]int // tasks of one unit and workspace
	at := map[key]int{}
	for i, t := range tasks {
		k := key{owner[i], t.Workspace}
		j, ok := at[k]
		if !ok {
			j = len(parts)
			at[k] = j
			parts = append(parts, nil)
		}
		parts[j] = append(parts[j], i)
	}
	var out [][]int
	open := map[string]int{} // workspace -> call in out
	ops := map[string]int{}
	for _, part := range parts {
		ws := tasks[part[0]].Workspace
		n := 0
		for _, i := range part {
			n += len(tasks[i].Ops)
		}
		j, ok := open[ws]
		if !ok || (ops[ws] > 0 && ops[ws]+n > maxOpsPerCall) {
			out = append(out, nil)
			j = len(out) - 1
			open[ws], ops[ws] = j, 0
		}
		out[j] = append(out[j], part...)
		ops[ws] += n
	}
	return out
}

// publish adds the queues of tasks to asynq:queues, once per queue per
// Writer (as asynq's client does), in one round trip.
func (w *Writer) publish(ctx context.Context, tasks []Task) error {
	var qs []any
	w.mu.Lock()
	for _, t := range tasks {
		if !w.published[t.Queue] {
			w.published[t.Queue] = true
			qs = append(qs, t.Queue)
		}
	}
	w.mu.Unlock()
	if len(qs) == 0 {
		return nil
	}
	if err := w.rdb.SAdd(ctx, allQueues, qs...).Err(); err != nil {
		w.mu.Lock()
		for _, q := range qs {
			delete(w.published, q.(string))
		}
		w.mu.Unlock()
		return fmt.Errorf("taskq: publish queues: %w", err)
	}
	return nil
}

// scriptArgs builds the enqueue script's keys and args for tasks[g].
func (w *Writer) scriptArgs(tasks []Task, g []int, register bool, first string) ([]string, []any) {
	nops := 0
	for _, i := range g {
		nops += len(tasks[i].Ops)
	}
	keys := make([]string, 0, 1+2*len(g)+3*nops)
	args := make([]any, 0, 3+5*len(g)+5*nops)
	keys = append(keys, first)
	reg := "0"
	if register {
		reg = "1"
	}
	args = append(args, w.idem.RegistrationTTL(), reg, len(g))
	opArgs := make([]any, 0, 5*nops)
	opKeys := make([]string, 0, 3*nops)
	for _, i := range g {
		t := &tasks[i]
		msg, at := (&message{Type: t.Type, Payload: t.Payload, Headers: t.Headers, ID: t.ID, Queue: t.Queue,
			Retry: t.MaxRetry, Timeout: DefaultTimeout}).encode()
		keys = append(keys, TaskKey(t.Queue, t.ID))
		mode, score := "p", "0"
		if !t.ProcessAt.IsZero() && t.ProcessAt.After(time.Now()) {
			keys = append(keys, queueKey(t.Queue, "scheduled"))
			mode, score = "s", strconv.FormatInt(t.ProcessAt.Unix(), 10)
		} else {
			keys = append(keys, queueKey(t.Queue, "pending"))
		}
		args = append(args, msg, t.ID, mode, score, len(t.Ops))
		for _, op := range t.Ops {
			off := -1
			if op.StampAt >= 0 {
				off = at + op.StampAt
			}
			r := w.idem.RegistrationOf(t.Workspace, op.Item)
			opKeys = append(opKeys, r.Person, r.Order, r.Identify)
			opArgs = append(opArgs, off, strconv.FormatInt(op.Item.Stamp, 10), r.Kind, r.Timestamp, op.Item.OpID)
		}
	}
	if !register {
		// The ops' keys live in the workspace's slot: name the task key
		// instead, so every key of the call is in the queue's slot.
		for i := range opKeys {
			opKeys[i] = keys[1]
		}
	}
	return append(keys, opKeys...), append(args, opArgs...)
}

// readResults fills res for the tasks of one call from its answer.
func readResults(cmd *redis.Cmd, tasks []Task, g []int, res []Result) error {
	vals, err := cmd.Int64Slice()
	if err != nil {
		return fmt.Errorf("taskq: write %d tasks: %w", len(g), err)
	}
	if len(vals) != 1+len(g) {
		return fmt.Errorf("taskq: write: %d answers for %d tasks", len(vals), len(g))
	}
	next := vals[0]
	for k, i := range g {
		t := &tasks[i]
		r := Result{Duplicate: vals[1+k] == 0, Stamps: make([]int64, len(t.Ops))}
		for o, op := range t.Ops {
			switch {
			case op.Item.Stamp != 0:
				r.Stamps[o] = op.Item.Stamp
			case !r.Duplicate:
				r.Stamps[o] = next
				next++
			}
		}
		res[i] = r
	}
	return nil
}

// writeSplit writes the tasks of one call on a Redis Cluster: register (and
// stamp) the ops in the workspace's slot, then write the tasks of each
// queue in its slot. A failure after the first step leaves registrations of
// ops that were never queued; the worker treats a registration whose op
// never shows up as an orphan (docs/architecture.md).
func (w *Writer) writeSplit(ctx context.Context, tasks []Task, g []int, res []Result) error {
	ws := tasks[g[0]].Workspace
	var items []idempotency.Item
	for _, i := range g {
		for _, op := range tasks[i].Ops {
			items = append(items, op.Item)
		}
	}
	stamps, err := w.idem.Register(ctx, ws, items)
	if err != nil {
		return fmt.Errorf("taskq: write: %w", err)
	}
	// Give each op its stamp, then write queue by queue.
	stamped := make([]Task, len(tasks))
	copy(stamped, tasks)
	n := 0
	for _, i := range g {
		ops := make([]Op, len(tasks[i].Ops))
		for o, op := range tasks[i].Ops {
			op.Item.Stamp = stamps[n]
			n++
			ops[o] = op
		}
		stamped[i].Ops = ops
	}
	byQueue := map[string][]int{}
	var order []string
	for _, i := range g {
		q := tasks[i].Queue
		if _, ok := byQueue[q]; !ok {
			order = append(order, q)
		}
		byQueue[q] = append(byQueue[q], i)
	}
	for _, q := range order {
		qg := byQueue[q]
		keys, args := w.scriptArgs(stamped, qg, false, TaskKey(q, tasks[qg[0]].ID))
		cmd := enqueueScript.Run(ctx, w.rdb, keys, args...)
		if err := readResults(cmd, stamped, qg, res); err != nil {
			return err
		}
	}
	return nil
}

// noScript reports whether the enqueue script was unknown to Redis (the
// calls did not run).
func noScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if c != nil && c.Err() != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// TaskKey is asynq's key of a task: "asynq:{<queue>}:t:<id>".
func TaskKey(queue, id string) string { return queueKey(queue, "t:"+id) }

func queueKey(queue, rest string) string { return "asynq:{" + queue + "}:" + rest }

// Exists reports whether a task with id exists in queue (pending, active,
// scheduled, retry or archived).
func (w *Writer) Exists(ctx context.Context, queue, id string) (bool, error) {
	n, err := w.rdb.Exists(ctx, TaskKey(queue, id)).Result()
	if err != nil {
		return false, fmt.Errorf("taskq: exists %s: %w", id, err)
	}
	return n == 1, nil
}
