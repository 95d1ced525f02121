package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cioq/cioq/internal/task"
)

// batchOverhead is the size of `{"batch":[` + `]}` around the ops.
const batchOverhead = len(`{"batch":[]}`)

// item is one op waiting in a batcher for its own result.
type item struct {
	p    *task.Payload
	size int
	// attempt is asynq's retry count for the task (0 on first delivery):
	// its counted failures so far.
	attempt int
	// maxRetry is asynq's retry count limit for the task (exhaust.go).
	maxRetry int
	// done receives exactly one result: nil when the op is settled
	// (delivered, skipped, dropped or dead-lettered), a *DelayError to send it
	// back without a failure, any other error to retry it with backoff.
	done chan error
	// outcome is the metrics label of a nil result.
	outcome string
	// obs carries the op's trace span and history events (history.go).
	obs opObs
}

func (it *item) finish(outcome string, err error) {
	it.outcome = outcome
	it.done <- err
}

// batcher coalesces the ops of one workspace and lane into v2 batch requests.
// It flushes at MaxOps ops, at MaxBytes of body, or MaxWait after the first op
// of a batch arrived (at once when MaxWait is zero), and runs at most
// MaxInFlight sends at a time; a full set of sends holds further flushes back,
// which is the backpressure that keeps batches full under load.
type batcher struct {
	cfg     BatchConfig
	in      chan *item
	send    func(ctx context.Context, items []*item)
	sem     chan struct{}
	pending atomic.Int64
	// after returns a channel that fires after d (time.After; tests inject).
	after func(d time.Duration) <-chan time.Time

	stopOnce sync.Once
	stop     chan struct{}
	loopDone chan struct{}
	sends    sync.WaitGroup
	// ctx is every send's context; abort cancels it, ending a send's
	// request and its done-marker retries at a hard stop.
	ctx   context.Context
	abort context.CancelFunc
}

func newBatcher(cfg BatchConfig, send func(ctx context.Context, items []*item)) *batcher {
	b := &batcher{
		cfg:      cfg,
		in:       make(chan *item, cfg.MaxOps),
		send:     send,
		sem:      make(chan struct{}, cfg.MaxInFlight),
		after:    time.After,
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	b.ctx, b.abort = context.WithCancel(context.Background())
	return b
}

// start runs the batching loop until close.
func (b *batcher) start() { go b.loop() }

// submit hands an op to the batcher and waits for its own result. When the
// batcher already holds MaxPending ops it refuses at once with a
// backpressure DelayError, so one slow workspace cannot hold every handler
// slot of the server.
func (b *batcher) submit(ctx context.Context, it *item) error {
	if b.pending.Add(1) > int64(b.cfg.MaxPending) {
		b.pending.Add(-1)
		return &DelayError{Reason: ReasonBackpressure, After: time.Second}
	}
	defer b.pending.Add(-1)
	select {
	case <-b.stop:
		return &DelayError{Reason: ReasonShutdown, After: time.Second}
	default:
	}
	select {
	case b.in <- it:
	case <-b.stop:
		return &DelayError{Reason: ReasonShutdown, After: time.Second}
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		// The op may still be sent; its done-marker makes a redelivery harmless.
		return ctx.Err()
	}
}

func (b *batcher) loop() {
	defer close(b.loopDone)
	var (
		buf   []*item
		bytes = batchOverhead
		timer <-chan time.Time
	)
	flush := func() {
		if len(buf) == 0 {
			return
		}
		batch := buf
		buf, bytes, timer = nil, batchOverhead, nil
		b.sem <- struct{}{}
		b.sends.Add(1)
		go func() {
			defer func() { <-b.sem; b.sends.Done() }()
			b.send(b.ctx, batch)
		}()
	}
	add := func(it *item) {
		if len(buf) > 0 && bytes+1+it.size > b.cfg.MaxBytes {
			flush()
		}
		if len(buf) > 0 {
			bytes++ // the comma
		}
		buf = append(buf, it)
		bytes += it.size
		if len(buf) >= b.cfg.MaxOps || bytes >= b.cfg.MaxBytes {
			flush()
		}
	}
	for {
		select {
		case it := <-b.in:
			add(it)
			if b.cfg.MaxWait <= 0 {
				// Take what is already waiting, then send without delay.
				for drained := false; !drained; {
					select {
					case it := <-b.in:
						add(it)
					default:
						drained = true
					}
				}
				flush()
			} else if len(buf) == 1 {
				timer = b.after(b.cfg.MaxWait)
			}
		case <-timer:
			flush()
		case <-b.stop:
			// Send what is held, then refuse the rest.
			for drained := false; !drained; {
				select {
				case it := <-b.in:
					add(it)
				default:
					drained = true
				}
			}
			flush()
			return
		}
	}
}

// close stops the loop, sends what it holds and waits for every send (abort
// from another goroutine cuts the wait short).
func (b *batcher) close() {
	defer b.abort()
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.loopDone
	for drained := false; !drained; {
		select {
		case it := <-b.in:
			it.finish("", &DelayError{Reason: ReasonShutdown, After: time.Second})
		default:
			drained = true
		}
	}
	b.sends.Wait()
}
