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
	// gen builds op i; nil means feed.op. An op without a "seq" attribute
	// (delete, suppress, unsuppress) is not counted in sent, only in ops.
	gen func(i int) producer.Op

	mu          sync.Mutex
	sent        map[string]bool // seq → queued (or spooled) by the producer
	ops         []track.Op      // the ops queued, in the order the producer took them
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
	if f.gen != nil {
		op = f.gen(i)
	}
	// The op's timestamp, fixed once: the state Customer.io ends with is
	// checked against the ops as they were sent.
	if op.Timestamp.IsZero() {
		op.Timestamp = time.Now()
	}
	for {
		res, err := p.Enqueue(ctx, op)
		if err == nil {
			f.mu.Lock()
			if _, ok := op.Attributes["seq"]; ok {
				f.sent[op.Key] = true
			}
			sent := op.Op
			sent.Timestamp = op.Timestamp.Unix()
			f.ops = append(f.ops, sent)
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

// sentOps returns the ops cioq took, in order, but those whose seq is in
// skip (dead-lettered: they never took effect).
func (f *feed) sentOps(skip map[string]bool) []track.Op {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]track.Op, 0, len(f.ops))
	for _, op := range f.ops {
		if s, _ := op.Attributes["seq"].(string); !skip[s] {
			out = append(out, op)
		}
	}
	return out
}

// record notes ops taken another way (ingest), in order.
func (f *feed) record(ops ...track.Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, op := range ops {
		if s, ok := op.Attributes["seq"].(string); ok {
			f.sent[s] = true
		}
		f.ops = append(f.ops, op)
	}
	f.last = time.Now()
}

// obsolete returns the seqs of ops a later delete or suppress of their
// person makes obsolete, or that were queued while their person was
// suppressed: cioq drops them instead of sending them (Customer.io would
// not keep their effect), so they are neither delivered nor lost.
func (f *feed) obsolete() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	pending := map[string][]string{} // person → seqs since its last delete/suppress
	suppressed := map[string]bool{}
	for _, op := range f.ops {
		person := op.Person().Key()
		switch op.Action {
		case track.ActionDelete, track.ActionSuppress:
			for _, s := range pending[person] {
				out[s] = true
			}
			pending[person] = nil
			if op.Action == track.ActionSuppress {
				suppressed[person] = true
			}
			continue
		case track.ActionUnsuppress:
			suppressed[person] = false
			continue
		}
		if s, ok := op.Attributes["seq"].(string); ok {
			if suppressed[person] {
				out[s] = true
			}
			pending[person] = append(pending[person], s)
		}
	}
	return out
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
