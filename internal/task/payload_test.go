package task_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

var enqueuedAt = time.Date(2026, 11, 24, 10, 30, 15, 123_000_000, time.UTC)

func samplePayloads() []struct {
	name string
	p    task.Payload
} {
	return []struct {
		name string
		p    task.Payload
	}{
		{"Identify", task.Payload{
			Workspace: "default", OpID: "01JD4X7Q8M6Y2K3N5P7R9T1V3W", Action: track.ActionIdentify,
			Person: "id:u1", EnqueuedAt: enqueuedAt,
			Op: []byte(`{"type":"person","identifiers":{"id":"u1"},"action":"identify","timestamp":1700000000,"attributes":{"plan":"pro"}}`),
		}},
		{"EventWithCallerKey", task.Payload{
			Workspace: "eu-shop", OpID: "order-42/paid", Action: track.ActionEvent,
			Person: "email:a@b.c", EnqueuedAt: enqueuedAt,
			Op: []byte(`{"type":"person","identifiers":{"email":"a@b.c"},"action":"event","name":"purchase","id":"01JD4X7Q8M6Y2K3N5P7R9T1V3W"}`),
		}},
		{"MergeHasNoPerson", task.Payload{
			Workspace: "w", OpID: "k", Action: track.ActionMerge, EnqueuedAt: enqueuedAt,
			Op: []byte(`{"type":"person","action":"merge","primary":{"id":"a"},"secondary":{"id":"b"}}`),
		}},
		{"UnicodeAndBinaryOp", task.Payload{
			Workspace: "wörkspace", OpID: "ключ", Action: track.ActionSuppress, Person: "id:ü",
			EnqueuedAt: time.UnixMilli(1).UTC(), Op: []byte{0, 1, 2, 0xff},
		}},
		{"BeforeEpoch", task.Payload{
			Workspace: "w", OpID: "k", Action: track.ActionDelete, Person: "id:u",
			EnqueuedAt: time.Date(1969, 7, 20, 20, 17, 40, 5_000_000, time.UTC), Op: []byte(`{}`),
		}},
		{"PipelinesCall", task.Payload{
			Workspace: "default", API: task.APIPipelines, OpID: "node-next-1764748800123-ab12", Action: track.ActionIdentify,
			Person: "id:u1", EnqueuedAt: enqueuedAt, Timestamp: 1704164645,
			Op: []byte(`{"type":"identify","messageId":"node-next-1764748800123-ab12","timestamp":"2024-01-02T03:04:05.678Z","userId":"u1","traits":{"plan":"pro"}}`),
		}},
		{"PipelinesSemanticEvent", task.Payload{
			Workspace: "eu", API: task.APIPipelines, OpID: "k", Action: track.ActionDelete,
			Person: "email:a@b.c", EnqueuedAt: enqueuedAt,
			Op: []byte(`{"type":"track","messageId":"m","userId":"a@b.c","event":"User Deleted"}`),
		}},
		{"LongOp", task.Payload{
			Workspace: "w", OpID: "k", Action: track.ActionEvent, Person: "id:u", EnqueuedAt: enqueuedAt,
			Op: bytes.Repeat([]byte("x"), 300_000),
		}},
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range samplePayloads() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := task.Encode(&tt.p)
			wantVersion := task.Version2 // byte for byte the format before the Pipelines API
			if tt.p.API != task.APITrack {
				wantVersion = task.Version3
			}
			require.Equal(t, wantVersion, b[0])
			got, err := task.Decode(b)
			require.NoError(t, err)
			if diff := cmp.Diff(&tt.p, got); diff != "" {
				t.Fatalf("Decode(Encode(p)) (-want +got):\n%s", diff)
			}
			require.Equal(t, time.UTC, got.EnqueuedAt.Location())
		})
	}
}

func TestPayloadKeepsMilliseconds(t *testing.T) {
	t.Parallel()
	p := task.Payload{
		Workspace: "w", OpID: "k", Action: track.ActionIdentify,
		EnqueuedAt: time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, time.FixedZone("X", 3600)),
		Op:         []byte(`{}`),
	}
	got, err := task.Decode(task.Encode(&p))
	require.NoError(t, err)
	require.True(t, got.EnqueuedAt.Equal(p.EnqueuedAt.Truncate(time.Microsecond)),
		"got %v, want %v", got.EnqueuedAt, p.EnqueuedAt.Truncate(time.Microsecond))
}

func TestPayloadDecodeAliasesOp(t *testing.T) {
	t.Parallel()
	p := samplePayloads()[0].p
	b := task.Encode(&p)
	got, err := task.Decode(b)
	require.NoError(t, err)
	require.Equal(t, len(got.Op), cap(got.Op), "Op must be capped so an append cannot write into b")
	b[len(b)-1] = '!'
	require.Equal(t, byte('!'), got.Op[len(got.Op)-1], "Op aliases the decoded bytes")
	require.Equal(t, "default", got.Workspace, "strings are copies")
}

// withAPI returns a copy of a Version3 payload with its api byte set to api.
func withAPI(b []byte, api byte) []byte {
	c := bytes.Clone(b)
	c[1+task.StampBytes] = api
	return c
}

// build writes a payload field by field, so tests can write what Encode never
// would.
func build(version byte, strs []string, ts int64, op []byte) []byte {
	b := []byte{version}
	b = binary.BigEndian.AppendUint64(b, 1764748800123456)
	for _, s := range strs {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, ts)
	b = binary.AppendUvarint(b, uint64(len(op)))
	return append(b, op...)
}

