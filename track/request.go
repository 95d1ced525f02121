package track

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxDrainBytes bounds how much of an over-long response body is drained
// so the connection can be reused; past it the connection is dropped.
const maxDrainBytes = 256 << 10

// MaxRetryAfter caps a parsed Retry-After.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter parses a Retry-After header value: delay seconds or an
// HTTP-date (relative to now). It returns zero for an absent, malformed or
// past value and caps the result at MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// request is one call to the Track API.
type request struct {
	method, path string
	// body is the JSON body; nil sends none.
	body []byte
	// pooled, when set, is the body instead of body.
	pooled *pooledBody
	// batchOps > 0 asks for v2 batch semantics over that many ops.
	batchOps int
}

// send performs req with the client's timeout and maps the answer: 2xx →
// nil (or *BatchError for a batch with per-op errors), non-2xx → *APIError
// (or *BatchError), no answer → *TransportError.
func (c *Client) send(ctx context.Context, req request) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := c.now()
	hreq, err := http.NewRequestWithContext(ctx, req.method, c.base+req.path, nil)
	if err != nil {
		return &TransportError{Method: req.method, Path: req.path, Err: err}
	}
	switch {
	case req.pooled != nil:
		hreq.Body = req.pooled.open()
		hreq.GetBody = func() (io.ReadCloser, error) { return req.pooled.open(), nil }
		hreq.ContentLength = int64(req.pooled.buf.Len())
		defer req.pooled.finish()
	case req.body != nil:
		b := req.body
		hreq.Body = io.NopCloser(bytes.NewReader(b))
		hreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		hreq.ContentLength = int64(len(b))
	}
	if hreq.ContentLength > 0 {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("Authorization", c.auth)
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)

	resp, err := c.hc.Do(hreq)
	if err != nil {
		te := &TransportError{Method: req.method, Path: req.path, Err: err, Timeout: isTimeout(err)}
		c.log.DebugContext(ctx, "track request failed", "site_id", c.siteID, "method", req.method,
			"path", req.path, "timeout", te.Timeout, "duration", c.now().Sub(start), "error", err.Error())
		return te
	}
	body, readErr := readBody(resp.Body)
	c.log.DebugContext(ctx, "track request", "site_id", c.siteID, "method", req.method, "path", req.path,
		"status", resp.StatusCode, "duration", c.now().Sub(start))
	return c.answer(req, resp, body, readErr)
}

// answer maps a response to the call's result.
func (c *Client) answer(req request, resp *http.Response, body []byte, readErr error) error {
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if req.batchOps > 0 {
		if readErr != nil {
			// The per-op outcome is unknown: report no answer, so the
			// batch is retried (ops are idempotent by event id and
			// timestamp).
			return &TransportError{Method: req.method, Path: req.path, Err: readErr, Timeout: isTimeout(readErr)}
		}
		if ok || errors.Is(StatusClass(resp.StatusCode), ErrInvalidRequest) {
			items, omitted := batchItems(body, req.batchOps)
			if omitted > 0 {
				// The list was cut short (BatchResponse.Omitted): which of
				// the later ops failed is unknown, so the batch is
				// answered as a whole; sending it in smaller parts gets
				// every op its own outcome (ops are idempotent).
				if len(body) > maxBodyInError {
					body = body[:maxBodyInError]
				}
				return &APIError{Method: req.method, Path: req.path, StatusCode: resp.StatusCode, Body: body}
			}
			if len(items) > 0 {
				return &BatchError{StatusCode: resp.StatusCode, Items: items}
			}
		}
	}
	if ok {
		return nil
	}
	if len(body) > maxBodyInError {
		body = body[:maxBodyInError]
	}
	return &APIError{
		Method: req.method, Path: req.path, StatusCode: resp.StatusCode, Body: body,
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), c.now()),
	}
}

// batchItems returns the per-op errors of a batch answer whose batch_index
// is within [0, n), none when the body has no such errors, and how many
// errors the answer says it left out (BatchResponse.Omitted).
func batchItems(body []byte, n int) ([]ItemError, int) {
	if len(body) == 0 {
		return nil, 0
	}
	var br struct {
		Errors []struct {
			Index   *int   `json:"batch_index"`
			Reason  string `json:"reason"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
		Omitted int `json:"errors_omitted"`
	}
	if json.Unmarshal(body, &br) != nil {
		return nil, 0
	}
	var items []ItemError
	for _, e := range br.Errors {
		if e.Index == nil || *e.Index < 0 || *e.Index >= n {
			continue
		}
		items = append(items, ItemError{Index: *e.Index, Reason: e.Reason, Field: e.Field, Message: e.Message})
	}
	return items, br.Omitted
}

// readBody reads at most MaxResponseBytes, drains a bounded rest so the
// connection can be reused, and closes.
func readBody(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, MaxResponseBytes))
	if err != nil {
		return body, err
	}
	_, _ = io.CopyN(io.Discard, rc, maxDrainBytes)
	return body, nil
}

// isTimeout reports whether err is a deadline or network timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pooledBody is a request body held in a pooled buffer. The HTTP transport
// may still read or close a body after Do returns, and may reopen it
// (GetBody) to retry on a fresh connection, so the buffer returns to the
// pool only once Do has returned and every reader it opened is closed.
type pooledBody struct {
	pool *sync.Pool
	buf  *bytes.Buffer

	mu       sync.Mutex
	readers  int
	finished bool
}

// maxPooledBuffer keeps outsized buffers out of the pool.
const maxPooledBuffer = 2 * MaxBatchBytes

func (p *pooledBody) open() io.ReadCloser {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readers++
	return &pooledReader{Reader: bytes.NewReader(p.buf.Bytes()), p: p}
}

// finish records that Do returned.
func (p *pooledBody) finish() {
	p.mu.Lock()
	p.finished = true
	p.releaseLocked()
	p.mu.Unlock()
}

func (p *pooledBody) releaseLocked() {
	if !p.finished || p.readers > 0 || p.buf == nil {
		return
	}
	if p.buf.Cap() <= maxPooledBuffer {
		p.buf.Reset()
		p.pool.Put(p.buf)
	}
	p.buf = nil
}

type pooledReader struct {
	*bytes.Reader
	p    *pooledBody
	once sync.Once
}

// Close releases the reader's hold on the buffer; later calls do nothing.
func (r *pooledReader) Close() error {
	r.once.Do(func() {
		r.p.mu.Lock()
		r.p.readers--
		r.p.releaseLocked()
		r.p.mu.Unlock()
	})
	return nil
}
