package fake_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
)

const (
	testKey = "cdp-key-1"
	testWS  = "shop"
)

// keys is the Options.Keys most tests use.
func keys() map[string]string { return map[string]string{testKey: testWS, "cdp-key-2": "other"} }

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
	Body   string
}

// req describes one request; the zero req is a strict POST with testKey.
type req struct {
	path       string
	body       string
	key        string // "" means testKey; "-" sends no auth
	permissive bool   // no X-Strict-Mode header
	method     string // "" means POST
	gzip       bool
}

func send(t testing.TB, srv *fake.Server, r req) answer {
	t.Helper()
	a, err := trySend(context.Background(), srv, r)
	require.NoError(t, err)
	return a
}

func trySend(ctx context.Context, srv *fake.Server, r req) (answer, error) {
	body := []byte(r.body)
	if r.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
	}
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	hr, err := http.NewRequestWithContext(ctx, method, srv.URL+r.path, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	switch r.key {
	case "-":
	case "":
		hr.SetBasicAuth(testKey, "")
	default:
		hr.SetBasicAuth(r.key, "")
	}
	if !r.permissive {
		hr.Header.Set(cdp.StrictModeHeader, "1")
	}
	if r.gzip {
		hr.Header.Set("Content-Encoding", "gzip")
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
}

// batch builds a /v1/batch body from calls given as JSON objects.
func batch(calls ...string) string {
	var b bytes.Buffer
	b.WriteString(`{"batch":[`)
	for i, c := range calls {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c)
	}
	b.WriteString(`]}`)
	return b.String()
}

// trackCall is a track call of user u with event e and messageId m.
func trackCall(u, e, m string) string {
	return `{"type":"track","userId":"` + u + `","event":"` + e + `","messageId":"` + m + `"}`
}

// errorsOf decodes a {"meta":{"errors":[...]}} body.
func errorsOf(t testing.TB, body string) []string {
	t.Helper()
	var eb cdp.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(body), &eb), body)
	return eb.Meta.Errors
}

// ws returns the ledger of the test workspace.
func ws(srv *fake.Server) fake.WorkspaceLedger { return srv.Ledger().PerWorkspace[testWS] }