func TestPayloadDecodeRejectsCorrupt(t *testing.T) {
	t.Parallel()
	good := task.Encode(&task.Payload{
		Workspace: "w", OpID: "k", Action: track.ActionIdentify, Person: "id:u",
		EnqueuedAt: enqueuedAt, Op: []byte(`{"a":1}`),
	})
	valid := []string{"w", "k", "identify", "id:u"}
	good3 := task.Encode(&task.Payload{
		Workspace: "w", API: task.APIPipelines, OpID: "k", Action: track.ActionIdentify, Person: "id:u",
		EnqueuedAt: enqueuedAt, Op: []byte(`{"type":"identify","userId":"u"}`),
	})
	require.Equal(t, task.Version3, good3[0])
	tests := []struct {
		name       string
		in         []byte
		wantReason string
	}{
		{"Nil", nil, "empty"},
		{"Empty", []byte{}, "empty"},
		{"UnknownVersion", append([]byte{9}, good[1:]...), "unknown version 9"},
		{"VersionOne", append([]byte{1}, good[1:]...), "unknown version 1"},
		{"VersionZero", append([]byte{0}, good[1:]...), "unknown version 0"},
		{"VersionOnly", []byte{task.Version2}, "truncated enqueued_at"},
		{"TruncatedStamp", good[:5], "truncated enqueued_at"},
		{"StampOnly", good[:9], "bad length"},
		{"TruncatedInString", build(2, []string{"workspace"}, 0, nil)[:13], "past the end"},
		{"TruncatedBetweenStrings", good[:11], "bad length"},
		{"TruncatedBeforeTimestamp", build(2, valid, 0, nil)[:9+2+2+9+5], "bad timestamp"},
		{"TruncatedOp", good[:len(good)-1], "past the end"},
		{"NoOpLength", build(2, valid, 5, nil)[:len(build(2, valid, 5, nil))-1], "bad length"},
		{"TrailingBytes", append(bytes.Clone(good), 0), "1 trailing byte(s)"},
		{"LengthOverflow", append(bytes.Clone(good[:9]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "bad length"},
		{"HugeLength", append(bytes.Clone(good[:9]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "past the end"},
		{"NoWorkspace", build(2, []string{"", "k", "identify", ""}, 0, []byte("{}")), "no workspace"},
		{"NoOpID", build(2, []string{"w", "", "identify", ""}, 0, []byte("{}")), "no op id"},
		{"UnknownAction", build(2, []string{"w", "k", "launch", ""}, 0, []byte("{}")), `unknown action "launch"`},
		{"EmptyAction", build(2, []string{"w", "k", "", ""}, 0, []byte("{}")), `unknown action ""`},
		{"NoOp", build(2, valid, 0, nil), "no op"},
		{"Version3TruncatedBeforeAPI", good3[:9], "truncated api"},
		{"Version3UnknownAPI", withAPI(good3, 7), "unknown api 7"},
		{"Version3StampOnlyThenAPI", good3[:10], "bad length"},
		{"Version3TrailingBytes", append(bytes.Clone(good3), 0), "1 trailing byte(s)"},
		{"Version3TruncatedOp", good3[:len(good3)-1], "past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := task.Decode(tt.in)
			require.Nil(t, got)
			require.ErrorIs(t, err, task.ErrCorrupt)
			var ce *task.CorruptError
			require.True(t, errors.As(err, &ce))
			require.Contains(t, ce.Reason, tt.wantReason)
			require.Contains(t, err.Error(), "task: corrupt payload: ")
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, tt := range samplePayloads() {
		if len(tt.p.Op) < 1000 {
			f.Add(task.Encode(&tt.p))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80})
	f.Add(build(2, []string{"w", "k", "event", "id:u"}, -1, []byte("x")))
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 'w', 1, 'k', 5, 'e', 'v', 'e', 'n', 't', 0, 0, 1, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		p, err := task.Decode(b)
		require.Equal(t, in, b, "Decode must not modify its input")
		if err != nil {
			require.ErrorIs(t, err, task.ErrCorrupt)
			require.Nil(t, p)
			return
		}
		require.NotEmpty(t, p.Workspace)
		require.NotEmpty(t, p.OpID)
		require.True(t, p.Action.Valid())
		require.True(t, p.API.Valid())
		require.NotEmpty(t, p.Op)
		again, err := task.Decode(task.Encode(p))
		require.NoError(t, err)
		if diff := cmp.Diff(p, again); diff != "" {
			t.Fatalf("Decode(Encode(p)) (-want +got):\n%s", diff)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("default", "01JD4X7Q8M6Y2K3N5P7R9T1V3W", uint8(1), "id:u1", int64(1700000000123), []byte(`{"a":1}`), false)
	f.Add("w", "k", uint8(5), "", int64(-1), []byte{0}, true)
	f.Fuzz(func(t *testing.T, ws, opID string, ai uint8, person string, us int64, op []byte, pipelines bool) {
		if ws == "" || opID == "" || len(op) == 0 {
			t.Skip("Decode rejects payloads missing a required field")
		}
		api := task.APITrack
		if pipelines {
			api = task.APIPipelines
		}
		p := &task.Payload{
			Workspace: ws, API: api, OpID: opID, Action: track.Actions()[int(ai)%len(track.Actions())],
			Person: person, EnqueuedAt: task.TimeOfStamp(us), Timestamp: us / 1_000_000, Op: op,
		}
		got, err := task.Decode(task.Encode(p))
		require.NoError(t, err)
		if diff := cmp.Diff(p, got); diff != "" {
			t.Fatalf("Decode(Encode(p)) (-want +got):\n%s", diff)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	p := samplePayloads()[0].p
	b.ReportAllocs()
	for b.Loop() {
		_ = task.Encode(&p)
	}
}

func BenchmarkDecode(b *testing.B) {
	p := samplePayloads()[0].p
	enc := task.Encode(&p)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := task.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
