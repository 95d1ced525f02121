// Package nodetest runs the Node SDK harness (loadtest/node, which drives
// Customer.io's @customerio/cdp-analytics-node unchanged) from Go tests. It
// is imported only by _test.go files.
//
// Harness skips the test, saying why, where node or npm is not installed,
// and installs the harness's pinned dependencies (npm ci, from
// package-lock.json) once, under a file lock, so test binaries of several
// packages running at once never install over each other. `make test`
// installs them before the Go tests run (make node-deps).
package nodetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
)

// Call is one line of the harness's output: a call as the SDK sent it.
type Call struct {
	Type        cdp.Type `json:"type"`
	Event       string   `json:"event"`
	UserID      string   `json:"userId"`
	AnonymousID string   `json:"anonymousId"`
	MessageID   string   `json:"messageId"`
	Timestamp   string   `json:"timestamp"`
}

// Calls is how many calls one run of the harness sends.
const Calls = 14

// Dir returns the harness directory (loadtest/node of the module).
func Dir(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(tb, ok)
	dir, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", "..", "loadtest", "node"))
	require.NoError(tb, err)
	return dir
}

// Harness returns the harness directory with its pinned dependencies
// installed, or skips tb when node or npm is not installed.
func Harness(tb testing.TB) string {
	tb.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("%s is not installed: the Node SDK test (loadtest/node, @customerio/cdp-analytics-node) does not run", tool)
		}
	}
	dir := Dir(tb)
	installed := filepath.Join(dir, "node_modules", "@customerio", "cdp-analytics-node", "package.json")
	if _, err := os.Stat(installed); err == nil {
		return dir
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(tb, err)
	defer lock.Close()
	require.NoError(tb, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if _, err := os.Stat(installed); err == nil {
		return dir // another test binary installed it meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(tb, err, "npm ci in %s (needs the npm registry once):\n%s", dir, out)
	return dir
}

// Env says where and how the harness sends.
type Env struct {
	// Host is the base URL (the fake, or cioq ingest).
	Host string
	// Key is the Pipelines API key.
	Key string
	// RunID makes the run's user ids unique.
	RunID string
}

// Command returns the harness command for env, with a 2-minute bound.
func Command(tb testing.TB, dir string, env Env) (*exec.Cmd, context.CancelFunc) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "node", "drive.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CIOQ_CDP_HOST="+env.Host, "CIOQ_CDP_KEY="+env.Key, "CIOQ_RUN_ID="+env.RunID)
	return cmd, cancel
}

// Run runs the harness and returns the calls it reports sent; it fails tb
// when the harness reports an error (a failed delivery).
func Run(tb testing.TB, dir string, env Env) []Call {
	tb.Helper()
	cmd, cancel := Command(tb, dir, env)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(tb, cmd.Run(), "drive.js failed:\n%s", stderr.String())
	tb.Log(stderr.String())
	var calls []Call
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var c Call
		require.NoError(tb, json.Unmarshal(sc.Bytes(), &c), sc.Text())
		calls = append(calls, c)
	}
	require.NoError(tb, sc.Err())
	return calls
}
