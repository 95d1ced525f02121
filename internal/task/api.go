package task

import (
	"fmt"
	"strconv"
)

// API names the Customer.io API an op is delivered to. An op of either API
// is stored, ordered, dropped by tombstones and dead-lettered alike: its
// Payload.Action is the Track action it means (for a Pipelines call,
// cdp.Call.Action) and its Payload.Person the person key a Track op of that
// person has, so the ops of one person keep one order whichever API they
// go to. Only the request differs: a worker never puts ops of two APIs in
// one request.
type API uint8

// The APIs.
const (
	// APITrack is the Track API (track.Client): the op is a v2 op JSON. It
	// is the zero value.
	APITrack API = 0
	// APIPipelines is the Pipelines API (cdp.Client): the op is a Pipelines
	// call JSON (cdp.EncodeCall), sent in /v1/batch requests.
	APIPipelines API = 1
)

// APIs lists every API, in a stable order.
var APIs = []API{APITrack, APIPipelines}

// Valid reports whether a is one of APIs.
func (a API) Valid() bool { return a == APITrack || a == APIPipelines }

// String is the API's name in metrics, logs, dead letters and config:
// "track" or "pipelines".
func (a API) String() string {
	switch a {
	case APITrack:
		return "track"
	case APIPipelines:
		return "pipelines"
	}
	return "api(" + strconv.Itoa(int(a)) + ")"
}

// ParseAPI is the inverse of String; "" is APITrack (dead letters written
// before Pipelines ops existed name no API).
func ParseAPI(s string) (API, error) {
	switch s {
	case "", "track":
		return APITrack, nil
	case "pipelines":
		return APIPipelines, nil
	}
	return 0, fmt.Errorf("task: unknown api %q (want track or pipelines)", s)
}
