package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultShutdownTimeout bounds a graceful stop when Config.ShutdownTimeout
// is zero.
const DefaultShutdownTimeout = 5 * time.Second

// Server is an http.Server and the listener it serves.
type Server struct {
	// HTTP is the server; its Handler and timeouts are the caller's.
	HTTP *http.Server
	// Listener is where HTTP accepts connections. Run closes it.
	Listener net.Listener
}

// Config says how Run stops.
type Config struct {
	// ShutdownTimeout bounds how long a stop waits for the requests in
	// flight; past it their connections are closed. Zero means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Stopping, when set, runs once before the servers stop, while they
	// still answer (a worker drains its queues there, still reporting
	// /healthz). err is nil when ctx ended, else the error of the server
	// that failed.
	Stopping func(err error)
}

// Run serves every server until ctx is done or one of them fails, then
// calls cfg.Stopping and shuts all of them down together: they stop
// accepting and wait up to cfg.ShutdownTimeout for requests in flight.
//
// It returns nil after a stop in which every request finished, the failed
// server's error ("serve: ..."), or, when requests outlived the timeout, an
// error wrapping context.DeadlineExceeded ("shutdown: ...").
func Run(ctx context.Context, cfg Config, servers ...Server) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.HTTP.Serve(s.Listener) }()
	}
	running := len(servers)
	var failed error
	select {
	case <-ctx.Done():
	case err := <-errc:
		running--
		failed = fmt.Errorf("serve: %w", err)
	}
	if cfg.Stopping != nil {
		cfg.Stopping(failed)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	stopErrs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			if err := s.HTTP.Shutdown(sctx); err != nil {
				_ = s.HTTP.Close()
				stopErrs[i] = fmt.Errorf("shutdown: %w", err)
			}
		})
	}
	wg.Wait()
	stopErr := errors.Join(stopErrs...)
	for ; running > 0; running-- {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) && failed == nil {
			failed = fmt.Errorf("serve: %w", err)
		}
	}
	return cmp.Or(failed, stopErr)
}
