package track_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
)

func ExampleClient_Identify() {
	srv := fake.NewServer(fake.Options{})
	defer srv.Close()

	c, err := track.NewClient(track.Config{SiteID: "site-1", APIKey: "key-1", BaseURL: srv.URL})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := c.Identify(ctx, "u1", map[string]any{"plan": "pro", "_timestamp": 1700000000}); err != nil {
		panic(err)
	}
	// An invalid call is refused before anything is sent.
	err = c.Identify(ctx, "", nil)
	fmt.Println(errors.Is(err, track.ErrInvalidOp), err)

	for _, r := range srv.Requests() {
		fmt.Println(r.Method, r.Path, r.Status)
		for _, op := range r.Ops {
			fmt.Println(op.Action, op.Person().Key(), op.Attributes["plan"], op.Timestamp)
		}
	}
	fmt.Println(strings.Replace(c.String(), srv.URL, "FAKE_URL", 1))
	// Output:
	// true track: invalid op: id: is required
	// PUT /api/v1/customers/u1 200
	// identify id:u1 pro 1700000000
	// track.Client{site=site-1, base=FAKE_URL, key=REDACTED}
}
