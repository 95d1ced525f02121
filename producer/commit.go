package producer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/taskq"
)

// Group commit. Concurrent enqueues share one Redis round trip: a few
// committer goroutines each take the first waiting request, add every
// other request already waiting (up to commitMaxOps ops), and write them
// all in one pipelined call (one enqueue script per workspace), then answer
// each caller with its own results. A lone caller waits for nobody: its
// request goes out as soon as a committer is free.
const (
	// commitWriters is how many writes may be in flight at once.
	commitWriters = 4
	// commitMaxOps bounds the ops of one combined write.
	commitMaxOps = 1024
)

// commitReq is one caller's unit, waiting for its write.
type commitReq struct {
	unit taskq.Unit
	// hist seeds the history of the unit's ops, written in the same round
	// trip (nil when history is off).
	hist map[string][]history.Record
	done chan struct{}
}

// committer runs the group commit of one Producer.
type committer struct {
	w       *taskq.Writer
	hist    *history.Store // nil when history is off
	log     *slog.Logger
	timeout time.Duration
	in      chan *commitReq

	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
}

// errCommitterClosed answers a request made after close.
var errCommitterClosed = errors.New("producer: closing")

func newCommitter(w *taskq.Writer, hist *history.Store, log *slog.Logger, timeout time.Duration) *committer {
	c := &committer{w: w, hist: hist, log: log, timeout: timeout, in: make(chan *commitReq, 4*commitMaxOps), stop: make(chan struct{})}
	for range commitWriters {
		c.wg.Go(c.loop)
	}
	return c
}

// write writes tasks as one unit and waits for its results or for ctx. A
// write that outlives ctx is left to finish on its own: its tasks may be
// queued, which a retry reports as duplicates.
func (c *committer) write(ctx context.Context, tasks []taskq.Task, hist map[string][]history.Record) ([]taskq.Result, error) {
	r := &commitReq{unit: taskq.Unit{Tasks: tasks}, hist: hist, done: make(chan struct{})}
	select {
	case c.in <- r:
	case <-c.stop:
		return nil, errCommitterClosed
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	select {
	case <-r.done:
		return r.unit.Results, r.unit.Err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (c *committer) loop() {
	for {
		var first *commitReq
		select {
		case first = <-c.in:
		case <-c.stop:
			// Answer what is still waiting, then stop.
			for {
				select {
				case r := <-c.in:
					c.flush([]*commitReq{r})
				default:
					return
				}
			}
		}
		batch := []*commitReq{first}
		n := opsOf(first)
	gather:
		for n < commitMaxOps {
			select {
			case r := <-c.in:
				batch = append(batch, r)
				n += opsOf(r)
			default:
				break gather
			}
		}
		c.flush(batch)
	}
}

func opsOf(r *commitReq) int {
	n := 0
	for _, t := range r.unit.Tasks {
		n += len(t.Ops)
	}
	return n
}

func (c *committer) flush(batch []*commitReq) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	units := make([]*taskq.Unit, len(batch))
	hist := map[string][]history.Record{}
	for i, r := range batch {
		units[i] = &r.unit
		for ws, recs := range r.hist {
			hist[ws] = append(hist[ws], recs...)
		}
	}
	var also func(redis.Pipeliner)
	var cmds []*redis.Cmd
	if c.hist != nil && len(hist) > 0 {
		also = func(p redis.Pipeliner) {
			cmds = cmds[:0]
			for ws, recs := range hist {
				cmd, err := c.hist.AppendPipe(ctx, p, ws, recs)
				if err != nil {
					c.log.WarnContext(ctx, "op history not written", "workspace", ws, "ops", len(recs), "error", err.Error())
				} else if cmd != nil {
					cmds = append(cmds, cmd)
				}
			}
		}
	}
	_ = c.w.Write(ctx, also, units...)
	var herr error
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			herr = err
			break
		}
	}
	if herr != nil && redis.HasErrorPrefix(herr, "NOSCRIPT") {
		// Redis lost the script (a restart): write it the slow way once,
		// which loads it again.
		herr = nil
		for ws, recs := range hist {
			if err := c.hist.Append(ctx, ws, recs); err != nil {
				herr = err
			}
		}
	}
	if herr != nil {
		// History is a record, not delivery: log it and go on.
		c.log.WarnContext(ctx, "op history not written", "error", herr.Error())
	}
	for _, r := range batch {
		close(r.done)
	}
}

// close stops the committers once the requests already handed over are
// answered.
func (c *committer) close() {
	c.closeOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
}
