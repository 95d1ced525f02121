package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/stacktest"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

// track.Client → ingest → producer → worker → fake Track API: every op the
// clients sent is delivered exactly once, client retries included.
func TestEndToEnd_ClientToFakeExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	cio := stacktest.Fake(t, fake.Options{Credentials: map[string]string{"cio-site": "cio-key"}})
	startWorker(t, b, cio, nil)

	const clients, perClient = 8, 50
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, clients*(perClient*4+2))
	for ci := range clients {
		keyed := b.client(t, siteID, apiKey, http.Header{"Idempotency-Key": {fmt.Sprintf("batch-%d", ci)}})
		c := b.client(t, siteID, apiKey, nil)
		wg.Go(func() {
			for i := range perClient {
				person := fmt.Sprintf("e2e-%d-%d", ci, i)
				id := fmt.Sprintf("01JE%02d%020d", ci, i) // a ULID per event
				withKey := b.client(t, siteID, apiKey, http.Header{"Idempotency-Key": {"identify-" + person}})
				// Each call is sent twice, as a client retrying after a lost answer.
				for range 2 {
					errs <- withKey.Identify(ctx, person, map[string]any{"i": i})
					errs <- c.Track(ctx, person, track.Event{Name: "purchase", ID: id, Data: map[string]any{"i": i}})
				}
			}
			batch := []*track.Op{
				{Identifiers: &track.Identifiers{ID: fmt.Sprintf("e2e-%d-b", ci)}, Action: track.ActionEvent, Name: "a"},
				{Identifiers: &track.Identifiers{ID: fmt.Sprintf("e2e-%d-b", ci)}, Action: track.ActionEvent, Name: "b"},
			}
			errs <- keyed.Batch(ctx, batch)
			errs <- keyed.Batch(ctx, batch)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Identify carries an Idempotency-Key, events their id, batches the
	// request's key: each op once.
	want := int64(clients * (perClient*2 + 2))
	deadline := time.Now().Add(60 * time.Second)
	for {
		l := cio.Ledger()
		if l.UniqueOps >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything extra would show now
	l := cio.Ledger()
	require.EqualValues(t, want, l.UniqueOps, "ops accepted by Customer.io")
	require.Zero(t, l.DuplicateOps, "duplicates")
	require.Zero(t, l.RepeatedIDs, "no event id reached Customer.io twice")
	require.Empty(t, b.tasks(t), "nothing left pending")
}
