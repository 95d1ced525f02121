package fake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

const (
	testSite = "site-1"
	testKey  = "key-1"
)

// start runs a fake for one test.
func start(t testing.TB, opts fake.Options) *fake.Server {
	t.Helper()
	srv := fake.NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

// clock is an injected clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// answer is a response read in full.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// auth is a Basic-auth pair; the zero auth sends none.
type auth struct{ site, key string }

var good = auth{testSite, testKey}

// send makes one request to srv and reads the whole answer.
func send(t testing.TB, srv *fake.Server, a auth, method, path string, body []byte) answer {
	t.Helper()
	ans, err := trySend(context.Background(), srv, a, method, path, body)
	require.NoError(t, err)
	return ans
}

func trySend(ctx context.Context, srv *fake.Server, a auth, method, path string, body []byte) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a != (auth{}) {
		req.SetBasicAuth(a.site, a.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

// batch encodes ops as a v2 batch body.
func batch(t testing.TB, ops ...any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"batch": ops})
	require.NoError(t, err)
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// identify returns a v2 identify op for person id.
func identify(id string, attrs map[string]any) track.Op {
	return track.Op{Type: "person", Identifiers: &track.Identifiers{ID: id}, Action: track.ActionIdentify, Attributes: attrs, Timestamp: 1_700_000_000}
}

// event returns a v2 event op for person id.
func event(person, name, id string, attrs map[string]any) track.Op {
	return track.Op{Type: "person", Identifiers: &track.Identifiers{ID: person}, Action: track.ActionEvent, Name: name, ID: id, Attributes: attrs, Timestamp: 1_700_000_000}
}

// errorMessage returns the meta error of a Track API error body, failing
// the test when body is not of that shape.
func errorMessage(t testing.TB, body []byte) string {
	t.Helper()
	msg := track.ErrorMessage(body)
	require.NotEmpty(t, msg, "body %q is not a Track API error body", body)
	return msg
}

// batchErrors decodes a batch answer's errors.
func batchErrors(t testing.TB, body []byte) []track.ItemError {
	t.Helper()
	var br track.BatchResponse
	require.NoError(t, json.Unmarshal(body, &br), "body %q", body)
	return br.Errors
}
