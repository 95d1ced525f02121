package cdp_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/track"
)

func ExampleClient_BatchEncoded() {
	srv := fake.NewServer(fake.Options{Keys: map[string]string{"cdp-key": "shop"}})
	defer srv.Close()

	c, err := cdp.NewClient(cdp.Config{APIKey: "cdp-key", BaseURL: srv.URL})
	if err != nil {
		panic(err)
	}
	at := cdp.FormatTimestamp(time.Unix(1700000000, 0))
	identify, err := cdp.EncodeCall(&cdp.Call{Type: cdp.TypeIdentify, UserID: "u1", MessageID: "m1", Timestamp: at,
		Traits: map[string]any{"plan": "pro"}})
	if err != nil {
		panic(err)
	}
	// A Track op's Pipelines form: suppress is the "User Suppressed" event.
	suppress, err := cdp.FromOp(&track.Op{Identifiers: &track.Identifiers{ID: "u2"}, Action: track.ActionSuppress}, "m2")
	if err != nil {
		panic(err)
	}
	suppressed, err := cdp.EncodeCall(suppress[0])
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	fmt.Println(c.BatchEncoded(ctx, [][]byte{identify, suppressed}))

	// An invalid call is refused before anything is sent.
	_, err = cdp.EncodeCall(&cdp.Call{Type: cdp.TypeTrack, UserID: "u1"})
	fmt.Println(errors.Is(err, cdp.ErrInvalidCall), err)

	for _, r := range srv.Requests() {
		fmt.Println(r.Method, r.Path, r.Status, "strict:", r.Strict)
		for _, call := range r.Calls {
			fmt.Println(call.Type, call.Event, call.Person().Key(), call.MessageID, call.Timestamp, call.Action())
		}
	}
	u, _ := srv.User("shop", "id:u1")
	fmt.Println(u.Traits["plan"])
	// Output:
	// <nil>
	// true cdp: invalid call: event: is required for track
	// POST /v1/batch 200 strict: true
	// identify  id:u1 m1 2023-11-14T22:13:20.000Z identify
	// track User Suppressed id:u2 m2  suppress
	// pro
}
