package producer

import (
	"context"

	"github.com/cioq/cioq/track"
)

// The convenience methods below name a person by id: personID becomes the
// identifiers {"id": personID}. To name a person by email or cio_id, or to
// set a key, timestamp or workspace, build an Op and call Enqueue.

func person(id string) *track.Identifiers { return &track.Identifiers{ID: id} }

// Identify creates or updates person personID with attrs.
func (p *Producer) Identify(ctx context.Context, personID string, attrs map[string]any) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionIdentify, Identifiers: person(personID), Attributes: attrs}})
}

// Track records event name with data for person personID.
func (p *Producer) Track(ctx context.Context, personID, name string, data map[string]any) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionEvent, Identifiers: person(personID), Name: name, Attributes: data}})
}

// TrackAnonymous records event name with data for an anonymous visitor.
func (p *Producer) TrackAnonymous(ctx context.Context, anonymousID, name string, data map[string]any) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionEvent,
		Identifiers: &track.Identifiers{AnonymousID: anonymousID}, Name: name, Attributes: data}})
}

// Suppress suppresses person personID. It goes on the critical lane and
// makes ops enqueued earlier for that person obsolete (tombstone).
func (p *Producer) Suppress(ctx context.Context, personID string) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionSuppress, Identifiers: person(personID)}})
}

// Unsuppress lifts the suppression of person personID (critical lane).
func (p *Producer) Unsuppress(ctx context.Context, personID string) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionUnsuppress, Identifiers: person(personID)}})
}

// Delete deletes person personID. It goes on the critical lane and makes
// ops enqueued earlier for that person obsolete (tombstone).
func (p *Producer) Delete(ctx context.Context, personID string) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionDelete, Identifiers: person(personID)}})
}

// AddDevice adds or updates push device d of person personID.
func (p *Producer) AddDevice(ctx context.Context, personID string, d track.Device) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionAddDevice, Identifiers: person(personID), Device: &d}})
}

// DeleteDevice removes the push device with token from person personID.
func (p *Producer) DeleteDevice(ctx context.Context, personID, token string) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionDeleteDevice, Identifiers: person(personID),
		Device: &track.Device{Token: token}}})
}

// Merge merges person secondary into person primary.
func (p *Producer) Merge(ctx context.Context, primary, secondary track.Identifiers) (Result, error) {
	return p.Enqueue(ctx, Op{Op: track.Op{Action: track.ActionMerge, Primary: &primary, Secondary: &secondary}})
}
