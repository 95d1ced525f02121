package fake_test

import (
	"context"
	"fmt"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/cdp/fake"
)

func ExampleServer_Ledger() {
	srv := fake.NewServer(fake.Options{Keys: map[string]string{"cdp-key": "shop"}})
	defer srv.Close()
	c, err := cdp.NewClient(cdp.Config{APIKey: "cdp-key", BaseURL: srv.URL})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	buy := &cdp.Call{Type: cdp.TypeTrack, UserID: "u1", Event: "purchase", MessageID: "m1"}
	_ = c.Send(ctx, buy) // accepted
	_ = c.Send(ctx, buy) // the same messageId again: Customer.io drops it
	buy.MessageID = "m2"
	_ = c.Send(ctx, buy) // the same content under a new messageId: counted twice

	l := srv.Ledger().PerWorkspace["shop"]
	fmt.Println("unique", l.UniqueCalls, "resent", l.ResentCalls, "duplicate", l.DuplicateCalls, "permissive", l.Permissive)
	u, _ := srv.User("shop", "id:u1")
	fmt.Println("events", u.Events)
	// Output:
	// unique 1 resent 1 duplicate 1 permissive 0
	// events 2
}
