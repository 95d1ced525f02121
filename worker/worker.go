package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// runtimeConfig is Config after defaults plus derived values.
type runtimeConfig struct {
	Config
	claimTTL time.Duration
}

// Worker delivers queued ops to Customer.io: one asynq server for the
// critical lane, Servers for the default lane, and per workspace two
// batchers (critical and default) whose requests go through the shared
// limiter, the breaker and the done-marker store.
type Worker struct {
	cfg      runtimeConfig
	log      *slog.Logger
	m        *metrics.Worker
	idem     *idempotency.Store
	limiter  *ratelimit.Limiter
	breakers *breaker.Set
	dlq      *DeadLetters
	ws       map[string]*workspace
	servers  []*asynq.Server
	obs      observer // history and tracing (history.go)

	mu      sync.Mutex
	started bool
	stopped bool
}

// New builds a worker; Start runs it.
func New(cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg: runtimeConfig{Config: cfg, claimTTL: cfg.ClaimTTL},
		log: cfg.Logger,
		m:   metrics.NewWorker(cfg.Registerer),
		ws:  map[string]*workspace{},
	}
	if w.cfg.claimTTL <= 0 {
		w.cfg.claimTTL = idempotency.DefaultClaimTTL
	}
	w.idem = idempotency.New(cfg.Client, idempotency.Config{
		Prefix: cfg.KeyPrefix, DoneTTL: cfg.DoneTTL, ClaimTTL: w.cfg.claimTTL, TombstoneTTL: cfg.TombstoneTTL,
	})
	w.limiter = ratelimit.New(cfg.Client, ratelimit.Config{Prefix: cfg.KeyPrefix, Logger: cfg.Logger,
		OnRate: func(ws string, rate float64) { w.m.RateEffective.WithLabelValues(ws).Set(rate) }})
	w.breakers = breaker.New(breaker.Config{
		Failures: cfg.BreakerFailures, Successes: cfg.BreakerSuccesses, OpenTimeout: cfg.BreakerTimeout,
		IsFailure: countsForBreaker, Redis: cfg.Client, Prefix: cfg.KeyPrefix, Logger: cfg.Logger,
		OnStateChange: w.breakerChanged,
	})
	w.dlq = NewDeadLetters(cfg.Client, cfg.KeyPrefix, cfg.DeadLetterMax)
	for _, wc := range cfg.Workspaces {
		ws := &workspace{name: wc.Name, sender: wc.Sender, limit: wc.Limit, w: w,
			inflight: w.m.InFlight.WithLabelValues(wc.Name), ops: map[opsKey]prometheus.Counter{}}
		crit := wc.Batch
		crit.MaxWait = 0 // critical ops never wait for company
		// Few sends in flight: while one waits for a token under a tight
		// budget, the critical ops behind it gather into the next request
		// instead of each spending a token of the reserved share.
		crit.MaxInFlight = min(crit.MaxInFlight, DefaultCriticalInFlight)
		if len(cfg.Workspaces) > 1 {
			crit.MaxPending = min(crit.MaxPending, max(1, cfg.CriticalConcurrency/len(cfg.Workspaces)))
		}
		ws.critical = newBatcher(crit, func(ctx context.Context, items []*item) { ws.send(ctx, true, items) })
		ws.bulk = newBatcher(wc.Batch, func(ctx context.Context, items []*item) { ws.send(ctx, false, items) })
		w.ws[wc.Name] = ws
		w.m.BreakerState.WithLabelValues(wc.Name).Set(0)
		w.m.Unauthorized.WithLabelValues(wc.Name).Set(0)
		w.m.RateBudget.WithLabelValues(wc.Name).Set(wc.Limit.Rate)
		w.m.RateEffective.WithLabelValues(wc.Name).Set(wc.Limit.Rate) // until the limiter says otherwise
	}
	if err := w.initObserver(); err != nil {
		return nil, err
	}
	return w, nil
}

// countsForBreaker: only 5xx, 408, timeouts and network errors count as
// breaker failures; 4xx and 429 do not.
func countsForBreaker(err error) bool {
	return errors.Is(err, track.ErrServer) || errors.Is(err, track.ErrTransport)
}

func (w *Worker) breakerChanged(ws string, from, to gobreaker.State) {
	v := map[gobreaker.State]float64{gobreaker.StateClosed: 0, gobreaker.StateHalfOpen: 1, gobreaker.StateOpen: 2}[to]
	w.m.BreakerState.WithLabelValues(ws).Set(v)
	w.log.Warn("circuit breaker changed state", "workspace", ws, "from", from.String(), "to", to.String())
}

