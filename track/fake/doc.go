// Package fake is a faithful fake of the Customer.io Track API, in the style
// of net/http/httptest. It is the only Customer.io cioq's tests, the demo and
// the load tests ever see, so it is as strict as the real API and keeps a
// ledger of what Customer.io would have done.
//
// It answers the v1 paths (identify, delete, events, anonymous events,
// suppress, unsuppress, devices, merge) and the v2 entity and batch paths of
// TRACK_API.md, with Basic auth, the body limits (entity ≤ 32 KB, batch <
// 500 KB: 413), UTF-8 JSON bodies, per-op validation with
// track.ValidateRawOp / track.ValidateOp, and the batch partial-failure
// answer {"errors":[{"batch_index":i,...}]} (207 when some ops failed, 400
// when all did; at most track.MaxItemErrors errors listed, the count of the
// others in "errors_omitted"). Each workspace (site id) has a token bucket checked before
// a request is processed; an empty bucket answers a bare 429, as the real
// API does (Options.RetryAfter adds Retry-After).
//
// In a test:
//
//	srv := fake.NewServer(fake.Options{
//		Credentials: map[string]string{"site": "key"},
//		RateLimit:   80,
//	})
//	t.Cleanup(srv.Close)
//	c, err := track.NewClient(track.Config{SiteID: "site", APIKey: "key", BaseURL: srv.URL})
//	require.NoError(t, err)
//	// ... drive cioq against c or srv.URL ...
//	l := srv.Ledger()
//	require.Zero(t, l.DuplicateOps)
//	require.LessOrEqual(t, l.MaxRequestsPerSecond, 80)
//	got := srv.Requests() // recorded calls, ops decoded to their v2 form
//
// Faults change at run time, from Go or over HTTP:
//
//	err = srv.SetFaults(fake.Faults{ErrorRate: 0.2, Latency: 50 * time.Millisecond})
//	err = srv.SetFaults(fake.Faults{RateLimit: fake.Rate(20)})  // a quarter of the budget
//	err = srv.SetFaults(fake.Faults{RejectAttribute: "poison"}) // batch_index errors
//	err = srv.SetFaults(fake.Faults{})                          // healthy again
//
// Request.Fault names the fault that decided an answer, and the ledger
// counts requests closed (CloseConnection) or abandoned during Latency
// (Closed, Canceled): none of their ops is accepted.
//
// # Ledger
//
// Only ops actually accepted count. For an event (event, page, screen) the
// event id is the key Customer.io dedupes on: the same id again counts in
// RepeatedIDs (Customer.io drops it), while the same content (identifiers,
// action, name, attributes, timestamp) under another id or with no id counts
// in DuplicateOps (Customer.io would apply it twice). Any other op is a
// DuplicateOp when its whole content was accepted before. The ledger keeps
// 16-byte hashes, per workspace, not the ops, so a load test of millions of
// ops stays small. MaxRequestsPerSecond is the most 2xx answers to one
// workspace in any sliding second, measured on Options.Now.
//
// # Standalone and control API
//
// New returns a fake that is not listening, for `cioq fakecio`:
//
//	srv, err := fake.New(fake.Options{RateLimit: 80})
//	if err != nil { ... }
//	err = srv.ListenAndServe(ctx, ":8081") // until ctx ends
//
// Tools drive a running fake over HTTP, without auth: GET /_fake/ledger,
// GET and PUT /_fake/faults (Faults as JSON, latency as "250ms"), POST
// /_fake/reset and GET /_fake/requests?limit=N.
package fake
