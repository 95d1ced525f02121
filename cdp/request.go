package cdp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/cioq/cioq/track"
)

// maxDrainBytes bounds how much of an over-long response body is drained
// so the connection can be reused.
const maxDrainBytes = 256 << 10

// send POSTs body to path with the client's timeout, auth and strict mode,
// and maps the answer: 2xx → nil, non-2xx → *APIError, no answer or an
// unreadable body → *TransportError.
func (c *Client) send(ctx context.Context, path string, body []byte) error {
	const method = http.MethodPost
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := c.now()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return &TransportError{Method: method, Path: path, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set(StrictModeHeader, "1")

	resp, err := c.hc.Do(req)
	if err != nil {
		te := &TransportError{Method: method, Path: path, Err: err, Timeout: isTimeout(err)}
		c.log.DebugContext(ctx, "cdp request failed", "method", method, "path", path,
			"timeout", te.Timeout, "duration", c.now().Sub(start), "error", err.Error())
		return te
	}
	respBody, readErr := readBody(resp.Body)
	c.log.DebugContext(ctx, "cdp request", "method", method, "path", path,
		"status", resp.StatusCode, "duration", c.now().Sub(start))
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if ok && readErr != nil {
		// A 2xx whose body broke off: the request was answered, but treat
		// the outcome as unknown, like the Track client does for a batch;
		// a resend is deduped by messageId.
		return &TransportError{Method: method, Path: path, Err: readErr, Timeout: isTimeout(readErr)}
	}
	if ok {
		return nil
	}
	if len(respBody) > maxBodyInError {
		respBody = respBody[:maxBodyInError]
	}
	return &APIError{
		Method: method, Path: path, StatusCode: resp.StatusCode, Body: respBody,
		RetryAfter: track.ParseRetryAfter(resp.Header.Get("Retry-After"), c.now()),
	}
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
