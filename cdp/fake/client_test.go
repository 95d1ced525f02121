package fake_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
)

// newClient returns a cdp.Client for srv with key.
func newClient(t testing.TB, srv *fake.Server, key string) *cdp.Client {
	t.Helper()
	c, err := cdp.NewClient(cdp.Config{APIKey: key, BaseURL: srv.URL + "/v1"})
	require.NoError(t, err)
	return c
}

// calls returns n encoded track calls of user u with messageIds m0..m(n-1).
func calls(t testing.TB, u string, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range n {
		b, err := cdp.EncodeCall(&cdp.Call{
			Type: cdp.TypeTrack, UserID: u, Event: fmt.Sprint("e", i), MessageID: fmt.Sprint(u, "-m", i),
			Timestamp: cdp.FormatTimestamp(time.Unix(1_700_000_000+int64(i), 0)),
		})
		require.NoError(t, err)
		out[i] = b
	}
	return out
}

func TestClient_AResendAfterAnUnknownOutcomeIsDroppedByMessageID(t *testing.T) {
	t.Parallel()
	srv := start(t, fake.Options{Keys: keys()})
	c := newClient(t, srv, testKey)
	ctx := context.Background()
	batchCalls := calls(t, "u1", 50)
	require.NoError(t, c.BatchEncoded(ctx, batchCalls))
	// The sender did not see the answer (say, a timeout) and sends again.
	require.NoError(t, c.BatchEncoded(ctx, batchCalls))
	l := ws(srv)
	require.Equal(t, int64(50), l.UniqueCalls)
	require.Equal(t, int64(50), l.ResentCalls)
	require.Zero(t, l.DuplicateCalls)
	require.Zero(t, l.Permissive, "the client sends strict mode on every request")
	u, _ := srv.User(testWS, "id:u1")
	require.Equal(t, int64(50), u.Events)
	got := srv.Requests()[0].Calls[7]
	require.Equal(t, "u1-m7", got.MessageID)
	require.Equal(t, "2023-11-14T22:13:27.000Z", got.Timestamp, "messageId and timestamp arrive as sent")
}

func TestClient_FakeAnswersMapToTheClientsTypedErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	srv := start(t, fake.Options{Keys: keys(), RateLimit: 1, RetryAfter: true})
	err := newClient(t, srv, "wrong-key").BatchEncoded(ctx, calls(t, "u1", 1))
	require.ErrorIs(t, err, cdp.ErrUnauthorized)
	require.NotContains(t, err.Error(), "wrong-key")

	c := newClient(t, srv, testKey)
	require.NoError(t, c.BatchEncoded(ctx, calls(t, "u1", 1)))
	err = c.BatchEncoded(ctx, calls(t, "u2", 1))
	require.ErrorIs(t, err, cdp.ErrRateLimited)
	d, ok := cdp.RetryAfter(err)
	require.True(t, ok)
	require.Equal(t, time.Second, d)

	srv = start(t, fake.Options{Faults: fake.Faults{FailNext: 1}})
	c = newClient(t, srv, testKey)
	err = c.BatchEncoded(ctx, calls(t, "u1", 3))
	require.ErrorIs(t, err, cdp.ErrServer)
	require.True(t, cdp.IsRetryable(err))
	require.NoError(t, c.BatchEncoded(ctx, calls(t, "u1", 3)), "the retry goes through")
	require.Equal(t, int64(3), srv.Ledger().UniqueCalls)

	// A call the client's validation would refuse, sent encoded by hand:
	// strict mode answers 400 with the real error shape.
	err = c.BatchEncoded(ctx, [][]byte{[]byte(`{"type":"track","userId":"u1"}`)})
	var ae *cdp.APIError
	require.ErrorAs(t, err, &ae)
	require.ErrorIs(t, err, cdp.ErrInvalidRequest)
	require.Equal(t, "cdp: POST /v1/batch: 400: batch[0].event: is required for track", err.Error())
}

// sendSplitting sends calls and, on a 400, splits the batch in halves and
// resends each, down to single calls: the way a sender finds the refused
// call when the API does not name it. It returns the calls refused alone.
func sendSplitting(ctx context.Context, c *cdp.Client, calls [][]byte) ([][]byte, error) {
	err := c.BatchEncoded(ctx, calls)
	if !errors.Is(err, cdp.ErrInvalidRequest) {
		return nil, err
	}
	if len(calls) == 1 {
		return calls, nil
	}
	mid := len(calls) / 2
	left, err := sendSplitting(ctx, c, calls[:mid])
	if err != nil {
		return nil, err
	}
	right, err := sendSplitting(ctx, c, calls[mid:])
	return append(left, right...), err
}

func TestClient_SplittingARefusedBatchIsExactlyOnceWhateverTheAPIDoes(t *testing.T) {
	t.Parallel()
	for _, acceptValid := range []bool{false, true} {
		t.Run(fmt.Sprint("AcceptValidOnReject=", acceptValid), func(t *testing.T) {
			t.Parallel()
			srv := start(t, fake.Options{Faults: fake.Faults{AcceptValidOnReject: acceptValid, RejectAttribute: "poison"}})
			c := newClient(t, srv, testKey)
			all := calls(t, "u1", 20)
			poison, err := cdp.EncodeCall(&cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: "bad", MessageID: "bad",
				Properties: map[string]any{"poison": true}})
			require.NoError(t, err)
			all = append(all[:13], append([][]byte{poison}, all[13:]...)...)
			refused, err := sendSplitting(context.Background(), c, all)
			require.NoError(t, err)
			require.Equal(t, [][]byte{poison}, refused)
			l := srv.Ledger()
			require.Equal(t, int64(20), l.UniqueCalls, "every good call accepted")
			require.Zero(t, l.DuplicateCalls)
			u, _ := srv.User(fake.KeyName(testKey), "id:u1")
			require.Equal(t, int64(20), u.Events, "and applied once")
		})
	}
}
