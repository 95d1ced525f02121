package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// spoolSink puts ops into Redis while it answers within the budget, and
// into the on-disk spool otherwise. One background loop replays the spool
// into Redis, in order, and a second one syncs it (FsyncInterval).
type spoolSink struct {
	live    sink // redisSink
	sp      *spool
	budget  time.Duration
	timeout time.Duration // one replay attempt
	probe   time.Duration
	log     *slog.Logger

	final    chan chan struct{} // Close asks the loop for one last pass
	cancel   context.CancelFunc // stops the loops
	done     chan struct{}      // the replay loop ended
	syncDone chan struct{}      // the sync loop ended
	attempts sync.WaitGroup     // Redis attempts of put still running
}

func newSpoolSink(live sink, sp *spool, cfg Config) *spoolSink {
	ctx, cancel := context.WithCancel(context.Background())
	s := &spoolSink{
		live: live, sp: sp, log: cfg.Logger,
		budget: cfg.Spool.Budget, timeout: cfg.Timeout, probe: cfg.Spool.ProbeInterval,
		final: make(chan chan struct{}), cancel: cancel,
		done: make(chan struct{}), syncDone: make(chan struct{}),
	}
	go s.replayLoop(ctx)
	if cfg.Spool.Fsync == FsyncInterval {
		go s.syncLoop(ctx, cfg.Spool.FsyncInterval)
	} else {
		close(s.syncDone)
	}
	return s
}

// put tries Redis for at most the budget, then spools e. While the spool
// holds ops (or Redis just failed) it spools at once, so no op overtakes an
// older spooled one. Only a full spool (or a failing disk) is an error, and
// a context done before Redis answered (the outcome is then unknown, as
// without a spool).
func (s *spoolSink) put(ctx context.Context, es []*entry) ([]stored, error) {
	if s.sp.isDegraded() {
		return s.spool(es)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel() // an attempt past the budget is abandoned
	type outcome struct {
		st  []stored
		err error
	}
	ch := make(chan outcome, 1)
	s.attempts.Add(1)
	go func() {
		defer s.attempts.Done()
		st, err := s.live.put(actx, es)
		ch <- outcome{st, err}
	}()
	timer := time.NewTimer(s.budget)
	defer timer.Stop()
	var cause error
	select {
	case o := <-ch:
		if o.err == nil {
			return o.st, nil
		}
		if ctx.Err() != nil {
			return nil, o.err
		}
		cause = o.err
	case <-timer.C:
		select {
		case o := <-ch: // answered at the same moment: keep a success
			if o.err == nil {
				return o.st, nil
			}
			cause = o.err
		default:
			cause = fmt.Errorf("no answer from Redis within the %s budget", s.budget)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer from Redis in time: %w", context.Cause(ctx))
	}
	if s.sp.markDegraded() {
		s.log.WarnContext(ctx, "redis unavailable; spooling ops to disk", slog.String("error", cause.Error()))
	}
	return s.spool(es)
}

func (s *spoolSink) spool(es []*entry) ([]stored, error) {
	if err := s.sp.append(es); err != nil {
		return nil, err
	}
	out := make([]stored, len(es))
	for i := range out {
		out[i].spooled = true
	}
	return out, nil
}

// replayLoop replays the spool whenever it holds ops: at once when
// started, then every probe interval; Close asks for one last pass.
func (s *spoolSink) replayLoop(ctx context.Context) {
	defer close(s.done)
	rd := &spoolReader{}
	defer rd.reset()
	tick := time.NewTicker(s.probe)
	defer tick.Stop()
	failing := false
	for {
		if s.sp.isDegraded() {
			failing = !s.replay(ctx, rd, failing)
		}
		select {
		case <-ctx.Done():
			return
		case reply := <-s.final:
			if s.sp.isDegraded() {
				s.replay(ctx, rd, failing)
			}
			close(reply)
		case <-tick.C:
		}
	}
}

// replay puts spooled ops into Redis, oldest first, until the spool is
// empty (it reports true) or Redis fails or ctx ends (false). failing says
// the last pass failed: the first failure of an outage is logged, not every
// probe.
func (s *spoolSink) replay(ctx context.Context, rd *spoolReader, failing bool) bool {
	n := 0
	for ctx.Err() == nil {
		rec, ok, err := s.sp.next(rd)
		if err != nil {
			s.log.ErrorContext(ctx, "spool read failed", slog.String("error", err.Error()))
			return false
		}
		if !ok {
			drained, err := s.sp.drain(rd)
			if err != nil {
				s.log.ErrorContext(ctx, "spool cleanup failed", slog.String("error", err.Error()))
			}
			if drained {
				if n > 0 || failing {
					s.log.InfoContext(ctx, "spool replayed; enqueueing to Redis again", slog.Int("ops", n))
				}
				return true
			}
			if s.sp.isClosed() {
				return false
			}
			continue // an op was appended meanwhile
		}
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		_, err = s.live.put(actx, rec.es)
		cancel()
		if err != nil {
			if !failing && ctx.Err() == nil {
				s.log.WarnContext(ctx, "spool replay paused: redis unavailable", slog.Int("replayed", n),
					slog.String("error", err.Error()))
			}
			return false
		}
		s.sp.ack(rd, rec)
		n++
	}
	return false
}

func (s *spoolSink) syncLoop(ctx context.Context, every time.Duration) {
	defer close(s.syncDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := s.sp.sync(); err != nil {
				s.log.ErrorContext(ctx, "spool sync failed", slog.String("error", err.Error()))
			}
		}
	}
}

// close makes one last replay pass within ctx (when Redis answers it
// replays until the spool is empty), stops the loops and closes the spool;
// what was not replayed stays on disk. Then it closes the live sink.
func (s *spoolSink) close(ctx context.Context) error {
	var errs []error
	attempts := make(chan struct{})
	go func() {
		s.attempts.Wait()
		close(attempts)
	}()
	reply := make(chan struct{})
	select {
	case s.final <- reply:
		select {
		case <-reply:
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	s.cancel()
	for _, ch := range []chan struct{}{s.done, s.syncDone, attempts} {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	if err := s.sp.close(); err != nil {
		errs = append(errs, fmt.Errorf("producer: close spool: %w", err))
	}
	if st := s.sp.stats(); st.Depth > 0 {
		s.log.WarnContext(ctx, "spool not empty at close; replayed at the next start",
			slog.String("dir", s.sp.cfg.Dir), slog.Int64("ops", st.Depth))
	}
	if err := s.live.close(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *spool) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
