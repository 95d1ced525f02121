// Package history keeps, per operation, the story of what happened to it:
// enqueued, each delivery attempt, deferrals, drops, dead letters and the
// delivery, with times, in Redis with a bounded TTL and size. It answers the
// operator's first question, "where is my event?", in one read.
//
// Writers append in one round trip per batch (one EVALSHA for every op of a
// batch); readers get an op's timeline or a person's recent ops:
//
//	h := history.New(rdb, history.Config{})
//	err := h.Append(ctx, "ws1", []history.Record{{
//		OpID: "01J...", Person: "id:u1", EnqueuedAt: at,
//		Seed:   history.Event{Kind: history.KindEnqueued, At: at, Queue: "default", Action: "event"},
//		Events: []history.Event{{Kind: history.KindDelivered, At: now, Status: 200, Batch: "b1"}},
//	}})
//	op, err := h.Get(ctx, "ws1", "01J...")          // ErrNotFound when unknown or expired
//	ops, err := h.Find(ctx, "ws1", "id:u1", history.Query{Since: time.Hour})
//
// # Keys
//
// Every key is "<prefix>{<workspace>}:<kind>:<id>", hash-tagged per
// workspace like the idempotency keys, so one batch's script runs on one
// Redis Cluster node:
//
//	<prefix>{ws}:h:<op id>     list of encoded events, PX TTL, at most MaxEvents
//	                           (the first event, usually "enqueued", is kept
//	                           when older ones are trimmed)
//	<prefix>{ws}:hp:<person>   sorted set of op ids scored by enqueue time (ms),
//	                           at most MaxPersonOps, PX TTL
//
// An event is one short line of tab-separated fields (kind, unix ms, status,
// latency µs, next ms, batch, queue, action, ref, reason; trailing empty
// fields left out; the reason cut to MaxReasonBytes), for example
// "d\t1732450000123\t200\t8123\t\tk3f9a-1b". docs/BENCHMARKS.md ("History
// cost") gives the measured bytes per op.
//
// The first writer of an op's history seeds it (the producer at enqueue, or
// the worker when the producer kept none) and adds the op to its person's
// index; later writers only append.
package history
