package fake

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cioq/cioq/internal/wire"
	"github.com/cioq/cioq/track"
)

// Server is a fake Customer.io Track API: it answers the v1 and v2 paths of
// TRACK_API.md, enforces Basic auth, body limits and a per-workspace rate
// limit, injects faults, records the calls and keeps a ledger of what
// Customer.io would have accepted. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of a server started by NewServer, of the form
	// http://127.0.0.1:port, with no trailing slash. Empty for New.
	URL string

	opts    Options
	handler http.Handler
	routes  []endpoint
	faults  atomic.Pointer[Faults]
	// failed counts the requests Faults.FailContaining failed since it was
	// set.
	failed atomic.Int64

	mu      sync.Mutex // guards what follows
	ledger  *ledger
	people  people
	log     *requestLog
	buckets map[string]*bucket
	rng     *rand.Rand

	cancel    context.CancelFunc // stops the server NewServer started
	serveDone chan struct{}      // closed when that server has stopped
}

// New returns a fake that is not listening: mount Handler, or run Serve or
// ListenAndServe (as `cioq fakecio` does). It returns an error when opts
// are invalid.
func New(opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	seed1, seed2 := opts.Seed, opts.Seed^0x9e3779b97f4a7c15
	if opts.Seed == 0 {
		seed1, seed2 = rand.Uint64(), rand.Uint64()
	}
	s := &Server{
		opts:    opts,
		ledger:  newLedger(),
		people:  people{},
		log:     newRequestLog(opts.RequestLog, opts.RequestLogOps),
		buckets: map[string]*bucket{},
		rng:     rand.New(rand.NewPCG(seed1, seed2)),
		routes:  newEndpoints(),
	}
	f := opts.Faults.clone()
	s.faults.Store(&f)
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// NewServer starts a fake on 127.0.0.1 on a free port, like
// httptest.NewServer. The caller should call Close when finished. It panics
// when opts are invalid or no port can be had, as httptest does: it is meant
// for tests; programs use New.
func NewServer(opts Options) *Server {
	s, err := New(opts)
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("fake: failed to listen on a port: %v", err))
	}
	s.URL = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.serveDone = cancel, make(chan struct{})
	go func() {
		defer close(s.serveDone)
		if err := s.Serve(ctx, ln); err != nil {
			s.opts.Logger.Error("fake track api stopped", "error", err.Error())
		}
	}()
	return s
}

// validate reports options the fake cannot honour.
func (o Options) validate() error {
	switch {
	case o.RateLimit < 0:
		return fmt.Errorf("fake: rate limit %v is negative", o.RateLimit)
	case o.Burst < 0:
		return fmt.Errorf("fake: burst %d is negative", o.Burst)
	}
	return o.Faults.validate()
}

// Handler returns the fake as an http.Handler: the Track API paths plus the
// control API under /_fake/.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on ln until ctx ends, then stops accepting, cancels
// the contexts of requests in flight (ending any Latency wait) and returns
// once every handler has finished. It returns nil after ctx ended, else the
// error that stopped ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeHandler(ctx, ln, s.handler)
}

// ServeHandler is Serve with h answering instead of Handler(): h wraps
// Handler() with routes of its own (cioq fakecio adds /healthz, /readyz and
// /metrics). Shutdown and the Latency fault behave as with Serve.
func (s *Server) ServeHandler(ctx context.Context, ln net.Listener, h http.Handler) error {
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cancel()
	_ = srv.Shutdown(context.Background()) // waits for handlers in flight
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("fake: listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Close stops a server started by NewServer and blocks until every request
// in flight has finished. It does nothing for a server from New.
func (s *Server) Close() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.serveDone
}

// SetFaults replaces the active faults. It returns an error, and changes
// nothing, when f holds a value the fake cannot honour (a rate outside
// [0,1], a negative latency, ...).
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	f = f.clone()
	s.failed.Store(0)
	s.faults.Store(&f)
	s.opts.Logger.Info("fake track api faults set", "faults", f)
	return nil
}

// Faults returns a copy of the active faults.
func (s *Server) Faults() Faults { return s.faults.Load().clone() }

// Ledger returns a snapshot of the ledger.
func (s *Server) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ledger.snapshot()
}

