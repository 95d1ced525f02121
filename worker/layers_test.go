package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/breaker"
	"github.com/cioq/cioq/idempotency"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// Unit tests of the send path: the layers, classify and settle, with
// in-memory fakes of the claim store, the limiter, the breaker, the
// dead-letter store and the sender. No Redis, no HTTP.

type memClaims struct {
	mu        sync.Mutex
	verdicts  map[string]idempotency.Check // by op id; missing means Send
	claimErr  error
	markErr   error // MarkDone's answer when set (a Redis that is away)
	marks     int   // MarkDone calls
	done      []string
	released  []string
	forgotten []string
	extended  []string
}

func (m *memClaims) Claim(_ context.Context, _ string, items []idempotency.Item) ([]idempotency.Check, error) {
	if m.claimErr != nil {
		return nil, m.claimErr
	}
	out := make([]idempotency.Check, len(items))
	for i, it := range items {
		if c, ok := m.verdicts[it.OpID]; ok {
			out[i] = c
		} else {
			out[i] = idempotency.Check{Verdict: idempotency.Send}
		}
	}
	return out, nil
}

func ids(items []idempotency.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.OpID
	}
	return out
}

func (m *memClaims) MarkDone(_ context.Context, _ string, items []idempotency.Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.marks++
	if m.markErr != nil {
		return m.markErr
	}
	m.done = append(m.done, ids(items)...)
	return nil
}

func (m *memClaims) Release(_ context.Context, _ string, items []idempotency.Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.released = append(m.released, ids(items)...)
	return nil
}

func (m *memClaims) Forget(_ context.Context, _ string, items []idempotency.Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgotten = append(m.forgotten, ids(items)...)
	return nil
}

func (m *memClaims) Extend(_ context.Context, _ string, items []idempotency.Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.extended = append(m.extended, ids(items)...)
	return nil
}

type memLimiter struct {
	waitErr   error
	critical  []bool
	throttled []time.Duration
	succeeded int
}

func (l *memLimiter) Wait(_ context.Context, ws string, lim ratelimit.Limit, critical bool, _ time.Duration) (ratelimit.Token, error) {
	l.critical = append(l.critical, critical)
	if l.waitErr != nil {
		return ratelimit.Token{}, l.waitErr
	}
	return ratelimit.Token{Workspace: ws, Limit: lim}, nil
}

func (l *memLimiter) Throttled(_ context.Context, tok ratelimit.Token, ra time.Duration) (time.Duration, error) {
	if tok.Workspace == "" {
		return 0, errors.New("no token")
	}
	l.throttled = append(l.throttled, ra)
	return max(ra, time.Second), nil
}

func (l *memLimiter) Succeeded(_ context.Context, tok ratelimit.Token) error {
	if tok.Workspace == "" {
		return errors.New("no token")
	}
	l.succeeded++
	return nil
}

func (l *memLimiter) State(context.Context, string, ratelimit.Limit) (ratelimit.State, error) {
	return ratelimit.State{}, nil
}

type memCircuits struct {
	status   breaker.Status
	executed int
}

func (c *memCircuits) Status(string) breaker.Status { return c.status }
func (c *memCircuits) Execute(_ context.Context, _ string, fn func() error) error {
	c.executed++
	return fn()
}

type memLetters struct{ added []DeadLetter }

func (d *memLetters) Add(_ context.Context, es []DeadLetter) error {
	d.added = append(d.added, es...)
	return nil
}
func (d *memLetters) Count(context.Context, string) (int64, error) { return int64(len(d.added)), nil }

// memSender answers each request with answer(ops) and records the op ids
// of every request.
type memSender struct {
	answer func(ops [][]byte) error
	sent   [][]string
}

func (s *memSender) BatchEncoded(_ context.Context, ops [][]byte) error {
	var got []string
	for _, op := range ops {
		got = append(got, string(op))
	}
	s.sent = append(s.sent, got)
	if s.answer == nil {
		return nil
	}
	return s.answer(ops)
}

type fakes struct {
	claims   *memClaims
	limiter  *memLimiter
	circuits *memCircuits
	letters  *memLetters
	sender   *memSender
}

