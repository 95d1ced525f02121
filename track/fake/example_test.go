package fake_test

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/cioq/cioq/track/fake"
)

// A test starts the fake, points its sender at srv.URL and checks the
// ledger: the retry with the same event id is dropped (RepeatedIDs), not
// counted twice.
func ExampleNewServer() {
	srv := fake.NewServer(fake.Options{Credentials: map[string]string{"site": "key"}})
	defer srv.Close()

	body := `{"batch":[{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"purchase",` +
		`"id":"01JD0000000000000000000001","timestamp":1700000000}]}`
	for range 2 { // a send and its retry
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/batch", strings.NewReader(body))
		req.SetBasicAuth("site", "key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}

	l := srv.Ledger()
	fmt.Println("accepted:", l.OpsAccepted, "unique:", l.UniqueOps, "duplicates:", l.DuplicateOps, "repeated ids:", l.RepeatedIDs)
	// Output:
	// 200
	// 200
	// accepted: 2 unique: 1 duplicates: 0 repeated ids: 1
}