// Requests returns the recorded calls, oldest first: at most the newest
// Options.RequestLog requests holding at most Options.RequestLogOps ops.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.newest(0)
}

// Reset clears the ledger, the recorded requests and the rate-limit buckets.
// The active faults stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ledger = newLedger()
	s.people = people{}
	s.log = newRequestLog(s.opts.RequestLog, s.opts.RequestLogOps)
	s.buckets = map[string]*bucket{}
}

// call is one Track API request on its way through the fake.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	faults Faults
	rec    Request
	key    string // API key; never logged
	hasKey bool
}

// serveHTTP is the request pipeline; the order is documented on Faults.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		s.control(w, r)
		return
	}
	c := &call{w: w, r: r, faults: *s.faults.Load()}
	c.rec = Request{Time: s.opts.Now(), Method: r.Method, Path: r.URL.EscapedPath()}
	c.rec.SiteID, c.key, c.hasKey = track.BasicAuth(r)
	f := &c.faults
	if f.Latency > 0 && !s.delay(c, f.Latency) {
		s.drop(c, FaultLatency)
		return
	}
	if f.CloseConnection > 0 && s.roll(f.CloseConnection) {
		s.closeConnection(c)
		return
	}
	if f.Down {
		status := f.DownStatus
		if status == 0 {
			status = DefaultDownStatus
		}
		s.fail(c, status, FaultDown, "service unavailable")
		return
	}
	if f.Unauthorized {
		s.unauthorized(c, FaultUnauthorized)
		return
	}
	m := route(s.routes, r.Method, c.rec.Path)
	switch {
	case m.handle == nil && len(m.allow) > 0:
		w.Header().Set("Allow", strings.Join(m.allow, ", "))
		s.fail(c, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	case m.handle == nil:
		s.fail(c, http.StatusNotFound, "", "not found")
		return
	}
	if !s.authorized(c) {
		s.unauthorized(c, "")
		return
	}
	if f.Storm429 {
		s.rateLimited(c, FaultStorm429, time.Second)
		return
	}
	if ok, wait := s.take(c); !ok {
		fault := ""
		if f.RateLimit != nil {
			fault = FaultRateLimit
		}
		s.rateLimited(c, fault, wait)
		return
	}
	if f.ErrorRate > 0 && s.roll(f.ErrorRate) {
		s.fail(c, s.errorStatus(f.ErrorStatuses), FaultErrorRate, "internal error")
		return
	}
	m.handle(s, c, m.params)
}

// authorized checks Basic auth against Options.Credentials.
func (s *Server) authorized(c *call) bool {
	if !c.hasKey || c.rec.SiteID == "" {
		return false
	}
	if s.opts.Credentials == nil {
		return true
	}
	want, ok := s.opts.Credentials[c.rec.SiteID]
	return ok && subtle.ConstantTimeCompare([]byte(want), []byte(c.key)) == 1
}

// record counts c in the ledger and the request log. It runs before the
// answer is written, so a client that has its answer finds it counted.
func (s *Server) record(c *call, o outcome) {
	o.site = c.rec.SiteID
	c.rec.Status = o.status
	s.mu.Lock()
	now := s.opts.Now()
	s.ledger.record(now, o) // read under the lock: windows see time in order
	if o.status < 300 && len(c.rec.Ops) > 0 {
		s.people.apply(o.site, now, c.rec.Ops)
	}
	s.log.push(c.rec)
	s.mu.Unlock()
	s.opts.Logger.DebugContext(c.r.Context(), "fake track api request",
		"method", c.rec.Method, "path", c.rec.Path, "site_id", c.rec.SiteID,
		"status", c.rec.Status, "fault", c.rec.Fault, "ops", len(c.rec.Ops))
}

// fail answers status with a Track API error body.
func (s *Server) fail(c *call, status int, fault, msg string) {
	c.rec.Fault = fault
	s.record(c, outcome{status: status})
	writeJSON(c.w, status, wire.ErrorBody(msg))
}

func (s *Server) unauthorized(c *call, fault string) {
	c.w.Header().Set("WWW-Authenticate", `Basic realm="Customer.io Track API"`)
	s.fail(c, http.StatusUnauthorized, fault, "unauthorized: check your site id and API key")
}

// writeJSON writes a JSON answer.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