func testWorkspace(t *testing.T) (*workspace, *fakes) {
	t.Helper()
	f := &fakes{claims: &memClaims{verdicts: map[string]idempotency.Check{}}, limiter: &memLimiter{},
		circuits: &memCircuits{status: breaker.Status{State: breaker.StateClosed}}, letters: &memLetters{}, sender: &memSender{}}
	cfg := Config{Workspaces: []Workspace{{Name: "w"}}, Registerer: prometheus.NewRegistry()}.withDefaults()
	w := &Worker{cfg: runtimeConfig{Config: cfg, claimTTL: time.Second}, log: cfg.Logger, m: metrics.NewWorker(nil),
		idem: f.claims, limiter: f.limiter, breakers: f.circuits, letters: f.letters}
	ws := &workspace{name: "w", sender: f.sender, budget: ratelimit.PerSecond(10), limitKey: "w", breakerKey: "w", w: w,
		liveWaiting: new(atomic.Int32), inflight: w.m.InFlight.WithLabelValues("w"), ops: map[opsKey]prometheus.Counter{}}
	ws.sendFn = ws.guard(ws.limit(ws.execute(ws.observe(ws.transport()))))
	return ws, f
}

// op returns an item whose op JSON is its id, stamped in order.
func op(id string, stamp int64) *item {
	p := &task.Payload{Workspace: "w", OpID: id, Action: track.ActionEvent, Person: "id:" + id,
		EnqueuedAt: time.UnixMicro(stamp), Op: []byte(id)}
	return &item{p: p, size: len(p.Op), maxRetry: task.MaxRetry(25), done: make(chan error, 1)}
}

// results returns each item's outcome label and error.
func results(items []*item) map[string]string {
	out := map[string]string{}
	for _, it := range items {
		err := <-it.done
		s := it.outcome
		var de *DelayError
		switch {
		case errors.As(err, &de):
			s = "deferred:" + de.Reason
		case err != nil:
			s = "retry"
		}
		out[it.p.OpID] = s
	}
	return out
}

func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(status int) error { return &track.APIError{StatusCode: status} }
	tests := []struct {
		name string
		err  error
		want verdict
	}{
		{"Accepted", nil, verdictAccepted},
		{"PerOpErrors", &track.BatchError{StatusCode: 207, Items: []track.ItemError{{Index: 1}}}, verdictPartial},
		{"BreakerOpen", &breaker.OpenError{RetryAfter: time.Second}, verdictOpen},
		{"NoToken", &ratelimit.DelayError{RetryAfter: time.Second}, verdictNoToken},
		{"TooManyRequests", api(429), verdictThrottled},
		{"Unauthorized", api(401), verdictUnauthorized},
		{"Forbidden", api(403), verdictUnauthorized},
		{"BadRequest", api(400), verdictInvalid},
		{"Unprocessable", api(422), verdictInvalid},
		{"InvalidOp", fmt.Errorf("x: %w", track.ErrInvalidOp), verdictInvalid},
		{"NotFoundIsTheEndpoint", api(404), verdictRetry},
		{"TooLargeFromAProxyIsTheEndpoint", api(413), verdictRetry},
		{"ServerError", api(503), verdictRetry},
		{"Timeout", api(408), verdictRetry},
		{"Network", &track.TransportError{Err: errors.New("reset")}, verdictRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, classify(tt.err).verdict)
		})
	}
	require.ErrorIs(t, classify(api(404)).err, ErrEndpoint, "an endpoint fault says so")
	require.True(t, countsForBreaker(api(404)), "an endpoint fault counts for the breaker")
	require.False(t, countsForBreaker(api(400)), "a bad op does not")
	require.False(t, countsForBreaker(api(429)))
}

func TestSendPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DeliversMarksDoneOneTokenOneBreakerCall", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		items := []*item{op("b", 2), op("a", 1)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{"a": metrics.OutcomeDelivered, "b": metrics.OutcomeDelivered}, results(items))
		require.Equal(t, [][]string{{"a", "b"}}, f.sender.sent, "one request, in stamp order")
		require.Equal(t, []bool{false}, f.limiter.critical, "one token of the live share")
		require.Equal(t, 1, f.circuits.executed)
		require.Equal(t, 1, f.limiter.succeeded)
		require.ElementsMatch(t, []string{"a", "b"}, f.claims.done)
	})

	t.Run("DoneMarkerRetriesEndWithTheContext", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.claims.markErr = errors.New("redis away")
		ctx, cancel := context.WithCancel(context.Background())
		items := []*item{op("a", 1)}
		sent := make(chan struct{})
		go func() { ws.send(ctx, laneLive, items); close(sent) }()
		require.Eventually(t, func() bool { f.claims.mu.Lock(); defer f.claims.mu.Unlock(); return f.claims.marks >= 2 },
			5*time.Second, 5*time.Millisecond, "the done-marker is retried while Redis is away")
		start := time.Now()
		cancel()
		select {
		case <-sent:
		case <-time.After(time.Second):
			t.Fatal("the done-marker retries outlived their context")
		}
		require.Less(t, time.Since(start), 500*time.Millisecond)
		require.Equal(t, map[string]string{"a": metrics.OutcomeDelivered}, results(items), "accepted by Customer.io: settled as delivered")
	})

	t.Run("ClaimVerdictsSettleWithoutSending", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.claims.verdicts = map[string]idempotency.Check{
			"done":    {Verdict: idempotency.Done},
			"tomb":    {Verdict: idempotency.Tombstoned, Tombstone: &idempotency.Tombstone{OpID: "del"}},
			"sup":     {Verdict: idempotency.Suppressed, Tombstone: &idempotency.Tombstone{OpID: "s"}},
			"claimed": {Verdict: idempotency.Claimed},
			"waits":   {Verdict: idempotency.Waiting, Blocker: &idempotency.Blocker{OpID: "older", Stamp: time.Now().UnixMicro()}},
		}
		items := []*item{op("done", 1), op("tomb", 2), op("sup", 3), op("claimed", 4), op("waits", 5), op("go", 6)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{
			"done": metrics.OutcomeSkipped, "tomb": metrics.OutcomeDropped, "sup": metrics.OutcomeDropped,
			"claimed": "deferred:" + ReasonClaimed, "waits": "deferred:" + ReasonOrder, "go": metrics.OutcomeDelivered,
		}, results(items))
		require.Equal(t, [][]string{{"go"}}, f.sender.sent)
	})

	t.Run("OpenCircuitSpendsNoToken", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.circuits.status = breaker.Status{State: breaker.StateOpen, OpenUntil: time.Now().Add(time.Minute)}
		items := []*item{op("a", 1)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{"a": "deferred:" + ReasonBreakerOpen}, results(items))
		require.Empty(t, f.limiter.critical, "no token")
		require.Empty(t, f.sender.sent)
		require.Equal(t, []string{"a"}, f.claims.released)
	})

	t.Run("NoTokenGoesBackUncounted", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.limiter.waitErr = &ratelimit.DelayError{RetryAfter: time.Second}
		items := []*item{op("a", 1)}
		ws.send(ctx, laneCritical, items)
		require.Equal(t, map[string]string{"a": "deferred:" + ReasonRateLimited}, results(items))
		require.Equal(t, []bool{true}, f.limiter.critical, "the critical lane asks for the critical share")
		require.Zero(t, f.circuits.executed)
	})

	t.Run("ThrottledSetsTheCoolDown", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.sender.answer = func([][]byte) error { return &track.APIError{StatusCode: 429, RetryAfter: 3 * time.Second} }
		items := []*item{op("a", 1)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{"a": "deferred:" + ReasonRateLimited}, results(items))
		require.Equal(t, []time.Duration{3 * time.Second}, f.limiter.throttled, "Retry-After honoured, with the request's token")
	})

	t.Run("PartialRejectDeadLettersOnlyTheBadOp", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.sender.answer = func([][]byte) error {
			return &track.BatchError{StatusCode: 207, Items: []track.ItemError{{Index: 1, Reason: "invalid"}}}
		}
		items := []*item{op("a", 1), op("b", 2), op("c", 3)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{"a": metrics.OutcomeDelivered, "b": metrics.OutcomeDeadLetter, "c": metrics.OutcomeDelivered},
			results(items))
		require.Len(t, f.letters.added, 1)
		require.Equal(t, "b", f.letters.added[0].OpID)
		require.Equal(t, []string{"b"}, f.claims.forgotten, "a dead letter's registration goes")
	})

	t.Run("WholeRequestRejectIsBisectedWithRenewedClaims", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.sender.answer = func(ops [][]byte) error {
			if slices.ContainsFunc(ops, func(b []byte) bool { return string(b) == "poison" }) {
				return &track.APIError{StatusCode: http.StatusBadRequest, Body: []byte(`{"meta":{"error":"bad"}}`)}
			}
			return nil
		}
		items := []*item{op("a", 1), op("b", 2), op("poison", 3), op("d", 4)}
		ws.send(ctx, laneLive, items)
		got := results(items)
		require.Equal(t, metrics.OutcomeDeadLetter, got["poison"])
		for _, id := range []string{"a", "b", "d"} {
			require.Equal(t, metrics.OutcomeDelivered, got[id], id)
		}
		require.Len(t, f.sender.sent, 5, "4 ops, one poison: 1 + 2 + 2 requests")
		require.NotEmpty(t, f.claims.extended, "each half's claims are renewed before it is sent")
		require.Len(t, f.letters.added, 1)
	})

	t.Run("EndpointFaultIsRetriedNeverBisected", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.sender.answer = func([][]byte) error { return &track.APIError{StatusCode: http.StatusNotFound} }
		items := []*item{op("a", 1), op("b", 2)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{"a": "retry", "b": "retry"}, results(items))
		require.Len(t, f.sender.sent, 1)
		require.Empty(t, f.letters.added)
		require.ElementsMatch(t, []string{"a", "b"}, f.claims.released)
	})

	t.Run("UnauthorizedPausesUntilAnAnswerThatIsNot", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.sender.answer = func([][]byte) error { return &track.APIError{StatusCode: http.StatusUnauthorized} }
		items := []*item{op("a", 1)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{"a": "deferred:" + ReasonUnauthorized}, results(items))
		require.True(t, ws.unauthorized())
		more := []*item{op("b", 2)}
		ws.send(ctx, laneLive, more)
		require.Equal(t, map[string]string{"b": "deferred:" + ReasonUnauthorized}, results(more))
		require.Len(t, f.sender.sent, 1, "paused: nothing more is sent")
		ws.pausedUntil.Store(time.Now().Add(-time.Second).UnixNano()) // the pause ended
		f.sender.answer = nil
		last := []*item{op("c", 3)}
		ws.send(ctx, laneLive, last)
		require.Equal(t, map[string]string{"c": metrics.OutcomeDelivered}, results(last))
		require.False(t, ws.unauthorized(), "a 2xx lifts the pause")
	})

	t.Run("ClaimFailureRetriesEveryOp", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		f.claims.claimErr = errors.New("redis: connection refused")
		items := []*item{op("a", 1)}
		ws.send(ctx, laneLive, items)
		require.Equal(t, map[string]string{"a": "retry"}, results(items))
		require.Empty(t, f.sender.sent)
	})

	t.Run("BulkWaitsWhileALiveRequestWaits", func(t *testing.T) {
		t.Parallel()
		ws, f := testWorkspace(t)
		ws.liveWaiting.Add(1)
		ws.w.cfg.MaxLimiterWait = 20 * time.Millisecond
		items := []*item{op("a", 1)}
		ws.send(ctx, laneBulk, items)
		require.Equal(t, map[string]string{"a": "deferred:" + ReasonRateLimited}, results(items))
		require.Empty(t, f.limiter.critical, "no token asked while live traffic waits")
	})
}

func TestExhausted(t *testing.T) {
	t.Parallel()
	fail := errors.New("503")
	delay := &DelayError{Reason: ReasonRateLimited, After: time.Second}
	budget := 2
	it := func(retried int) *item { return &item{attempt: retried, maxRetry: task.MaxRetry(budget)} }
	require.False(t, it(0).exhausted(fail))
	require.False(t, it(1).exhausted(fail))
	require.True(t, it(2).exhausted(fail), "the failure that spends the budget dead-letters")
	require.False(t, it(2).exhausted(delay), "a delay never does, even at the last retry")
	require.True(t, it(3).exhausted(delay), "once asynq would archive on any error, anything dead-letters")
}
