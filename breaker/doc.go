// Package breaker provides a circuit breaker per workspace (sony/gobreaker
// v2, in memory in each process) whose openings are shared through Redis, so
// when one replica's breaker opens the whole fleet stops together.
//
//	set := breaker.New(breaker.Config{
//		Redis:     rdb,
//		IsFailure: func(err error) bool { return errors.Is(err, track.ErrServer) || errors.Is(err, track.ErrTransport) },
//	})
//	err := set.Execute(ctx, "ws1", func() error { return send(ctx) })
//	var open *breaker.OpenError // errors.Is(err, breaker.ErrOpen)
//	if errors.As(err, &open) {
//		// retry the task after open.RetryAfter; fn did not run
//	}
//
// Each process keeps its own gobreaker per workspace: no distributed lock per
// call. It opens after Config.Failures consecutive counted failures, stays
// open Config.OpenTimeout, then lets Config.Successes probes through and
// closes when they all succeed. gobreaker does not expose when an open
// breaker will probe, so the Set records it from OnStateChange.
//
// # Sharing
//
// When a local breaker opens, the Set writes
// "<prefix>{<workspace>}:breaker:open_until" (value: unix ms, PX
// OpenTimeout); when it closes, the Set deletes the key. Every Set on the
// same Redis reads the key at most every SharedCheckInterval per workspace
// and refuses calls while it lies in the future. Sharing is best effort: a
// Redis error is logged and the local breaker alone decides.
//
// When a shared opening ends, replicas whose local breakers never opened
// resume at full rate while the replica that opened probes; the rate limiter
// still bounds what they send.
package breaker
