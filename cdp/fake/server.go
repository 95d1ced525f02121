package fake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
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

	"github.com/cioq/cioq/cdp"
)

// Server is a fake Customer.io Pipelines API: it answers the single-call
// paths and /v1/batch with Basic auth (the API key as user name), the
// request limits, strict and permissive mode, a per-workspace rate limit,
// injected faults, and keeps a ledger of what Customer.io would have done.
// All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of a server started by NewServer, of the form
	// http://127.0.0.1:port, with no trailing slash. Empty for New.
	URL string

	opts     Options
	handler  http.Handler
	faults   atomic.Pointer[Faults]
	failLeft atomic.Int64 // FailNext answers still to give

	mu      sync.Mutex // guards what follows
	ledger  *ledger
	log     *requestLog
	buckets map[string]*bucket
	rng     *rand.Rand

	cancel    context.CancelFunc
	serveDone chan struct{}
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
		ledger:  newLedger(opts.MaxUsers),
		log:     newRequestLog(opts.RequestLog, opts.RequestLogCalls),
		buckets: map[string]*bucket{},
		rng:     rand.New(rand.NewPCG(seed1, seed2)),
	}
	s.storeFaults(opts.Faults)
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// NewServer starts a fake on 127.0.0.1 on a free port, like
// httptest.NewServer. The caller should call Close when finished. It panics
// when opts are invalid or no port can be had: it is meant for tests;
// programs use New.
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
			s.opts.Logger.Error("fake pipelines api stopped", "error", err.Error())
		}
	}()
	return s
}

// Handler returns the fake as an http.Handler: the Pipelines API paths
// (/v1/...) plus the control API under /_fake/cdp/.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on ln until ctx ends, then stops accepting,
// cancels the contexts of requests in flight and returns once every handler
// has finished. It returns nil after ctx ended, else the error that stopped
// ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeHandler(ctx, ln, s.handler)
}

// ServeHandler is Serve with h answering instead of Handler() (cioq
// fakecio serves this fake and the Track API fake on one listener).
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
	_ = srv.Shutdown(context.Background())
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

// SetFaults replaces the active faults; FailNext starts counting anew. It
// returns an error, and changes nothing, when f holds a value the fake
// cannot honour.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.storeFaults(f)
	s.opts.Logger.Info("fake pipelines api faults set", "faults", f)
	return nil
}

func (s *Server) storeFaults(f Faults) {
	f = f.clone()
	s.faults.Store(&f)
	s.failLeft.Store(int64(f.FailNext))
}

// Faults returns a copy of the active faults; FailNext is how many FailNext
// answers are left.
func (s *Server) Faults() Faults {
	f := s.faults.Load().clone()
	f.FailNext = int(max(s.failLeft.Load(), 0))
	return f
}

// Ledger returns a snapshot of the ledger.
func (s *Server) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ledger.snapshot()
}

// User returns the final state of one person, by the key of the person's
// identifiers (cdp.Call.Person().Key(): "id:u1", "email:a@b.c",
// "anonymous_id:a1"), in the workspace named ws; ok is false when no call
// about that person was applied there.
func (s *Server) User(ws, key string) (UserState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ledger.user(ws, key)
}

// Users returns the final state of every person of workspace ws, by key.
func (s *Server) Users(ws string) map[string]UserState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ledger.users(ws)
}

// Requests returns the recorded requests, oldest first: at most the newest
// Options.RequestLog requests holding at most Options.RequestLogCalls
// calls.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.newest(0)
}

// Reset clears the ledger, the recorded requests and the rate-limit
// buckets. The active faults stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ledger = newLedger(s.opts.MaxUsers)
	s.log = newRequestLog(s.opts.RequestLog, s.opts.RequestLogCalls)
	s.buckets = map[string]*bucket{}
}

// KeyName is the workspace name the fake gives an API key when
// Options.Keys is nil: "key-" and the first 8 hex digits of its SHA-256,
// so ledgers and logs never hold the key itself.
func KeyName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "key-" + hex.EncodeToString(sum[:4])
}

