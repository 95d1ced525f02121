// Package ratelimit provides cluster-wide GCRA limits per workspace, with a
// reserved share for critical requests and a shared cool-down after 429s.
//
// Every replica shares one budget per workspace, kept in Redis and computed
// with Redis's own clock (TIME inside the script), so clock skew between
// pods does not matter. One HTTP request to Customer.io takes one token:
//
//	l := ratelimit.New(rdb, ratelimit.Config{})
//	lim := ratelimit.Limit{Rate: 80} // 80 req/s (burst 8, critical share 20%)
//	if err := l.Wait(ctx, "ws1", lim, critical, 2*time.Second); err != nil {
//		var d *ratelimit.DelayError // errors.Is(err, ratelimit.ErrLimited)
//		// retry the task after d.RetryAfter
//	}
//	resp := send()
//	if resp.StatusCode == 429 {
//		l.Throttled(ctx, "ws1", retryAfter) // every replica now cools down
//	} else {
//		l.Succeeded(ctx, "ws1") // free unless this process saw a 429 lately
//	}
//
// # Critical share
//
// A non-critical request must pass two GCRA checks in one script: the
// workspace's whole budget (Rate, Burst) and the bulk lane's
// (Rate×(1−CriticalShare), max(1, floor(Burst×(1−CriticalShare)))). It takes
// tokens only when both allow. Bulk traffic therefore never uses more than
// its share, and critical requests (suppress, delete), which check only the
// whole budget, always find the reserved share free.
//
// # Keys
//
// All keys are "<prefix>{<workspace>}:ratelimit:<name>"; the braces are a
// Redis Cluster hash tag, so each script touches one slot:
//
//	all       GCRA theoretical arrival time (unix µs), whole budget
//	bulk      GCRA theoretical arrival time (unix µs), non-critical lane
//	cooldown  present while the workspace cools down after a 429 (PX)
//	streak    consecutive 429s, expires StreakTTL after the last one
package ratelimit
