// Package idempotency keeps the per-operation and per-person state that
// makes delivery single and ordered, in Redis and shared by every worker
// replica: one key per operation (a claim while it is being sent, then its
// done-marker), the stamps that order a workspace's operations, order
// registrations of operations others may have to wait for, and per-person
// tombstones.
//
// The enqueue script (package taskq, built on LuaLib) stamps and registers
// operations as they are queued. A worker checks a whole batch in one round
// trip before it sends, and settles it in one round trip after:
//
//	store := idempotency.New(rdb, idempotency.Config{})
//	checks, err := store.Claim(ctx, "ws1", items) // one EVALSHA
//	// send the items whose checks[i].Verdict == idempotency.Send, then:
//	err = store.MarkDone(ctx, "ws1", sent)        // one EVALSHA
//	// or, after a failed send, store.Release(ctx, "ws1", sent),
//	// or, for dead letters, store.Forget(ctx, "ws1", dead)
//
// # Keys
//
// Every key is "<prefix>{<workspace>}:<kind>:<id>" (prefix "cioq:" by
// default). The braces are a Redis Cluster hash tag, so a workspace's keys
// share one slot and each script (which touches one workspace only) runs on
// one node:
//
//	<prefix>{ws}:op:<op id>          "c:<store token>" PX ClaimTTL (30 s) while claimed,
//	                                 then "d" EX DoneTTL (24 h) once delivered
//	<prefix>{ws}:stamp               the last stamp given in the workspace (µs)
//	<prefix>{ws}:p:<person>          hash: tombstone t, first unsuppress after it u,
//	                                 pending barrier count b, pending identifies per
//	                                 second i<ts>, droppable ops in flight f
//	<prefix>{ws}:ord:<person>        zset of pending barriers, score = stamp
//	<prefix>{ws}:idn:<person>\0<ts>  zset of pending identifies of one timestamp second
//
// The person keys live PX TombstoneTTL (7 days), renewed by each
// registration; the order sets empty as their operations settle.
//
// # Memory
//
// The op key is the one that lives long, one per delivered operation: with
// the default prefix, a 3-character workspace and a 26-character ULID op id
// ("cioq:{ws1}:op:01JDQ4Z3W5X6Y7Z8A9B0C1D2E3" = "d"), MEMORY USAGE on Redis
// 7.0 reports 104 bytes; the entry in the expiry table adds about 20 more,
// so 10 million operations a day with the 24 h TTL need about 1.2 GB. The
// claim is no key of its own any more. A person with pending registrations
// costs a hash (about 104 bytes) and an order or identify set (about 120
// bytes for one entry), both gone once its operations settle, tombstones
// aside (one per deleted or suppressed person, TombstoneTTL).
package idempotency
