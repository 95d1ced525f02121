// Package cdp is a client for Customer.io's Pipelines API (Data Pipelines,
// https://cdp.customer.io/v1): the Segment-spec calls identify, track,
// page, screen, group and alias, one at a time or in a /v1/batch, their
// validation against the API's limits, typed errors, and the Pipelines
// form of every Track API operation. docs/pipelines.md is the contract it
// follows.
//
// # Calls
//
// A Call is one Pipelines call. ValidateCall checks it against the rules of
// its type (a person by userId or anonymousId, an event name for track, a
// groupId for group, the fields Customer.io's semantic events need) and
// MaxCallBytes; EncodeCall validates and encodes it once, which is the form
// a producer stores. DecodeCall and ValidateRawBatch decode what an SDK sent,
// for ingest, and hand back each valid call's encoding, computed once;
// fields the model does not name travel on unchanged in Call.Extra.
//
//	b, err := cdp.EncodeCall(&cdp.Call{
//		Type:       cdp.TypeTrack,
//		UserID:     "u1",
//		Event:      "purchase",
//		MessageID:  id, // the dedupe key: stable across retries
//		Timestamp:  cdp.FormatTimestamp(time.Now()),
//		Properties: map[string]any{"amount": 10},
//	})
//
// FromOp gives the Pipelines form of a track.Op: deletes, suppressions,
// devices and relationship removal become Customer.io's semantic events
// ("User Deleted", "Device Created or Updated", ...). Call.Action and
// Call.Person go the other way, so lanes and tombstones treat a Pipelines
// call as the Track operation it means.
//
// # Client
//
// A Client serves one workspace (one Pipelines API key, the Basic-auth
// user with a blank password). It sends X-Strict-Mode: 1 on every request,
// so a refused call is a 400 and a wrong key a 401, never a 200 that drops
// the data. It never prints, logs or returns its key:
//
//	c, err := cdp.NewClient(cdp.Config{APIKey: key, Region: cdp.RegionEU})
//	...
//	err = c.BatchEncoded(ctx, [][]byte{b, ...})
//	switch {
//	case err == nil: // every call accepted
//	case cdp.IsRetryable(err): // 408, 429, 5xx, transport: retry later
//		d, _ := cdp.RetryAfter(err)
//	case errors.Is(err, cdp.ErrUnauthorized): // the key is wrong for the workspace
//	default: // permanent: invalid call or request
//	}
//
// BatchEncoded has the shape of track.Client.BatchEncoded, and the error
// classes are track's sentinels re-exported (cdp.ErrRateLimited is
// track.ErrRateLimited, ...), so a sender treats both APIs alike. The
// Pipelines API does not say which call of a refused batch was wrong;
// because it processes a messageId once, splitting the batch and resending
// is safe.
//
// # Errors
//
// *ValidationError (ErrInvalidCall, nothing sent), *APIError
// (ErrUnauthorized, ErrRateLimited, ErrInvalidRequest or ErrServer by
// status, with RetryAfter) and *TransportError (ErrTransport, no answer).
package cdp
