package ratesim

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cioq/cioq/ratelimit"
)

// Defaults of Model's fields.
const (
	DefaultBudget   = 80.0
	DefaultReplicas = 3
	DefaultSlots    = 8
	DefaultLatency  = 20 * time.Millisecond
)

// ErrInvalidModel is matched (errors.Is) by the error of a Model that cannot
// run.
var ErrInvalidModel = errors.New("ratesim: invalid model")

// Phase is a stretch of time at one real limit.
type Phase struct {
	// Name labels the phase in the results ("before", "storm", "after").
	Name string `json:"name"`
	// Duration of the phase.
	Duration time.Duration `json:"duration"`
	// Limit is Customer.io's real limit in req/s during the phase; zero
	// means none.
	Limit float64 `json:"limit"`
}

// Model is a fleet and the limit it meets.
type Model struct {
	// Budget is the configured rate (CIOQ_RATE_LIMIT). Zero means
	// DefaultBudget (80).
	Budget float64 `json:"budget"`
	// Burst is the limiter's burst. Zero means the limiter's default.
	Burst int `json:"burst,omitempty"`
	// Replicas is the number of worker processes. Zero means
	// DefaultReplicas (3).
	Replicas int `json:"replicas"`
	// Slots is the requests each replica keeps in flight or waiting for a
	// token. Zero means DefaultSlots (8).
	Slots int `json:"slots"`
	// Latency is a request's round trip. Zero means DefaultLatency (20 ms).
	Latency time.Duration `json:"latency"`
	// Critical is the fraction of requests on the critical lane, which may
	// use the whole effective rate; the others get 1 − the critical share.
	Critical float64 `json:"critical,omitempty"`
	// Phases are the real limit over time, in order.
	Phases []Phase `json:"phases"`
	// Adaptive tunes the limiter; zero uses its defaults.
	Adaptive ratelimit.Adaptive `json:"-"`
	// Seed seeds the slots' jitter. Zero means 1.
	Seed uint64 `json:"-"`
	// Redis runs the scripts. Nil means an embedded miniredis, several
	// times slower than a redis-server; its keys start with "ratesim:".
	Redis redis.UniversalClient `json:"-"`
}

func (m Model) withDefaults() Model {
	m.Budget = cmp.Or(m.Budget, DefaultBudget)
	m.Replicas = cmp.Or(m.Replicas, DefaultReplicas)
	m.Slots = cmp.Or(m.Slots, DefaultSlots)
	m.Latency = cmp.Or(m.Latency, DefaultLatency)
	m.Seed = cmp.Or(m.Seed, 1)
	return m
}

func (m Model) validate() error {
	switch {
	case m.Budget <= 0 || m.Replicas < 1 || m.Slots < 1 || m.Latency <= 0:
		return fmt.Errorf("%w: budget, replicas, slots and latency must be positive", ErrInvalidModel)
	case m.Critical < 0 || m.Critical > 1:
		return fmt.Errorf("%w: critical fraction %v not in [0, 1]", ErrInvalidModel, m.Critical)
	case len(m.Phases) == 0:
		return fmt.Errorf("%w: no phases", ErrInvalidModel)
	}
	for _, p := range m.Phases {
		if p.Duration <= 0 || p.Limit < 0 {
			return fmt.Errorf("%w: phase %q: duration must be positive and limit not negative", ErrInvalidModel, p.Name)
		}
	}
	return nil
}

// Storm is the storm: the real limit equals the budget for 10 s,
// drops by factor for d, and comes back for 20 s.
func Storm(budget, factor float64, d time.Duration) Model {
	return Model{Budget: budget, Phases: []Phase{
		{Name: "before", Duration: 10 * time.Second, Limit: budget},
		{Name: "storm", Duration: d, Limit: budget / factor},
		{Name: "after", Duration: 20 * time.Second, Limit: budget},
	}}
}

// Steady is a real limit at share of the budget for d.
func Steady(budget, share float64, d time.Duration) Model {
	return Model{Budget: budget, Phases: []Phase{{Name: "steady", Duration: d, Limit: budget * share}}}
}

// Second is one second of a run.
type Second struct {
	// At is the second's start since the run began.
	At time.Duration `json:"at"`
	// Limit is the real limit at its start; zero means none.
	Limit float64 `json:"limit"`
	// Rate is the effective rate at its end.
	Rate float64 `json:"rate"`
	// Sent, Accepted and Throttled count requests that reached Customer.io
	// in the second, and how they were answered.
	Sent      int `json:"sent"`
	Accepted  int `json:"accepted"`
	Throttled int `json:"throttled"`
}

