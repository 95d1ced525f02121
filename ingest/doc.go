// Package ingest is a Track-compatible HTTP endpoint: an http.Handler that
// accepts the Customer.io Track API paths (v1 identify, delete, track,
// anonymous track, suppress, unsuppress, devices, merge; v2 entity and
// batch) with Basic auth mapped to a configured workspace, validates each op
// as the Track API does, maps v1 calls to v2 ops (the one mapping the fake
// uses too), enqueues them through the producer and answers 200 only once
// every op of the request is durable. A non-Go application switches its Customer.io base URL
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
// The same handler serves Customer.io's Pipelines API paths (POST
// /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/group, /v1/alias,
// /v1/batch) for workspaces with a Workspace.PipelinesKey, the Basic-auth
// user name of Customer.io's SDKs: an SDK pointed at ingest by its host
// option works unchanged. Its calls are validated against the Pipelines
// API's rules and limits (package cdp), answered with its error body and
// modes (pipelines.go), and queued through the producer as Pipelines calls
// (producer.Op.Call), delivered to the workspace's Pipelines API.
//
// Idempotency: an Idempotency-Key header becomes the op's idempotency key
// (producer.Op.Key), "<key>:<index>" for each op of a v2 batch; without it an
// event's own `id` is its key. A client retrying a request with the same key
// gets 200 and nothing is queued twice. See docs/ingest.md.
package ingest
