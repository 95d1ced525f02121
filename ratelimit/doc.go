// Package ratelimit provides cluster-wide GCRA limits per workspace, at an
// effective rate that learns Customer.io's real limit from its 429s, with a
// reserved share for critical requests.
//
// Every replica shares one budget per workspace, kept in Redis and computed
// with Redis's own clock (TIME inside the scripts), so clock skew between
// pods does not matter. One HTTP request to Customer.io takes one token, and
// its answer is handed back with the token:
//
//	l := ratelimit.New(rdb, ratelimit.Config{})
//	lim := ratelimit.Limit{Rate: 80} // 80 req/s (burst 8, critical share 20%)
//	tok, err := l.Wait(ctx, "ws1", lim, critical, 2*time.Second)
//	if err != nil {
//		var d *ratelimit.DelayError // errors.Is(err, ratelimit.ErrLimited)
//		// retry the task after d.RetryAfter
//	}
//	resp := send()
//	switch {
//	case resp.StatusCode == 429:
//		wait, _ := l.Throttled(ctx, tok, retryAfter) // every replica slows down
//	case resp.StatusCode < 300:
//		l.Succeeded(ctx, tok) // free while the workspace is at its budget
//	}
//
// # Adaptive rate
//
// The configured rate (Limit.Rate) is a ceiling. The rate every replica
// actually sends at, the effective rate, lives in Redis per workspace and
// follows Customer.io's answers (AIMD, as TCP does): a 429 cuts it once per
// round trip however many replicas see 429s, to 90% of the rate Customer.io
// was measured to accept since the previous cut (or by half, with a short
// cool-down, when there is no measurement); after a hold each run of
// accepted requests raises it by a step, back up to the configured rate and
// never past it. Retry-After is honoured as a cool-down. Adaptive holds the
// constants; docs/architecture.md says why they have their values.
//
// # Critical share
//
// A non-critical request must pass two GCRA checks in one script: the
// workspace's effective rate (with Burst scaled to it) and the bulk lane's
// rate×(1−CriticalShare), max(1, floor(burst×(1−CriticalShare))). It takes
// tokens only when both allow. Bulk traffic therefore never uses more than
// its share, and critical requests (suppress, delete), which check only the
// whole rate, always find the reserved share free, however low the
// effective rate has gone.
//
// # Keys
//
// All keys are "<prefix>{<workspace>}:ratelimit:<name>"; the braces are a
// Redis Cluster hash tag, so each script touches one slot:
//
//	all    GCRA theoretical arrival time (unix µs), whole rate
//	bulk   GCRA theoretical arrival time (unix µs), non-critical lane
//	state  hash: effective rate, last cut, accepted since it, run towards
//	       the next raise, cool-down end; expires StateTTL after its last
//	       write (lua.go lists the fields)
package ratelimit