// PhaseResult sums one phase.
type PhaseResult struct {
	Name  string  `json:"name"`
	Limit float64 `json:"limit"`
	// Sent, Accepted and Throttled count requests as in Second.
	Sent      int `json:"sent"`
	Accepted  int `json:"accepted"`
	Throttled int `json:"throttled"`
	// Share429 is Throttled / Sent.
	Share429 float64 `json:"share_429"`
	// Used is the accepted rate as a fraction of the real limit (of the
	// budget when there is none).
	Used float64 `json:"used"`
	// Reach80 is how long into the phase until a whole second accepted at
	// least 80% of what the lanes in use may take of the budget; −1 when
	// never.
	Reach80 time.Duration `json:"reach_80"`
	// From5s is the accepted rate from 5 s into the phase to its end, as a
	// fraction of the budget.
	From5s float64 `json:"from_5s"`
}

// Result is a run's outcome.
type Result struct {
	Model   Model         `json:"model"`
	Seconds []Second      `json:"seconds"`
	Phases  []PhaseResult `json:"phases"`
}

// Run replays m and returns its seconds and phase sums.
func Run(ctx context.Context, m Model) (Result, error) {
	m = m.withDefaults()
	if err := m.validate(); err != nil {
		return Result{}, err
	}
	rdb := m.Redis
	if rdb == nil {
		mr, err := miniredis.Run()
		if err != nil {
			return Result{}, fmt.Errorf("ratesim: embedded redis: %w", err)
		}
		defer mr.Close()
		c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer c.Close()
		rdb = c
	}

	s := &sim{m: m, rng: rand.New(rand.NewPCG(m.Seed, 0)), epoch: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var total time.Duration
	for _, p := range m.Phases {
		total += p.Duration
	}
	s.seconds = make([]Second, int(math.Ceil(total.Seconds())))
	for i := range s.seconds {
		s.seconds[i].At = time.Duration(i) * time.Second
		s.seconds[i].Limit = s.limitAt(s.seconds[i].At)
	}
	lim := ratelimit.Limit{Rate: m.Budget, Burst: m.Burst}
	for r := range m.Replicas {
		rp := &replica{l: ratelimit.New(rdb, ratelimit.Config{Prefix: "ratesim:", Adaptive: m.Adaptive, Now: s.now,
			OnRate: func(_ string, rate float64) { s.rate = rate }})}
		for k := range m.Slots {
			critical := float64(r*m.Slots+k) < m.Critical*float64(m.Replicas*m.Slots)
			sl := &slot{rp: rp, lim: lim, critical: critical}
			s.at(time.Duration(s.rng.Int64N(int64(10*time.Millisecond))), func() error { return s.want(ctx, sl) })
		}
	}
	s.rate = m.Budget
	for len(s.events) > 0 {
		e := heap.Pop(&s.events).(event)
		if e.at >= total {
			break
		}
		if i := int(e.at / time.Second); i > s.sec {
			for ; s.sec < i; s.sec++ {
				s.seconds[s.sec].Rate = s.rate
			}
		}
		s.t = e.at
		if err := e.fn(); err != nil {
			return Result{}, err
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
	}
	for ; s.sec < len(s.seconds); s.sec++ {
		s.seconds[s.sec].Rate = s.rate
	}
	return Result{Model: m, Seconds: s.seconds, Phases: s.phases()}, nil
}

// replica is one worker process: its limiter, and its slots waiting for a
// token in order. One of them at a time asks Redis (as Wait's per-process
// pacer spaces a process's attempts), so the embedded Redis is not asked
// once per slot for every token.
type replica struct {
	l       *ratelimit.Limiter
	waiting []*slot
	polling bool
}

// slot is one request a replica keeps in flight or waiting for a token.
type slot struct {
	rp       *replica
	lim      ratelimit.Limit
	critical bool
}

type event struct {
	at  time.Duration
	seq int
	fn  func() error
}

type events []event

func (q events) Len() int { return len(q) }
func (q events) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q events) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *events) Push(x any)   { *q = append(*q, x.(event)) }
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// sim is one run's world.
type sim struct {
	m       Model
	rng     *rand.Rand
	epoch   time.Time
	t       time.Duration // virtual time since the start
	events  events
	seq     int
	seconds []Second
	sec     int
	rate    float64 // effective rate as last reported

	// Customer.io's token bucket.
	tokens  float64
	last    time.Duration
	started bool
	curLim  float64
}

func (s *sim) now() time.Time { return s.epoch.Add(s.t) }