// Handler returns the asynq handler for op tasks: it decodes the payload,
// hands the op to its workspace's batcher and waits for the op's own result.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	h := asynq.HandlerFunc(w.processTask)
	for _, a := range track.Actions {
		mux.Handle(task.TypeName(a), h)
	}
	mux.Handle(task.TypeBulk, asynq.HandlerFunc(w.processBulk)) // bulk.go
	return mux
}

func (w *Worker) processTask(ctx context.Context, t *asynq.Task) error {
	p, err := task.FromTask(t)
	if err != nil {
		// A payload cioq cannot read will never become readable.
		w.log.ErrorContext(ctx, "undecodable task", "type", t.Type(), "error", err.Error())
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	ws := w.ws[p.Workspace]
	if ws == nil {
		w.m.Unknown.Inc()
		w.log.ErrorContext(ctx, "task for a workspace this worker does not serve", "workspace", p.Workspace, "op_id", p.OpID)
		return &DelayError{Reason: ReasonUnknown, After: time.Minute}
	}
	attempt, _ := asynq.GetRetryCount(ctx)
	it := &item{p: p, size: len(p.Op), attempt: attempt, done: make(chan error, 1)}
	ctx, end := w.observeTask(ctx, t, it)
	ws.inflight.Inc()
	err = ws.laneOf(p.Action.IsCritical()).submit(ctx, it)
	ws.inflight.Dec()
	outcome := it.outcome
	var de *DelayError
	switch {
	case errors.As(err, &de):
		outcome = metrics.OutcomeDeferred
		if de.Reason == ReasonBackpressure || de.Reason == ReasonShutdown {
			w.m.Deferred.WithLabelValues(ws.name, de.Reason).Inc()
		}
	case err != nil:
		outcome = metrics.OutcomeRetry
	}
	end(err)
	if outcome != "" {
		ws.opsCounter(p.Action, outcome).Inc()
	}
	return err
}

// Start starts the batchers and the asynq servers.
func (w *Worker) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("worker: already started")
	}
	w.started = true
	for _, ws := range w.ws {
		ws.critical.start()
		ws.bulk.start()
	}
	logger := &asynqLogger{l: w.log}
	base := asynq.Config{
		RetryDelayFunc:           w.cfg.Retry.Delay,
		IsFailure:                IsFailure,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		TaskCheckInterval:        w.cfg.TaskCheckInterval,
		DelayedTaskCheckInterval: w.cfg.DelayedTaskCheckInterval,
		Logger:                   logger,
		LogLevel:                 asynq.WarnLevel,
	}
	critQueues, defQueues := map[string]int{}, map[string]int{}
	for _, wc := range w.cfg.Workspaces {
		c, d := task.Lanes(wc.Name)
		critQueues[c], defQueues[d] = wc.Weight, wc.Weight
	}
	crit := base
	crit.Concurrency = w.cfg.CriticalConcurrency
	crit.Queues = critQueues
	crit.TaskCheckInterval = min(w.cfg.TaskCheckInterval, 20*time.Millisecond)
	w.servers = append(w.servers, asynq.NewServer(w.cfg.Redis, crit))
	for i := 0; i < w.cfg.Servers; i++ {
		def := base
		def.Concurrency = w.cfg.Concurrency
		def.Queues = defQueues
		w.servers = append(w.servers, asynq.NewServer(w.cfg.Redis, def))
	}
	w.servers = append(w.servers, w.bulkServer(base)) // bulk.go
	h := w.Handler()
	for i, s := range w.servers {
		if err := s.Start(h); err != nil {
			for _, started := range w.servers[:i] {
				started.Shutdown()
			}
			return fmt.Errorf("worker: start server: %w", err)
		}
	}
	w.log.Info("worker started", "workspaces", len(w.ws), "servers", len(w.servers),
		"concurrency", w.cfg.Concurrency, "critical_concurrency", w.cfg.CriticalConcurrency)
	return nil
}

// Shutdown stops dequeuing, lets in-flight handlers finish (their batches are
// sent) within ShutdownTimeout, returns unfinished tasks to the queue, and
// stops the batchers. Safe to call more than once.
func (w *Worker) Shutdown() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started || w.stopped {
		return
	}
	w.stopped = true
	var wg sync.WaitGroup
	for _, s := range w.servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Shutdown() }()
	}
	wg.Wait()
	for _, ws := range w.ws {
		ws.critical.close()
		ws.bulk.close()
	}
	w.log.Info("worker stopped")
}

// DeadLetters returns the worker's dead-letter store.
func (w *Worker) DeadLetters() *DeadLetters { return w.dlq }

// Ping checks that Redis answers (readiness).
func (w *Worker) Ping(ctx context.Context) error { return w.cfg.Client.Ping(ctx).Err() }

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a *asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a *asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a *asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a *asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a *asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}
