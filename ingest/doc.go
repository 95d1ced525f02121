// Package ingest is a Track-compatible HTTP endpoint: an http.Handler that
// accepts the Customer.io Track API paths (v1 identify, delete, track,
// anonymous track, suppress, unsuppress, devices, merge; v2 entity and
// batch) with Basic auth mapped to a configured workspace, validates each op
// as the Track API does, maps v1 calls to v2 ops (track.V1ToV2), enqueues
// them through the producer and answers 200 only once every op of the
// request is durable. A non-Go application switches its Customer.io base URL
// to ingest and changes nothing else; error bodies are the Track API's.
//
//	p, _ := producer.New(producer.Config{Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}})
//	h, err := ingest.New(ingest.Config{
//		Producer:   p,
//		Workspaces: []ingest.Workspace{{Name: "default", SiteID: site, APIKey: key}},
//	})
//	if err != nil { ... }
//	mux.Handle("/", h) // Track paths plus /healthz, /readyz, /metrics
//
// Idempotency: an Idempotency-Key header becomes the op's idempotency key
// (producer.Op.Key), "<key>:<index>" for each op of a v2 batch; without it an
// event's own `id` is its key. A client retrying a request with the same key
// gets 200 and nothing is queued twice. See docs/ingest.md.
package ingest
