package ingest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cioq/cioq/internal/health"
	"github.com/cioq/cioq/internal/metrics"
	"github.com/cioq/cioq/internal/wire"
	"github.com/cioq/cioq/track"
)

// Route labels of the v2 paths and of requests that match no route.
const (
	patternEntity = track.EntityPath
	patternBatch  = track.BatchPath
	patternOther  = "other"
)

// Handler is the ingest http.Handler. It is safe for concurrent use.
type Handler struct {
	cfg      Config
	bySite   map[string]*client
	byCDPKey map[[32]byte]*client // by the SHA-256 of the Pipelines API key (pipelines.go)
	metrics  *metrics.Ingest
	health   http.Handler
}

// client is one workspace's credentials and its in-flight count.
type client struct {
	ws       Workspace
	inflight atomic.Int64
}

// New validates cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	h := &Handler{cfg: cfg, bySite: make(map[string]*client, len(cfg.Workspaces)),
		byCDPKey: map[[32]byte]*client{}, metrics: metrics.NewIngest(cfg.Registerer)}
	for _, w := range cfg.Workspaces {
		h.bySite[w.SiteID] = &client{ws: w}
		if w.PipelinesKey != "" {
			// A client of its own: the Pipelines requests of a workspace
			// have their own in-flight cap.
			h.byCDPKey[cdpKeyOf(w.PipelinesKey)] = &client{ws: w}
		}
	}
	h.health = h.healthMux()
	return h, nil
}

// answer is what a request gets: a status, a JSON body and extra headers.
type answer struct {
	status int
	body   []byte
	header http.Header
}

func errorAnswer(status int, msg string) answer {
	return answer{status: status, body: wire.ErrorBody(msg)}
}

// ServeHTTP answers the Track API paths, the Pipelines API paths
// (pipelines.go), /healthz, /readyz and /metrics.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		h.health.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	var pattern string
	var a answer
	if isPipelinesPath(r.URL.Path) {
		pattern, a = h.servePipelines(w, r)
	} else {
		pattern, a = h.serve(w, r)
	}
	for k, vs := range a.header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
	h.metrics.Requests.WithLabelValues(pattern, strconv.Itoa(a.status)).Inc()
	h.metrics.RequestDuration.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
}

// request is one routed Track API request.
type request struct {
	pattern string
	kind    int // kindV1, kindEntity, kindBatch
	v1      wire.V1Call
	limit   int64
}

const (
	kindV1 = iota
	kindEntity
	kindBatch
)

// route finds the Track API call of r, or the 404/405 answer.
func (h *Handler) route(r *http.Request) (request, *answer) {
	path := r.URL.EscapedPath()
	if path == track.EntityPath || path == track.BatchPath {
		req := request{pattern: patternEntity, kind: kindEntity, limit: h.cfg.MaxEntityBodyBytes}
		if path == track.BatchPath {
			req = request{pattern: patternBatch, kind: kindBatch, limit: h.cfg.MaxBatchBodyBytes}
		}
		if r.Method != http.MethodPost {
			a := errorAnswer(http.StatusMethodNotAllowed, "method not allowed")
			a.header = http.Header{"Allow": {http.MethodPost}}
			return req, &a
		}
		return req, nil
	}
	call, err := wire.MatchV1(r.Method, path)
	var re *wire.RouteError
	if errors.As(err, &re) {
		if re.StatusCode == http.StatusMethodNotAllowed {
			a := errorAnswer(http.StatusMethodNotAllowed, "method not allowed")
			a.header = http.Header{"Allow": {strings.Join(re.Allow, ", ")}}
			return request{pattern: patternOther}, &a
		}
		a := errorAnswer(http.StatusNotFound, "not found")
		return request{pattern: patternOther}, &a
	}
	return request{pattern: call.Pattern, kind: kindV1, v1: call, limit: h.cfg.MaxV1BodyBytes}, nil
}

