package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/task"
)

// recorder is a send func that records batches and settles each item.
type recorder struct {
	mu      sync.Mutex
	batches [][]string
	result  error
	gate    chan struct{} // when set, sends block until it is closed
}

func (r *recorder) send(_ context.Context, items []*item) {
	if r.gate != nil {
		<-r.gate
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.p.OpID
	}
	r.mu.Lock()
	r.batches = append(r.batches, ids)
	r.mu.Unlock()
	for _, it := range items {
		it.finish("delivered", r.result)
	}
}

func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, len(r.batches))
	for i, b := range r.batches {
		out[i] = len(b)
	}
	return out
}

func newItem(id string, size int) *item {
	return &item{p: &task.Payload{OpID: id, Op: make([]byte, size)}, size: size, done: make(chan error, 1)}
}

// submitAll submits n items concurrently and waits for every result.
func submitAll(t *testing.T, b *batcher, n, size int) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.submit(context.Background(), newItem(string(rune('a'+i%26))+time.Now().String(), size))
		}()
	}
	wg.Wait()
	return errs
}

func TestBatcher(t *testing.T) {
	t.Parallel()

	t.Run("FlushesAtMaxOps", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		never := make(chan time.Time)
		b := newBatcher(BatchConfig{MaxOps: 10, MaxBytes: 1 << 20, MaxWait: time.Hour, MaxInFlight: 1, MaxPending: 100}.withDefaults(), rec.send)
		b.after = func(time.Duration) <-chan time.Time { return never }
		b.start()
		defer b.close()
		errs := submitAll(t, b, 30, 10)
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, []int{10, 10, 10}, rec.sizes())
	})

	t.Run("FlushesBeforeMaxBytes", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		never := make(chan time.Time)
		// Each op is 100 bytes; 5 ops + 4 commas + overhead = 516 > 512, so 4 per batch.
		b := newBatcher(BatchConfig{MaxOps: 100, MaxBytes: 512, MaxWait: time.Hour, MaxInFlight: 1, MaxPending: 100}, rec.send)
		b.after = func(time.Duration) <-chan time.Time { return never }
		b.start()
		done := make(chan struct{})
		go func() { submitAll(t, b, 8, 100); close(done) }()
		// The fifth op does not fit: the first four go out at once; close
		// sends the rest (the wait would never end).
		require.Eventually(t, func() bool { return len(rec.sizes()) == 1 }, 5*time.Second, time.Millisecond)
		require.Eventually(t, func() bool { return b.pending.Load() == 4 && len(b.in) == 0 }, 5*time.Second, time.Millisecond)
		b.close()
		<-done
		for _, n := range rec.sizes() {
			require.LessOrEqual(t, n, 4)
		}
		total := 0
		for _, n := range rec.sizes() {
			total += n
		}
		require.Equal(t, 8, total)
	})

	t.Run("FlushesAtMaxWait", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		fire := make(chan time.Time, 1)
		var waited []time.Duration
		var mu sync.Mutex
		b := newBatcher(BatchConfig{MaxOps: 100, MaxBytes: 1 << 20, MaxWait: 40 * time.Millisecond, MaxInFlight: 1, MaxPending: 100}, rec.send)
		b.after = func(d time.Duration) <-chan time.Time {
			mu.Lock()
			waited = append(waited, d)
			mu.Unlock()
			return fire
		}
		b.start()
		defer b.close()
		res := make(chan error, 1)
		go func() { res <- b.submit(context.Background(), newItem("x", 10)) }()
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(waited) == 1 }, 5*time.Second, time.Millisecond)
		require.Empty(t, rec.sizes(), "nothing is sent before the wait ends")
		fire <- time.Now()
		require.NoError(t, <-res)
		require.Equal(t, []int{1}, rec.sizes())
		require.Equal(t, []time.Duration{40 * time.Millisecond}, waited)
	})

	t.Run("ZeroWaitSendsAtOnce", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		b := newBatcher(BatchConfig{MaxOps: 100, MaxBytes: 1 << 20, MaxWait: 0, MaxInFlight: 1, MaxPending: 100}, rec.send)
		b.after = func(time.Duration) <-chan time.Time { t.Error("a zero-wait batcher must not wait"); return nil }
		b.start()
		defer b.close()
		require.NoError(t, b.submit(context.Background(), newItem("x", 10)))
		require.Equal(t, []int{1}, rec.sizes())
	})

	t.Run("BackpressureDefersWithoutFailure", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{gate: make(chan struct{})}
		b := newBatcher(BatchConfig{MaxOps: 1, MaxBytes: 1 << 20, MaxWait: 0, MaxInFlight: 1, MaxPending: 2}, rec.send)
		b.start()
		res := make(chan error, 2)
		go func() { res <- b.submit(context.Background(), newItem("a", 1)) }()
		go func() { res <- b.submit(context.Background(), newItem("b", 1)) }()
		require.Eventually(t, func() bool { return b.pending.Load() == 2 }, 5*time.Second, time.Millisecond)
		err := b.submit(context.Background(), newItem("c", 1))
		var de *DelayError
		require.True(t, errors.As(err, &de), "got %v", err)
		require.Equal(t, ReasonBackpressure, de.Reason)
		require.False(t, IsFailure(err))
		close(rec.gate)
		require.NoError(t, <-res)
		require.NoError(t, <-res)
		b.close()
	})

	t.Run("ResultReachesEachItem", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		rec := &recorder{result: boom}
		b := newBatcher(BatchConfig{MaxOps: 5, MaxBytes: 1 << 20, MaxWait: time.Millisecond, MaxInFlight: 2, MaxPending: 100}, rec.send)
		b.start()
		defer b.close()
		for _, err := range submitAll(t, b, 12, 1) {
			require.ErrorIs(t, err, boom)
		}
	})

	t.Run("CloseSendsWhatItHolds", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		never := make(chan time.Time)
		b := newBatcher(BatchConfig{MaxOps: 100, MaxBytes: 1 << 20, MaxWait: time.Hour, MaxInFlight: 1, MaxPending: 100}, rec.send)
		b.after = func(time.Duration) <-chan time.Time { return never }
		b.start()
		res := make(chan error, 3)
		for i := range 3 {
			go func() { res <- b.submit(context.Background(), newItem(string(rune('a'+i)), 1)) }()
		}
		require.Eventually(t, func() bool { return len(b.in) == 0 && b.pending.Load() == 3 }, 5*time.Second, time.Millisecond)
		b.close()
		for range 3 {
			require.NoError(t, <-res)
		}
		require.Equal(t, []int{3}, rec.sizes())
	})
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Base: time.Second, Cap: 8 * time.Second}
	for n := range 10 {
		for range 50 {
			d := p.Delay(n, errors.New("x"), nil)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, min(8*time.Second, time.Second<<n))
		}
	}
	d := p.Delay(3, &DelayError{Reason: ReasonBreakerOpen, After: 20 * time.Second}, nil)
	require.GreaterOrEqual(t, d, 20*time.Second)
	require.LessOrEqual(t, d, 22*time.Second)
	require.False(t, IsFailure(&DelayError{}))
	require.True(t, IsFailure(errors.New("x")))
}

// TestBatcherAbort: a send still running when the batcher closes (a Redis
// that does not answer its done-markers) ends when abort cancels the sends'
// context, so a worker's shutdown is bounded.
func TestBatcherAbort(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	b := newBatcher(BatchConfig{MaxOps: 10, MaxBytes: 1 << 20, MaxInFlight: 1, MaxPending: 10}, func(ctx context.Context, items []*item) {
		close(started)
		<-ctx.Done()
		for _, it := range items {
			it.finish("delivered", nil)
		}
	})
	b.start()
	it := newItem("a", 10)
	go func() { _ = b.submit(context.Background(), it) }()
	<-started
	closed := make(chan struct{})
	go func() { b.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while a send was running")
	case <-time.After(50 * time.Millisecond):
	}
	b.abort()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("abort did not end the running send")
	}
}
