// Package idempotency keeps the per-operation state that makes delivery
// single: done-markers, short claims and per-person tombstones, all in Redis
// and shared by every worker replica.
//
// A worker checks a whole batch in one round trip before it sends, and marks
// the accepted operations done in one round trip after:
//
//	store := idempotency.New(rdb, idempotency.Config{})
//	checks, err := store.Claim(ctx, "ws1", items) // one EVALSHA
//	// send the items whose checks[i].Verdict == idempotency.Send, then:
//	err = store.MarkDone(ctx, "ws1", sentOpIDs) // one EVALSHA
//	// or, after a failed send, store.Release(ctx, "ws1", sentOpIDs)
//
// # Keys
//
// Every key is "<prefix>{<workspace>}:<kind>:<id>" (prefix "cioq:" by
// default). The braces are a Redis Cluster hash tag, so a workspace's keys
// share one slot and each script (which touches one workspace only) runs on
// one node:
//
//	<prefix>{ws}:done:<op id>    "1", EX DoneTTL (24 h)
//	<prefix>{ws}:claim:<op id>   <store token>, PX ClaimTTL (30 s)
//	<prefix>{ws}:tomb:<person>   "<unix µs>:<op id>", PX TombstoneTTL (7 days)
//
// # Memory
//
// The done-marker is the key that lives long, one per delivered operation.
// With the default prefix, a 3-character workspace and a 26-character ULID op
// id ("cioq:{ws1}:done:01JDQ4Z3W5X6Y7Z8A9B0C1D2E3", 42 bytes), MEMORY USAGE
// on Redis 7.0 reports 88 bytes; the entry in the expiry table adds about 20
// more, so budget about 110 bytes per operation for DoneTTL: 10 million
// operations a day with the 24 h TTL need about 1.1 GB. A claim measures 136
// bytes (its value is the 24-character store token) but lives only until
// MarkDone, Release or ClaimTTL; tombstones exist one per deleted or
// suppressed person. Shorter op ids and a shorter prefix save bytes one for
// one.
package idempotency
