// Package wire is the server side of the Track API that cioq's ingest and
// the fake Track API (track/fake) share, so the two cannot drift apart:
// routing a v1 request and mapping it to its v2 op (MatchV1, V1ToV2, the
// rows of TRACK_API.md "v1 → v2"), reading a body strictly (DecodeStrict),
// and the answers (ErrorBody, NewItemError, NewBatchResponse).
//
// Applications never need it: package track is the client and holds the
// op model, the limits and validation both sides apply.
package wire