// call is one request on its way through the fake.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	faults Faults
	strict bool
	rec    Request
	typ    cdp.Type // "" for /v1/batch
}

// serveHTTP is the request pipeline; the order is documented on Faults.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, ControlPrefix) {
		s.control(w, r)
		return
	}
	c := &call{w: w, r: r, faults: *s.faults.Load()}
	c.strict = s.opts.Strict == StrictAlways || (s.opts.Strict == StrictByHeader && r.Header.Get(cdp.StrictModeHeader) == "1")
	c.rec = Request{Time: s.opts.Now(), Method: r.Method, Path: r.URL.EscapedPath(), Strict: c.strict}
	key, _, hasAuth := r.BasicAuth()
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
		s.fail(c, cmpOr(f.DownStatus, DefaultDownStatus), FaultDown, "service unavailable")
		return
	}
	if f.Unauthorized {
		s.unauthorized(c, FaultUnauthorized)
		return
	}
	if !s.route(c) {
		return
	}
	ws, ok := s.workspace(key, hasAuth)
	if !ok {
		s.unauthorized(c, "")
		return
	}
	c.rec.Workspace = ws
	if s.failLeft.Load() > 0 && s.failLeft.Add(-1) >= 0 {
		s.fail(c, cmpOr(f.FailStatus, DefaultFailStatus), FaultFailNext, "injected failure")
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
	s.handleCalls(c)
}

// route checks the method and path; it answers 404 or 405 and returns false
// for anything but POST to a Pipelines path.
func (s *Server) route(c *call) bool {
	path := c.r.URL.Path
	typ := cdp.TypeFromPath(path)
	if typ == "" && path != cdp.BatchPath {
		s.fail(c, http.StatusNotFound, "", "not found")
		return false
	}
	if c.r.Method != http.MethodPost {
		c.w.Header().Set("Allow", http.MethodPost)
		s.fail(c, http.StatusMethodNotAllowed, "", "method not allowed")
		return false
	}
	c.typ = typ
	return true
}

// workspace checks the API key and names its workspace.
func (s *Server) workspace(key string, hasAuth bool) (string, bool) {
	if !hasAuth || key == "" {
		return "", false
	}
	if s.opts.Keys == nil {
		return KeyName(key), true
	}
	for k, ws := range s.opts.Keys {
		if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			return ws, true
		}
	}
	return "", false
}

// record counts c in the ledger and the request log. It runs before the
// answer is written, so a client that has its answer finds it counted.
func (s *Server) record(c *call, o outcome) {
	o.ws = c.rec.Workspace
	o.strict = c.strict
	c.rec.Status = o.status
	s.mu.Lock()
	s.ledger.record(s.opts.Now(), o)
	s.log.push(c.rec)
	s.mu.Unlock()
	s.opts.Logger.DebugContext(c.r.Context(), "fake pipelines api request",
		"method", c.rec.Method, "path", c.rec.Path, "workspace", c.rec.Workspace, "strict", c.strict,
		"status", c.rec.Status, "fault", c.rec.Fault, "calls", len(c.rec.Calls))
}

// fail answers status with an error body.
func (s *Server) fail(c *call, status int, fault, msg string) {
	c.rec.Fault = fault
	c.rec.Errors = []string{msg}
	s.record(c, outcome{status: status})
	writeJSON(c.w, status, cdp.NewErrorBody(msg))
}

// unauthorized answers a missing or wrong key: 401 in strict mode, a 200
// that drops the request in permissive mode.
func (s *Server) unauthorized(c *call, fault string) {
	const msg = "unauthorized: check your Pipelines API key"
	if !c.strict {
		c.rec.Fault = fault
		c.rec.Errors = []string{msg}
		s.record(c, outcome{status: http.StatusOK, dropped: true})
		writeJSON(c.w, http.StatusOK, []byte("{}"))
		return
	}
	c.w.Header().Set("WWW-Authenticate", `Basic realm="Customer.io Pipelines API"`)
	s.fail(c, http.StatusUnauthorized, fault, msg)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
