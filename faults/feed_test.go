package faults_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// feed enqueues ops with unique content and remembers which ones cioq took.
// Op i is an identify (one in five) or an event of person i%100, and carries
// the attribute "seq" = run-i, which names it in the fake's request log.
type feed struct {
	run string

	mu          sync.Mutex
	sent        map[string]bool // seq → queued (or spooled) by the producer
	spooled     int
	unavailable int       // ErrUnavailable answers, each retried with the same key
	last        time.Time // when the last op was taken
}

func newFeed(run string) *feed {
	return &feed{run: run, sent: map[string]bool{}}
}

func (f *feed) seq(i int) string { return fmt.Sprintf("%s-%05d", f.run, i) }

// op builds op i. Its idempotency key is its seq, so enqueueing it again
// after ErrUnavailable is safe (a repeat is Result.Duplicate).
func (f *feed) op(i int) producer.Op {
	seq := f.seq(i)
	op := track.Op{
		Identifiers: &track.Identifiers{ID: fmt.Sprintf("%s-p%d", f.run, i%100)},
		Attributes:  map[string]any{"seq": seq, "n": i},
	}
	if i%5 == 0 {
		op.Action = track.ActionIdentify
	} else {
		op.Action, op.Name = track.ActionEvent, "fault_event"
	}
	return producer.Op{Op: op, Key: seq}
}

// enqueue enqueues op i, retrying while Redis is unavailable (as an
// application following the producer's contract does) until ctx ends.
func (f *feed) enqueue(ctx context.Context, p *producer.Producer, i int) error {
	op := f.op(i)
	for {
		res, err := p.Enqueue(ctx, op)
		if err == nil {
			f.mu.Lock()
			f.sent[op.Key] = true
			f.last = time.Now()
			if res.Spooled {
				f.spooled++
			}
			f.mu.Unlock()
			return nil
		}
		if !errors.Is(err, producer.ErrUnavailable) || errors.Is(err, producer.ErrSpoolFull) || ctx.Err() != nil {
			return fmt.Errorf("enqueue %s: %w", op.Key, err)
		}
		f.mu.Lock()
		f.unavailable++
		f.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// stream enqueues ops [from, from+n) at rate ops/s, in order.
func (f *feed) stream(ctx context.Context, p *producer.Producer, from, n int, rate float64) error {
	start := time.Now()
	for k := range n {
		if d := time.Until(start.Add(time.Duration(float64(k) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		if err := f.enqueue(ctx, p, from+k); err != nil {
			return err
		}
	}
	return nil
}

// goStream runs stream in the background; the returned func waits for it.
func (f *feed) goStream(ctx context.Context, p *producer.Producer, from, n int, rate float64) func() error {
	errc := make(chan error, 1)
	go func() { errc <- f.stream(ctx, p, from, n, rate) }()
	return func() error { return <-errc }
}

// sentSeqs returns a copy of the seqs cioq took.
func (f *feed) sentSeqs() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]bool, len(f.sent))
	for k := range f.sent {
		out[k] = true
	}
	return out
}

// add records seqs queued another way (cioq import).
func (f *feed) add(seqs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range seqs {
		f.sent[s] = true
	}
	f.last = time.Now()
}

// lastSent returns when the last op was taken.
func (f *feed) lastSent() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}
