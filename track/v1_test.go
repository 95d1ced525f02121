package track_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
)

func TestClient_V1Requests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		call func(ctx context.Context, c *track.Client) error
		want recorded // Auth and UserAgent are checked for every row
	}{
		{"Identify", func(ctx context.Context, c *track.Client) error {
			return c.Identify(ctx, "u1", map[string]any{"email": "a@b.c", "plan": "pro", "created_at": 1700000000, "_timestamp": 1700000001, "_update": true})
		}, recorded{Method: "PUT", Path: "/api/v1/customers/u1", ContentType: "application/json",
			Body: `{"_timestamp":1700000001,"_update":true,"created_at":1700000000,"email":"a@b.c","plan":"pro"}`}},
		{"IdentifyWithoutAttributesSendsEmptyObject", func(ctx context.Context, c *track.Client) error {
			return c.Identify(ctx, "u1", nil)
		}, recorded{Method: "PUT", Path: "/api/v1/customers/u1", ContentType: "application/json", Body: `{}`}},
		{"IdentifyEscapesThePathAndNotHTML", func(ctx context.Context, c *track.Client) error {
			return c.Identify(ctx, "a/b c?d#e%f", map[string]any{"bio": "<b>&</b>"})
		}, recorded{Method: "PUT", Path: "/api/v1/customers/a%2Fb%20c%3Fd%23e%25f", ContentType: "application/json", Body: `{"bio":"<b>&</b>"}`}},
		{"IdentifyByEmail", func(ctx context.Context, c *track.Client) error {
			return c.Identify(ctx, "a+1@b.c", map[string]any{"x": 1})
		}, recorded{Method: "PUT", Path: "/api/v1/customers/a+1@b.c", ContentType: "application/json", Body: `{"x":1}`}},
		{"Track", func(ctx context.Context, c *track.Client) error {
			return c.Track(ctx, "u1", track.Event{Name: "purchase", ID: "01HZX", Type: "event", Timestamp: 1700000000, Data: map[string]any{"amount": 10}})
		}, recorded{Method: "POST", Path: "/api/v1/customers/u1/events", ContentType: "application/json",
			Body: `{"name":"purchase","id":"01HZX","type":"event","timestamp":1700000000,"data":{"amount":10}}`}},
		{"TrackPageWithoutOptionalFields", func(ctx context.Context, c *track.Client) error {
			return c.Track(ctx, "u 1", track.Event{Name: "https://x/", Type: "page"})
		}, recorded{Method: "POST", Path: "/api/v1/customers/u%201/events", ContentType: "application/json",
			Body: `{"name":"https://x/","type":"page"}`}},
		{"TrackAnonymous", func(ctx context.Context, c *track.Client) error {
			return c.TrackAnonymous(ctx, "anon-1", track.Event{Name: "viewed", ID: "01HZY", Data: map[string]any{"page": "/"}})
		}, recorded{Method: "POST", Path: "/api/v1/events", ContentType: "application/json",
			Body: `{"name":"viewed","id":"01HZY","data":{"page":"/"},"anonymous_id":"anon-1"}`}},
		{"TrackAnonymousWithoutID", func(ctx context.Context, c *track.Client) error {
			return c.TrackAnonymous(ctx, "", track.Event{Name: "signup"})
		}, recorded{Method: "POST", Path: "/api/v1/events", ContentType: "application/json", Body: `{"name":"signup"}`}},
		{"Suppress", func(ctx context.Context, c *track.Client) error { return c.Suppress(ctx, "cio_x1") },
			recorded{Method: "POST", Path: "/api/v1/customers/cio_x1/suppress"}},
		{"Unsuppress", func(ctx context.Context, c *track.Client) error { return c.Unsuppress(ctx, "u1") },
			recorded{Method: "POST", Path: "/api/v1/customers/u1/unsuppress"}},
		{"Delete", func(ctx context.Context, c *track.Client) error { return c.Delete(ctx, "u/1") },
			recorded{Method: "DELETE", Path: "/api/v1/customers/u%2F1"}},
		{"AddDevice", func(ctx context.Context, c *track.Client) error {
			return c.AddDevice(ctx, "u1", track.V1Device{ID: "tok", Platform: "ios", LastUsed: 1700000000})
		}, recorded{Method: "PUT", Path: "/api/v1/customers/u1/devices", ContentType: "application/json",
			Body: `{"device":{"id":"tok","platform":"ios","last_used":1700000000}}`}},
		{"AddDeviceWithAttributes", func(ctx context.Context, c *track.Client) error {
			return c.AddDevice(ctx, "u1", track.V1Device{ID: "tok", Platform: "android", Attributes: map[string]any{"app": "2.0"}})
		}, recorded{Method: "PUT", Path: "/api/v1/customers/u1/devices", ContentType: "application/json",
			Body: `{"device":{"id":"tok","platform":"android","attributes":{"app":"2.0"}}}`}},
		{"DeleteDevice", func(ctx context.Context, c *track.Client) error { return c.DeleteDevice(ctx, "u1", "tok/+=") },
			recorded{Method: "DELETE", Path: "/api/v1/customers/u1/devices/tok%2F+="}},
		{"Merge", func(ctx context.Context, c *track.Client) error {
			return c.Merge(ctx, track.Identifiers{ID: "a"}, track.Identifiers{Email: "b@c.d"})
		}, recorded{Method: "POST", Path: "/api/v1/merge_customers", ContentType: "application/json",
			Body: `{"primary":{"id":"a"},"secondary":{"email":"b@c.d"}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil, track.Config{UserAgent: "cioq-test/1"})
			require.NoError(t, tt.call(t.Context(), b.client))
			want := tt.want
			want.Auth, want.UserAgent = testAuth, "cioq-test/1"
			if diff := cmp.Diff([]recorded{want}, b.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClient_V1ValidationSendsNothing(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 151)
	tests := []struct {
		name string
		call func(ctx context.Context, c *track.Client) error
		want string
	}{
		{"IdentifyEmptyID", func(ctx context.Context, c *track.Client) error { return c.Identify(ctx, "", nil) }, "id: is required"},
		{"IdentifyLongID", func(ctx context.Context, c *track.Client) error { return c.Identify(ctx, long, nil) }, "id: identifier is 151 bytes, limit 150"},
		{"IdentifyLongValue", func(ctx context.Context, c *track.Client) error {
			return c.Identify(ctx, "u", map[string]any{"plan": strings.Repeat("p", 1001)})
		}, "attributes.plan: value is 1001 bytes, limit 1000"},
		{"IdentifyTooManyAttributes", func(ctx context.Context, c *track.Client) error {
			attrs := map[string]any{}
			for i := range 301 {
				attrs[strings.Repeat("k", 1+i%100)+string(rune('a'+i/100))] = i
			}
			return c.Identify(ctx, "u", attrs)
		}, "attributes: has 301 attributes, limit 300"},
		{"IdentifyInvalidUTF8", func(ctx context.Context, c *track.Client) error { return c.Identify(ctx, "u\xff", nil) }, "id: is not valid UTF-8"},
		{"TrackNoName", func(ctx context.Context, c *track.Client) error { return c.Track(ctx, "u", track.Event{}) }, "name: is required"},
		{"TrackLongName", func(ctx context.Context, c *track.Client) error {
			return c.Track(ctx, "u", track.Event{Name: strings.Repeat("n", 101)})
		}, "name: name is 101 bytes, limit 100"},
		{"TrackBadType", func(ctx context.Context, c *track.Client) error {
			return c.Track(ctx, "u", track.Event{Name: "e", Type: "screen"})
		}, `type: must be "event" or "page"`},
		{"TrackMillisecondTimestamp", func(ctx context.Context, c *track.Client) error {
			return c.Track(ctx, "u", track.Event{Name: "e", Timestamp: 1700000000000})
		}, "timestamp: must be unix seconds (not milliseconds), not negative"},
		{"TrackDataTooBig", func(ctx context.Context, c *track.Client) error {
			data := map[string]any{}
			for i := range 110 {
				data[strings.Repeat("k", i+1)] = strings.Repeat("v", 1000)
			}
			return c.Track(ctx, "u", track.Event{Name: "e", Data: data})
		}, "data: event data is"},
		{"TrackAnonymousLongID", func(ctx context.Context, c *track.Client) error {
			return c.TrackAnonymous(ctx, long, track.Event{Name: "e"})
		}, "anonymous_id: identifier is 151 bytes, limit 150"},
		{"SuppressEmptyID", func(ctx context.Context, c *track.Client) error { return c.Suppress(ctx, "") }, "id: is required"},
		{"UnsuppressEmptyID", func(ctx context.Context, c *track.Client) error { return c.Unsuppress(ctx, "") }, "id: is required"},
		{"DeleteEmptyID", func(ctx context.Context, c *track.Client) error { return c.Delete(ctx, "") }, "id: is required"},
		{"AddDeviceNoToken", func(ctx context.Context, c *track.Client) error {
			return c.AddDevice(ctx, "u", track.V1Device{Platform: "ios"})
		}, "device.id: is required"},
		{"AddDeviceNoPlatform", func(ctx context.Context, c *track.Client) error {
			return c.AddDevice(ctx, "u", track.V1Device{ID: "t"})
		}, "device.platform: is required"},
		{"DeleteDeviceNoDevice", func(ctx context.Context, c *track.Client) error { return c.DeleteDevice(ctx, "u", "") }, "device_id: is required"},
		{"MergeSamePerson", func(ctx context.Context, c *track.Client) error {
			return c.Merge(ctx, track.Identifiers{ID: "a"}, track.Identifiers{ID: "a"})
		}, "secondary: names the same person as primary"},
		{"MergeTwoIdentifiers", func(ctx context.Context, c *track.Client) error {
			return c.Merge(ctx, track.Identifiers{ID: "a", Email: "a@b.c"}, track.Identifiers{ID: "b"})
		}, "primary: must hold exactly one of id, email, cio_id, phone"},
		{"MergeMissingSecondary", func(ctx context.Context, c *track.Client) error {
			return c.Merge(ctx, track.Identifiers{ID: "a"}, track.Identifiers{})
		}, "secondary: is required for merge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil, track.Config{})
			err := tt.call(t.Context(), b.client)
			require.ErrorIs(t, err, track.ErrInvalidOp)
			require.True(t, track.IsPermanent(err))
			require.False(t, track.IsRetryable(err))
			require.Contains(t, err.Error(), "track: invalid op: "+tt.want)
			require.Empty(t, b.requests())
		})
	}
}
