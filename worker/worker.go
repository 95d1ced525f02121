package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/internal/taskq"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// runtimeConfig is Config after defaults plus derived values.
type runtimeConfig struct {
	Config
	claimTTL time.Duration
}

// Worker delivers queued ops to Customer.io: one asynq server for the
// critical lane, Servers for the default lane, one for the bulk lane, and
// per workspace and API two batchers (critical and live) whose requests go
// through the layered send path (layers.go). Track ops and Pipelines calls
// of a workspace share its lanes and its per-person order but never a
// request.
type Worker struct {
	cfg      runtimeConfig
	log      *slog.Logger
	m        *metrics.Worker
	idem     claimStore
	limiter  rateLimiter
	breakers circuits
	queue    *taskq.Writer // re-queues the failed ops of bulk tasks
	dlq      *DeadLetters
	letters  deadLetterStore       // dlq, as the send path uses it
	ws       map[string]*workspace // the Track runtime of each workspace
	pl       map[string]*workspace // the Pipelines runtime of each workspace that has a Pipelines sender
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
		pl:  map[string]*workspace{},
	}
	if w.cfg.claimTTL <= 0 {
		w.cfg.claimTTL = idempotency.DefaultClaimTTL
	}
	idem := idempotency.New(cfg.Client, idempotency.Config{
		Prefix: cfg.KeyPrefix, DoneTTL: cfg.DoneTTL, ClaimTTL: w.cfg.claimTTL, TombstoneTTL: cfg.TombstoneTTL,
	})
	w.idem = idem
	w.queue = taskq.New(cfg.Client, idem)
	w.limiter = ratelimit.New(cfg.Client, ratelimit.Config{Prefix: cfg.KeyPrefix, Logger: cfg.Logger,
		OnRate: func(ws string, rate float64) { w.m.RateEffective.WithLabelValues(ws).Set(rate) }})
	w.breakers = breaker.New(breaker.Config{
		Failures: cfg.BreakerFailures, Successes: cfg.BreakerSuccesses, OpenTimeout: cfg.BreakerTimeout,
		IsFailure: countsForBreaker, Redis: cfg.Client, Prefix: cfg.KeyPrefix, Logger: cfg.Logger,
		OnStateChange: w.breakerChanged,
	})
	w.dlq = NewDeadLetters(cfg.Client, DeadLetterConfig{Prefix: cfg.KeyPrefix, Max: cfg.DeadLetterMax, TombstoneTTL: cfg.TombstoneTTL})
	w.letters = w.dlq
	for _, wc := range cfg.Workspaces {
		waiting := new(atomic.Int32)
		w.ws[wc.Name] = w.newRuntime(wc, task.APITrack, wc.Sender, wc.Limit, wc.Name, wc.Batch, waiting)
		if wc.Pipelines == nil {
			continue
		}
		limit, limitKey := wc.Limit, wc.Name // one budget for both APIs
		if wc.PipelinesLimit.Rate > 0 {
			limit, limitKey, waiting = wc.PipelinesLimit, wc.Name+pipelinesSuffix, new(atomic.Int32)
		}
		b := wc.Batch
		b.MaxBytes = min(b.MaxBytes, cdp.MaxBatchBytes)
		w.pl[wc.Name] = w.newRuntime(wc, task.APIPipelines, wc.Pipelines, limit, limitKey, b, waiting)
	}
	if err := w.initObserver(); err != nil {
		return nil, err
	}
	return w, nil
}

// pipelinesSuffix names the circuit breaker (and, with a budget of their
// own, the rate budget) of a workspace's Pipelines requests: name +
// "/pipelines" ('/' is not allowed in a workspace name, so it never names a
// workspace).
const pipelinesSuffix = "/pipelines"

