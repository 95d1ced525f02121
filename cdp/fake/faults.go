package fake

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/cioq/cioq/cdp"
)

// roll reports true with probability p.
func (s *Server) roll(p float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

// errorStatus picks one of statuses (DefaultErrorStatuses when empty).
func (s *Server) errorStatus(statuses []int) int {
	if len(statuses) == 0 {
		statuses = DefaultErrorStatuses()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return statuses[s.rng.IntN(len(statuses))]
}

// delay holds c for d, or until its context ends; it reports whether d
// passed. It reads the body first (up to the batch limit) so that net/http
// watches the connection and ends the context when the client goes away.
func (s *Server) delay(c *call, d time.Duration) bool {
	buf, err := io.ReadAll(io.LimitReader(c.r.Body, cdp.MaxBatchBytes+1))
	if err != nil {
		return false
	}
	c.r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), c.r.Body), c.r.Body}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.r.Context().Done():
		return false
	}
}

// drop records a request that gets no answer because its client left or
// the server is closing, and closes its connection.
func (s *Server) drop(c *call, fault string) {
	c.rec.Fault = fault
	s.record(c, outcome{canceled: true})
	hangUp(c.w)
}

// closeConnection closes the connection without an answer.
func (s *Server) closeConnection(c *call) {
	c.rec.Fault = FaultCloseConnection
	s.record(c, outcome{closed: true})
	hangUp(c.w)
}

// hangUp closes the connection of w without writing an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	_ = conn.Close()
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
