package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
)

// runMainEnv makes the test binary run main() instead of the tests: the
// signal tests start it as a child process, the real binary's signal path.
const runMainEnv = "CIOQ_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// startMain runs `cioq args...` as a child process with env and waits for
// the URL it logs.
func startMain(t *testing.T, env map[string]string, args ...string) (cmd *exec.Cmd, base string, errOut *syncBuffer, done <-chan error) {
	t.Helper()
	cmd = exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	errOut = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &syncBuffer{}, errOut
	require.NoError(t, cmd.Start())
	exited, waited := make(chan error, 1), make(chan struct{})
	go func() {
		exited <- cmd.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
	done = exited
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if m := urlRE.FindStringSubmatch(errOut.String()); m != nil {
			return cmd, m[1], errOut, done
		}
		select {
		case err := <-done:
			t.Fatalf("cioq %s exited: %v: %s", strings.Join(args, " "), err, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("cioq %s logged no URL: %s", strings.Join(args, " "), errOut.String())
	return
}

// A first SIGTERM starts a graceful stop that waits for the request in
// flight; a second one ends the process at once, with a failure code.
func TestMain_SecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			db := redistest.New(t)
			env := map[string]string{"CUSTOMERIO_SITE_ID": "sig-site", "CUSTOMERIO_TRACK_API_KEY": "sig-key",
				"CIOQ_KEY_PREFIX": redistest.Prefix(t)}
			cmd, base, errOut, done := startMain(t, env, "ingest", "--addr", "127.0.0.1:0", "--redis", db.URL(),
				"--read-timeout", "2m", "--shutdown-timeout", "2m")

			// A request whose body never finishes: the graceful stop waits
			// for it (up to the 2 min shutdown timeout).
			conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			require.NoError(t, err)
			defer conn.Close()
			_, err = fmt.Fprintf(conn, "PUT /api/v1/customers/u1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"plan\":",
				base64.StdEncoding.EncodeToString([]byte("sig-site:sig-key")))
			require.NoError(t, err)
			require.Eventually(t, func() bool { // authorized, reading its body
				_, body := httpGet(t, base+"/metrics")
				return strings.Contains(body, `cioq_ingest_inflight_requests{workspace="default"} 1`)
			}, 30*time.Second, 10*time.Millisecond, "the request is in flight")

			require.NoError(t, cmd.Process.Signal(sig))
			require.Eventually(t, func() bool {
				return strings.Contains(errOut.String(), "ingest shutting down: finishing requests in flight")
			}, 30*time.Second, 10*time.Millisecond, "the first signal starts a graceful stop: %s", errOut.String())
			select {
			case err := <-done:
				t.Fatalf("the first signal ended the process (%v) with a request in flight", err)
			default:
			}

			start := time.Now()
			require.NoError(t, cmd.Process.Signal(sig))
			select {
			case err := <-done:
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee, "a second signal exits with a failure code")
				require.Equal(t, 128+int(sig), ee.ExitCode(), errOut.String())
				require.Less(t, time.Since(start), 10*time.Second)
			case <-time.After(10 * time.Second):
				t.Fatalf("the second %s was swallowed: still waiting for the shutdown timeout: %s", sig, errOut.String())
			}
		})
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
