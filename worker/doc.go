// Package worker delivers queued operations to the Customer.io Track API
// and, for workspaces with a Pipelines API key, to its Pipelines API.
//
// One asynq server serves the critical lane (suppress, unsuppress, delete)
// and Config.Servers serve the default lane. A handler decodes its task and
// hands the op to the in-process batcher of its workspace and lane, then
// waits for that op's own result. A batcher flushes at MaxOps, MaxBytes or
// MaxWait (critical ops never wait) and each flush is one v2 batch request:
//
//	claim (one Redis round trip: done-markers, tombstones, claims)
//	  → breaker (open circuit: ops go back with delay = time left, no failure)
//	  → limiter (one shared GCRA token per request; 429 sets a shared cool-down)
//	  → POST /api/v2/batch
//	  → done-markers for accepted ops (one round trip); per-op outcomes
//
// Outcomes per op: accepted → done; batch_index error → dead letter with its
// reason; 429, open breaker, claim held elsewhere, 401/403 pause → back to the
// queue without counting a failure (DelayError); 5xx and network errors → a
// counted failure, retried with exponential backoff and full jitter. A whole
// batch rejected without per-op errors is bisected to find the poison op.
//
// Dead letters live in cioq's own store (DeadLetters), per workspace in
// Redis, bounded, replayable unchanged.
//
// A workspace with a Pipelines sender (Workspace.Pipelines, a cdp.Client)
// also delivers the Pipelines API calls queued for it: they share its lanes,
// claims, done-markers, per-person order, tombstones, dead letters and
// history with its Track ops, but go out in requests of their own (POST
// /v1/batch, strict mode), from batchers of their own, through a circuit
// breaker and a 401 pause of their own, and, unless
// Workspace.PipelinesLimit is set, the same rate budget as its Track
// requests (docs/architecture.md, "Both APIs").
package worker