func (s *sim) at(d time.Duration, fn func() error) {
	s.seq++
	heap.Push(&s.events, event{at: s.t + d, seq: s.seq, fn: fn})
}

func (s *sim) limitAt(t time.Duration) float64 {
	var end time.Duration
	for _, p := range s.m.Phases {
		end += p.Duration
		if t < end {
			return p.Limit
		}
	}
	return s.m.Phases[len(s.m.Phases)-1].Limit
}

// take is the fake Track API's bucket: rate the real limit, burst
// max(1, ceil(rate)), a smaller burst applying at once.
func (s *sim) take() bool {
	rate := s.limitAt(s.t)
	if rate <= 0 {
		return true
	}
	burst := math.Max(1, math.Ceil(rate))
	if !s.started {
		s.tokens, s.started = burst, true
	} else {
		s.tokens += (s.t - s.last).Seconds() * s.curLim
	}
	s.last, s.curLim = s.t, rate
	s.tokens = math.Min(s.tokens, burst)
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	return false
}

func (s *sim) jitter(d time.Duration) time.Duration {
	j := min(d/10, 50*time.Millisecond)
	if j <= 0 {
		return time.Duration(s.rng.Int64N(int64(time.Millisecond)))
	}
	return time.Duration(s.rng.Int64N(int64(j)))
}

// want queues slot for a token of its replica.
func (s *sim) want(ctx context.Context, sl *slot) error {
	rp := sl.rp
	rp.waiting = append(rp.waiting, sl)
	if !rp.polling {
		rp.polling = true
		return s.poll(ctx, rp)
	}
	return nil
}

// poll asks the replica's limiter for a token for its first waiting slot;
// once it has one the request goes out, is answered by the bucket half a
// round trip later and comes back after the other half, and the slot
// queues again.
func (s *sim) poll(ctx context.Context, rp *replica) error {
	sl := rp.waiting[0]
	res, err := rp.l.Allow(ctx, "ws", sl.lim, sl.critical)
	if err != nil {
		return err
	}
	if !res.Allowed {
		s.at(res.RetryAfter+s.jitter(res.RetryAfter), func() error { return s.poll(ctx, rp) })
		return nil
	}
	rp.waiting = rp.waiting[1:]
	if len(rp.waiting) > 0 {
		s.at(0, func() error { return s.poll(ctx, rp) })
	} else {
		rp.polling = false
	}
	tok := res.Token
	s.at(s.m.Latency/2, func() error {
		ok := s.take()
		sec := &s.seconds[min(int(s.t/time.Second), len(s.seconds)-1)]
		sec.Sent++
		if ok {
			sec.Accepted++
		} else {
			sec.Throttled++
		}
		s.at(s.m.Latency-s.m.Latency/2, func() error {
			var err error
			if ok {
				err = rp.l.Succeeded(ctx, tok)
			} else {
				_, err = rp.l.Throttled(ctx, tok, 0)
			}
			if err != nil {
				return err
			}
			return s.want(ctx, sl)
		})
		return nil
	})
	return nil
}

// laneCeiling is the share of the budget the slots' lanes may use.
func (s *sim) laneCeiling() float64 {
	if s.m.Critical > 0 {
		return 1
	}
	return 1 - ratelimit.DefaultCriticalShare
}

func (s *sim) phases() []PhaseResult {
	var out []PhaseResult
	var start time.Duration
	for _, p := range s.m.Phases {
		pr := PhaseResult{Name: p.Name, Limit: p.Limit, Reach80: -1}
		first, last := int(start/time.Second), int((start+p.Duration)/time.Second)
		var from5 int
		for i := first; i < last && i < len(s.seconds); i++ {
			sec := s.seconds[i]
			pr.Sent += sec.Sent
			pr.Accepted += sec.Accepted
			pr.Throttled += sec.Throttled
			if pr.Reach80 < 0 && float64(sec.Accepted) >= 0.8*s.m.Budget*s.laneCeiling() {
				pr.Reach80 = sec.At - start
			}
			if i >= first+5 {
				from5 += sec.Accepted
			}
		}
		if pr.Sent > 0 {
			pr.Share429 = float64(pr.Throttled) / float64(pr.Sent)
		}
		ref := p.Limit
		if ref <= 0 {
			ref = s.m.Budget
		}
		pr.Used = float64(pr.Accepted) / p.Duration.Seconds() / ref
		if n := last - first - 5; n > 0 {
			pr.From5s = float64(from5) / float64(n) / s.m.Budget
		}
		out = append(out, pr)
		start += p.Duration
	}
	return out
}
