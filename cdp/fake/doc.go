// Package fake is a faithful fake of Customer.io's Pipelines API, in the
// style of net/http/httptest and of cioq's Track API fake (track/fake).
// docs/pipelines.md is the contract it follows; where the real API is
// undocumented it is at least as strict.
//
// It answers POST /v1/identify, /v1/track, /v1/page, /v1/screen,
// /v1/group, /v1/alias and /v1/batch with Basic auth (the API key as user
// name, blank password), the request limits (a single call ≤
// cdp.MaxCallBytes, a batch ≤ cdp.MaxBatchBytes, each call in it ≤
// cdp.MaxCallBytes), gzip bodies, and call validation with
// cdp.ValidateRawCall / cdp.ValidateRawBatch. Like the real API it is
// permissive unless a request carries X-Strict-Mode: 1: permissive mode
// answers 200 {} to a wrong key, an oversized body or an invalid call and
// drops what it could not process; strict mode answers 401, or 400 with
// {"meta":{"errors":["..."]}} listing every problem (a batch with an
// invalid call accepts none of its calls unless
// Faults.AcceptValidOnReject). Each workspace (API key) has a token bucket
// checked before a request is processed; an empty bucket answers a bare
// 429 (Options.RetryAfter adds Retry-After).
//
// In a test:
//
//	srv := fake.NewServer(fake.Options{
//		Keys:      map[string]string{"cdp-key": "shop"},
//		RateLimit: 1000,
//	})
//	t.Cleanup(srv.Close)
//	c, err := cdp.NewClient(cdp.Config{APIKey: "cdp-key", BaseURL: srv.URL})
//	require.NoError(t, err)
//	// ... drive cioq against c or srv.URL ...
//	l := srv.Ledger()
//	require.Zero(t, l.DuplicateCalls)
//	require.Zero(t, l.Permissive) // every request was strict
//	u, ok := srv.User("shop", "id:u1") // the person's final state
//	got := srv.Requests()              // recorded requests and their calls
//
// Faults change at run time, from Go or over HTTP:
//
//	err = srv.SetFaults(fake.Faults{FailNext: 3})                 // the next 3 requests get 503
//	err = srv.SetFaults(fake.Faults{ErrorRate: 0.2, Latency: 50 * time.Millisecond})
//	err = srv.SetFaults(fake.Faults{RateLimit: fake.Rate(20)})    // a smaller budget
//	err = srv.SetFaults(fake.Faults{RejectAttribute: "poison"})   // refuse calls holding it
//	err = srv.SetFaults(fake.Faults{})                            // healthy again
//
// # Ledger
//
// Only calls actually accepted count. The messageId is the key Customer.io
// dedupes on: a call whose messageId was accepted before counts in
// ResentCalls (Customer.io drops it), a call whose content (everything but
// messageId, sentAt and receivedAt) was accepted before under another
// messageId, or none, counts in DuplicateCalls (Customer.io would apply it
// twice), anything else in UniqueCalls. The ledger keeps 16-byte hashes per
// workspace, not the calls. Each person's final state (traits merged by
// timestamp, events, devices, relationships, deletion and suppression) is
// kept for up to Options.MaxUsers people: Server.User.
//
// # Standalone and control API
//
// New returns a fake that is not listening, for `cioq fakecio`, which
// serves it beside the Track API fake. Tools drive a running fake over
// HTTP without auth under /_fake/cdp/: GET ledger, GET and PUT faults,
// POST reset, GET requests?limit=N, GET users?workspace=W[&key=K].
package fake