// serve runs the pipeline of one Track API request: route, auth, the
// per-client cap, the body, validation and mapping, enqueue.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (string, answer) {
	req, a := h.route(r)
	if a != nil {
		return req.pattern, *a
	}
	c := h.authorize(r)
	if c == nil {
		return req.pattern, answer{status: http.StatusUnauthorized,
			body:   wire.ErrorBody("unauthorized: check your site id and API key"),
			header: http.Header{"Www-Authenticate": {`Basic realm="Customer.io Track API"`}}}
	}
	if n := c.inflight.Add(1); n > int64(h.cfg.MaxConcurrentPerClient) {
		c.inflight.Add(-1)
		return req.pattern, answer{status: http.StatusTooManyRequests,
			body:   wire.ErrorBody(fmt.Sprintf("too many concurrent requests: at most %d per site id", h.cfg.MaxConcurrentPerClient)),
			header: http.Header{"Retry-After": {"1"}}}
	}
	gauge := h.metrics.InFlight.WithLabelValues(c.ws.Name)
	gauge.Inc()
	defer func() {
		c.inflight.Add(-1)
		gauge.Dec()
	}()
	key, err := idempotencyKey(r.Header.Get(IdempotencyKeyHeader))
	if err != nil {
		return req.pattern, errorAnswer(http.StatusBadRequest, err.Error())
	}
	body, a := readBody(w, r, req)
	if a != nil {
		return req.pattern, *a
	}
	return req.pattern, h.handle(r.Context(), c.ws, req, key, body)
}

// authorize returns the client whose Basic-auth credentials r carries, or
// nil.
func (h *Handler) authorize(r *http.Request) *client {
	site, key, ok := track.BasicAuth(r)
	if !ok || site == "" {
		return nil
	}
	c := h.bySite[site]
	if c == nil || subtle.ConstantTimeCompare([]byte(c.ws.APIKey), []byte(key)) != 1 {
		return nil
	}
	return c
}

// idempotencyKey checks the Idempotency-Key header value.
func idempotencyKey(v string) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case len(v) > MaxIdempotencyKeyBytes:
		return "", fmt.Errorf("%s: is %d bytes, limit %d", IdempotencyKeyHeader, len(v), MaxIdempotencyKeyBytes)
	case !utf8.ValidString(v):
		return "", fmt.Errorf("%s: is not valid UTF-8", IdempotencyKeyHeader)
	}
	return v, nil
}

// readBody reads the whole body, at most req.limit bytes: 413 when longer,
// 400 when it is not valid UTF-8 (the Track API's answers).
func readBody(w http.ResponseWriter, r *http.Request, req request) ([]byte, *answer) {
	tooLarge := func() *answer {
		msg := fmt.Sprintf("v1 body must be at most %d bytes", req.limit)
		switch req.kind {
		case kindEntity:
			msg = fmt.Sprintf("entity body must be at most %d bytes", req.limit)
		case kindBatch:
			msg = fmt.Sprintf("batch body must be smaller than %d bytes", req.limit+1)
		}
		a := errorAnswer(http.StatusRequestEntityTooLarge, msg)
		return &a
	}
	if r.ContentLength > req.limit {
		return nil, tooLarge()
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, req.limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge()
	case err != nil:
		a := errorAnswer(http.StatusBadRequest, "cannot read body")
		return nil, &a
	case !utf8.Valid(buf.Bytes()):
		a := errorAnswer(http.StatusBadRequest, "body is not valid UTF-8")
		return nil, &a
	}
	return buf.Bytes(), nil
}

// healthMux serves /healthz (alive), /readyz (Config.Ready) and /metrics.
func (h *Handler) healthMux() http.Handler {
	var checks []health.Check
	if h.cfg.Ready != nil {
		checks = []health.Check{{Func: h.cfg.Ready}}
	}
	return health.NewMux(health.Config{Checks: checks, Gatherer: h.cfg.Gatherer})
}

// logEnqueueFailure logs an op the queue did not take (never its payload).
func (h *Handler) logEnqueueFailure(ctx context.Context, ws string, ops int, err error) {
	h.cfg.Logger.WarnContext(ctx, "ingest enqueue failed", slog.String("workspace", ws),
		slog.Int("ops", ops), slog.String("error", err.Error()))
}