// newRuntime builds the runtime of workspace wc and api: its batchers and
// send path, sending with sender under limit (named limitKey in the
// limiter), batches bounded by b.
func (w *Worker) newRuntime(wc Workspace, api task.API, sender Sender, limit ratelimit.Limit, limitKey string,
	b BatchConfig, waiting *atomic.Int32) *workspace {
	cfg := w.cfg
	ws := &workspace{name: wc.Name, api: api, sender: sender, budget: limit, limitKey: limitKey,
		breakerKey: wc.Name, w: w, liveWaiting: waiting,
		inflight: w.m.InFlight.WithLabelValues(wc.Name), ops: map[opsKey]prometheus.Counter{}}
	if api == task.APIPipelines {
		ws.breakerKey = wc.Name + pipelinesSuffix
	}
	crit := b
	crit.MaxWait = 0 // critical ops never wait for company
	// Few sends in flight: while one waits for a token under a tight
	// budget, the critical ops behind it gather into the next request
	// instead of each spending a token of the reserved share.
	crit.MaxInFlight = min(crit.MaxInFlight, DefaultCriticalInFlight)
	if len(cfg.Workspaces) > 1 {
		crit.MaxPending = min(crit.MaxPending, max(1, cfg.CriticalConcurrency/len(cfg.Workspaces)))
	}
	ws.critical = newBatcher(crit, func(ctx context.Context, items []*item) { ws.send(ctx, laneCritical, items) })
	ws.live = newBatcher(b, func(ctx context.Context, items []*item) { ws.send(ctx, laneLive, items) })
	ws.sendFn = ws.guard(ws.limit(ws.execute(ws.observe(ws.transport()))))
	w.m.BreakerState.WithLabelValues(wc.Name, api.String()).Set(0)
	w.m.Unauthorized.WithLabelValues(wc.Name, api.String()).Set(0)
	// The rate gauges are named by the budget's limiter key: the workspace,
	// or "<workspace>/pipelines" for a Pipelines budget of its own.
	w.m.RateBudget.WithLabelValues(limitKey).Set(limit.Rate)
	w.m.RateEffective.WithLabelValues(limitKey).Set(limit.Rate) // until the limiter says otherwise
	return ws
}

// runtimes returns every runtime: each workspace's Track runtime, then its
// Pipelines runtime when it has one.
func (w *Worker) runtimes() []*workspace {
	out := make([]*workspace, 0, len(w.ws)+len(w.pl))
	for name, ws := range w.ws {
		out = append(out, ws)
		if pl := w.pl[name]; pl != nil {
			out = append(out, pl)
		}
	}
	return out
}

func (w *Worker) breakerChanged(key string, from, to gobreaker.State) {
	v := map[gobreaker.State]float64{gobreaker.StateClosed: 0, gobreaker.StateHalfOpen: 1, gobreaker.StateOpen: 2}[to]
	ws, api := key, task.APITrack
	if name, ok := strings.CutSuffix(key, pipelinesSuffix); ok {
		ws, api = name, task.APIPipelines
	}
	w.m.BreakerState.WithLabelValues(ws, api.String()).Set(v)
	w.log.Warn("circuit breaker changed state", "workspace", ws, "api", api.String(), "from", from.String(), "to", to.String())
}

// Handler returns the asynq handler for op tasks: it decodes the payload,
// hands the op to its workspace's batcher and waits for the op's own result.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	h := asynq.HandlerFunc(w.processTask)
	for _, api := range task.APIs {
		for _, a := range track.Actions() {
			mux.Handle(task.TypeNameOf(api, a), h)
		}
		mux.Handle(task.BulkTypeName(api), asynq.HandlerFunc(w.processBulk)) // bulk.go
	}
	return mux
}

