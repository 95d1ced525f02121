// Package serve runs the HTTP servers of a cioq server command until its
// context ends, then stops them gracefully: they stop accepting, requests in
// flight finish within a bound, and what outlives it is closed.
//
//	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
//	err := serve.Run(ctx, serve.Config{ShutdownTimeout: 20 * time.Second},
//		serve.Server{HTTP: srv, Listener: ln})
package serve
