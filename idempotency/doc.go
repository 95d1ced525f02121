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
//	<prefix>{ws}:tomb:<person>   "<unix ms>:<op id>", PX TombstoneTTL (7 days)
//
// # Memory
//
// The done-marker is the key that lives long, one per delivered operation. Its
// cost is the key name plus Redis's per-key overhead: with the default prefix,
// a 3-character workspace and a 26-character ULID op id the name is about 45
// bytes; a small string value ("1" is a shared integer object) and the
// dictionary entry with its expiry add roughly 50–70 bytes more with jemalloc,
// so budget about 100–120 bytes per operation for DoneTTL. For example 10
// million operations a day with the 24 h TTL need about 1–1.2 GB. Claims live
// only seconds and tombstones exist per deleted or suppressed person, so both
// are small beside the done-markers. Shorter op ids and a shorter prefix save
// bytes one for one; measure with MEMORY USAGE on a real key before sizing.
package idempotency
