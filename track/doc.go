// Package track is a client for the Customer.io Track API: the v1 calls
// (identify, track, anonymous track, suppress, unsuppress, delete, devices,
// merge), the v2 entity and batch calls, regions, typed errors, and the
// validation of v2 operations against the API's limits.
//
// # Client
//
// A Client serves one workspace (site id and API key). It never prints, logs
// or returns its key:
//
//	c, err := track.NewClient(track.Config{
//		SiteID: siteID,
//		APIKey: apiKey,
//		Region: track.RegionEU, // or BaseURL: fakeServer.URL
//	})
//	if err != nil {
//		return err
//	}
//	err = c.Identify(ctx, "u1", map[string]any{"plan": "pro", "_timestamp": 1700000000})
//	err = c.Track(ctx, "u1", track.Event{Name: "purchase", ID: ulid, Data: map[string]any{"amount": 10}})
//
// # Operations and batches
//
// An Op is one v2 person operation. ValidateOp checks it against the shape
// rules of its action and the limits (MaxIdentifierBytes, MaxOpBytes, ...);
// EncodeOp validates and encodes it, which is the form a producer stores.
// A batcher packs encoded ops while EncodedBatchSize stays below
// MaxBatchBytes and sends them with BatchEncoded, which builds the body by
// concatenation without re-encoding:
//
//	b, err := track.EncodeOp(&track.Op{
//		Identifiers: &track.Identifiers{ID: "u1"},
//		Action:      track.ActionEvent,
//		Name:        "purchase",
//		ID:          ulid,
//		Timestamp:   time.Now().Unix(),
//	})
//	...
//	err = c.BatchEncoded(ctx, [][]byte{b, ...})
//	var be *track.BatchError
//	switch {
//	case err == nil: // every op accepted
//	case errors.As(err, &be): // be.Items failed; every other op was accepted
//	case track.IsRetryable(err): // 408, 429, 5xx, transport: retry later
//		d, _ := track.RetryAfter(err)
//	case errors.Is(err, track.ErrUnauthorized): // the key is wrong for the workspace
//	default: // permanent: invalid op or request
//	}
//
// ValidateRawOp decodes and validates one op from JSON, for ingest and
// import.
//
// # Errors
//
// Errors are typed and matched with errors.Is / errors.As: *ValidationError
// (ErrInvalidOp, nothing sent), *APIError (ErrUnauthorized, ErrRateLimited,
// ErrInvalidRequest or ErrServer by status, with RetryAfter), *BatchError
// (per-op failures of a batch) and *TransportError (ErrTransport, no
// answer; Timeout set on a deadline).
package track
