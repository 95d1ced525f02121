package producer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/track"
)

// An Op with a Call enqueues a Pipelines API call. Its messageId is its op
// id, so enqueueing it again is a no-op; a call without one gets a
// messageId derived from its Key, the same on every retry. A call for a
// workspace without a Pipelines key is refused.
//
// This example runs with Redis unreachable and a spool, so every op is
// accepted durably on disk (Result.Spooled) and the output does not depend
// on a Redis; with Redis up the results are the same with Spooled false.
func ExampleOp_call() {
	dir, err := os.MkdirTemp("", "cioq-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	// A Redis that is never there, so the spool takes every op.
	down := redis.NewClient(&redis.Options{DialerRetries: 1, DialerRetryTimeout: time.Millisecond,
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no Redis in this example")
		}})
	defer down.Close()
	p, err := producer.New(producer.Config{
		Client:              down,
		Workspaces:          []string{"default", "eu"},
		PipelinesWorkspaces: []string{"default"}, // "eu" has no Pipelines API key
		Spool:               producer.SpoolConfig{Dir: dir},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_ = p.Close(cctx)
	}()

	res, err := p.Enqueue(ctx, producer.Op{Call: &cdp.Call{
		Type:       cdp.TypeTrack,
		UserID:     "u1",
		Event:      "Purchase",
		MessageID:  "order-42-paid", // Customer.io's dedupe key, and the op id
		Properties: map[string]any{"amount": 42},
	}})
	fmt.Println(res.OpID, res.MessageID, res.Queue, res.Spooled, err)

	res, err = p.Enqueue(ctx, producer.Op{
		Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u1", Traits: map[string]any{"plan": "pro"}},
		Key:  "signup-u1", // no messageId: one is derived from the key
	})
	fmt.Println(res.OpID, res.MessageID, err)

	// "User Deleted" is a delete: the critical lane, and a tombstone that
	// drops older ops of u1, Track ops and Pipelines calls alike.
	res, err = p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: cdp.EventUserDeleted, MessageID: "del-u1"}})
	fmt.Println(res.Queue, err)

	_, err = p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeIdentify, UserID: "u2"}, Workspace: "eu"})
	fmt.Println(errors.Is(err, producer.ErrNoPipelines), errors.Is(err, track.ErrInvalidOp))

	_, err = p.Enqueue(ctx, producer.Op{Call: &cdp.Call{Type: cdp.TypeTrack, UserID: "u1"}})
	fmt.Println(err)
	// Output:
	// order-42-paid order-42-paid default true <nil>
	// signup-u1 6E9D7GDRMT0XNZGVB87X26ZTKG <nil>
	// critical <nil>
	// true true
	// producer: enqueue event: cdp: invalid call: event: is required for track
}