// undecodable answers a task whose payload cioq cannot read: it never
// becomes readable, so it is not retried.
func (w *Worker) undecodable(ctx context.Context, t *asynq.Task, err error) error {
	w.log.ErrorContext(ctx, "undecodable task", "type", t.Type(), "error", err.Error())
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// route returns the sender of a task's workspace and API, the step every
// task handler (single op and bulk) takes after decoding. A task for a
// workspace this worker does not serve, or for a Pipelines workspace it has
// no key for, goes back to the queue without a failure (the error).
func (w *Worker) route(ctx context.Context, workspace string, api task.API, ops int) (*workspace, error) {
	ws := w.ws[workspace]
	if ws == nil {
		w.m.Unknown.Inc()
		w.log.ErrorContext(ctx, "task for a workspace this worker does not serve", "workspace", workspace, "ops", ops)
		return nil, &DelayError{Reason: ReasonUnknown, After: time.Minute}
	}
	if api == task.APIPipelines {
		if ws = w.pl[workspace]; ws == nil {
			return nil, w.noPipelines(ctx, workspace, ops)
		}
	}
	return ws, nil
}

func (w *Worker) processTask(ctx context.Context, t *asynq.Task) error {
	p, err := task.FromTask(t)
	if err != nil {
		return w.undecodable(ctx, t, err)
	}
	ws, err := w.route(ctx, p.Workspace, p.API, 1)
	if err != nil {
		return err
	}
	it := taskItem(ctx, p)
	ctx, end := w.observeTask(ctx, t, it)
	ws.inflight.Inc()
	err = ws.batcherOf(laneOf(p.Action)).submit(ctx, it)
	ws.inflight.Dec()
	if err != nil && it.exhausted(err) {
		// asynq would archive the task now (out of sight, and trimmed past
		// 10,000 a queue): cioq's dead-letter store takes the op instead.
		err = ws.exhaust(ctx, []*item{it}, []error{err})
	}
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
	for _, ws := range w.runtimes() {
		ws.critical.start()
		ws.live.start()
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
	w.servers = append(w.servers, asynq.NewServer(w.redis(), crit))
	for i := 0; i < w.cfg.Servers; i++ {
		def := base
		def.Concurrency = w.cfg.Concurrency
		def.Queues = defQueues
		w.servers = append(w.servers, asynq.NewServer(w.redis(), def))
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
	w.log.Info("worker started", "workspaces", len(w.ws), "pipelines_workspaces", len(w.pl), "servers", len(w.servers),
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
	w.closeBatchers(w.cfg.RequestTimeout + time.Second)
	w.log.Info("worker stopped")
}

// closeBatchers closes every batcher: what they hold is sent and every send
// may finish its request and write its done-markers within grace; then the
// sends still running (a Redis that does not answer the done-markers) are
// aborted. Their ops' tasks went back to asynq when the servers stopped, and
// their claims keep another worker from sending them until ClaimTTL.
func (w *Worker) closeBatchers(grace time.Duration) {
	var bs []*batcher
	for _, ws := range w.runtimes() {
		bs = append(bs, ws.critical, ws.live)
	}
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, b := range bs {
			wg.Go(b.close)
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	w.log.Warn("sends still running after the shutdown grace are aborted", "grace", grace.String())
	for _, b := range bs {
		b.abort()
	}
	<-done
}

// redis is the connection option of the worker's asynq servers.
func (w *Worker) redis() asynq.RedisConnOpt { return withProtocol(w.cfg.Redis, w.cfg.Protocol) }

// noPipelines answers a task holding n Pipelines calls for workspace ws,
// which this worker has no Pipelines sender for: it goes back to the queue
// without a failure, to wait for a worker configured with the workspace's
// Pipelines API key.
func (w *Worker) noPipelines(ctx context.Context, ws string, n int) error {
	w.m.Deferred.WithLabelValues(ws, ReasonNoPipelines).Add(float64(n))
	w.log.ErrorContext(ctx, "Pipelines call for a workspace without a Pipelines API key on this worker", "workspace", ws,
		"ops", n, "hint", "set the workspace's cdp_api_key (CUSTOMERIO_CDP_API_KEY)")
	return &DelayError{Reason: ReasonNoPipelines, After: time.Minute}
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
