package serve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/serve"
)

// held is a handler that answers only once release is closed.
func held() (h http.Handler, entered, release chan struct{}) {
	entered, release = make(chan struct{}, 8), make(chan struct{})
	h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "done")
	})
	return h, entered, release
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
	}
	return err != nil
}

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("FinishesRequestsInFlightAndRefusesNewOnes", func(t *testing.T) {
		t.Parallel()
		h, entered, release := held()
		ln := listen(t)
		ctx, cancel := context.WithCancel(context.Background())
		var stopping []error
		served := make(chan error, 1)
		go func() {
			served <- serve.Run(ctx, serve.Config{ShutdownTimeout: 30 * time.Second, Stopping: func(err error) { stopping = append(stopping, err) }},
				serve.Server{HTTP: &http.Server{Handler: h, ReadHeaderTimeout: time.Second}, Listener: ln})
		}()
		answered := make(chan int, 1)
		go func() {
			resp, err := http.Get("http://" + ln.Addr().String())
			if err != nil {
				answered <- -1
				return
			}
			_ = resp.Body.Close()
			answered <- resp.StatusCode
		}()
		<-entered
		cancel()
		require.Eventually(t, func() bool { return refused(ln.Addr().String()) }, 10*time.Second, 10*time.Millisecond)
		select {
		case <-served:
			t.Fatal("Run returned with a request in flight")
		default:
		}
		close(release)
		require.Equal(t, http.StatusOK, <-answered)
		require.NoError(t, <-served)
		require.Equal(t, []error{nil}, stopping, "Stopping runs once, with no error after ctx ended")
	})

	t.Run("ClosesWhatOutlivesTheTimeout", func(t *testing.T) {
		t.Parallel()
		h, entered, release := held()
		defer close(release)
		ln := listen(t)
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() {
			served <- serve.Run(ctx, serve.Config{ShutdownTimeout: 50 * time.Millisecond},
				serve.Server{HTTP: &http.Server{Handler: h, ReadHeaderTimeout: time.Second}, Listener: ln})
		}()
		go func() {
			if resp, err := http.Get("http://" + ln.Addr().String()); err == nil {
				_ = resp.Body.Close()
			}
		}()
		<-entered
		cancel()
		select {
		case err := <-served:
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorContains(t, err, "shutdown: ")
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its shutdown timeout")
		}
	})

	t.Run("StopsEveryServerWhenOneFails", func(t *testing.T) {
		t.Parallel()
		good, bad := listen(t), listen(t)
		require.NoError(t, bad.Close()) // Serve fails at once
		var stopping []error
		err := serve.Run(context.Background(), serve.Config{Stopping: func(err error) { stopping = append(stopping, err) }},
			serve.Server{HTTP: &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}, Listener: good},
			serve.Server{HTTP: &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}, Listener: bad})
		require.ErrorIs(t, err, net.ErrClosed)
		require.ErrorContains(t, err, "serve: ")
		require.Len(t, stopping, 1)
		require.True(t, errors.Is(stopping[0], net.ErrClosed), "Stopping is told why")
		require.True(t, refused(good.Addr().String()), "the other server stopped too")
	})
}
