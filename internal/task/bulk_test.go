package task_test

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

// sampleBulk returns a bulk of every sample payload, in workspace ws, as
// ops of the Track API.
func sampleBulk(ws string) *task.Bulk { return sampleBulkOf(ws, task.APITrack) }

// sampleBulkOf returns a bulk of every sample payload, in workspace ws, as
// ops of api.
func sampleBulkOf(ws string, api task.API) *task.Bulk {
	b := &task.Bulk{Workspace: ws, API: api}
	for _, tt := range samplePayloads() {
		p := tt.p
		p.Workspace, p.API = ws, api
		b.Ops = append(b.Ops, &p)
	}
	return b
}

func TestBulkRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		b    *task.Bulk
	}{
		{"EverySamplePayload", sampleBulk("eu-shop")},
		{"OneOp", &task.Bulk{Workspace: "default", Ops: sampleBulk("default").Ops[:1]}},
		{"Pipelines", sampleBulkOf("eu-shop", task.APIPipelines)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := task.DecodeBulk(task.EncodeBulk(tt.b))
			require.NoError(t, err)
			if diff := cmp.Diff(tt.b, got); diff != "" {
				t.Fatalf("DecodeBulk(EncodeBulk(b)) (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("OpWorkspaceAndAPIAreTheBulks", func(t *testing.T) {
		t.Parallel()
		b := sampleBulkOf("w1", task.APIPipelines)
		b.Ops[0].Workspace, b.Ops[1].API = "something-else", task.APITrack
		enc := task.EncodeBulk(b)
		require.Equal(t, task.BulkVersion3, enc[0])
		got, err := task.DecodeBulk(enc)
		require.NoError(t, err)
		for _, p := range got.Ops {
			require.Equal(t, "w1", p.Workspace)
			require.Equal(t, task.APIPipelines, p.API)
		}
	})
	t.Run("TrackBulkKeepsVersion2", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, task.BulkVersion2, task.EncodeBulk(sampleBulk("w1"))[0])
	})
}

// rawBulk builds a bulk payload by hand: ws, count, then ops given as
// [op id, action, person] + enqueued_at µs + op bytes.
func rawBulk(version byte, ws string, count uint64, ops ...[]byte) []byte {
	b := []byte{version}
	b = binary.AppendUvarint(b, uint64(len(ws)))
	b = append(b, ws...)
	b = binary.AppendUvarint(b, count)
	for _, op := range ops {
		b = append(b, op...)
	}
	return b
}

func rawOp(id, action, person string, us int64, op string) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(us))
	for _, s := range []string{id, action, person} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, us/1_000_000)
	b = binary.AppendUvarint(b, uint64(len(op)))
	return append(b, op...)
}

func TestDecodeBulkRejectsMalformed(t *testing.T) {
	t.Parallel()
	good := rawOp("k", "event", "id:u", 1, `{}`)
	valid := rawBulk(task.BulkVersion2, "w", 1, good)
	_, err := task.DecodeBulk(valid)
	require.NoError(t, err, "the base case decodes")
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"Empty", nil},
		{"UnknownVersion", rawBulk(9, "w", 1, good)},
		{"SingleOpPayloadVersionByteButWrongShape", []byte{task.BulkVersion2}},
		{"NoWorkspace", rawBulk(task.BulkVersion2, "", 1, good)},
		{"ZeroOps", rawBulk(task.BulkVersion2, "w", 0)},
		{"TooManyOps", rawBulk(task.BulkVersion2, "w", task.MaxBulkOps+1, good)},
		{"FewerOpsThanCounted", rawBulk(task.BulkVersion2, "w", 2, good)},
		{"TrailingBytes", append(bytes.Clone(valid), 0)},
		{"Truncated", valid[:len(valid)-1]},
		{"NoOpID", rawBulk(task.BulkVersion2, "w", 1, rawOp("", "event", "id:u", 1, `{}`))},
		{"UnknownAction", rawBulk(task.BulkVersion2, "w", 1, rawOp("k", "explode", "id:u", 1, `{}`))},
		{"NoOp", rawBulk(task.BulkVersion2, "w", 1, rawOp("k", "event", "id:u", 1, ``))},
		{"LengthPastTheEnd", rawBulk(task.BulkVersion2, "w", 1, []byte{0x7f, 'k'})},
		{"Version3NoAPI", []byte{task.BulkVersion3}},
		{"Version3UnknownAPI", append([]byte{task.BulkVersion3, 9}, valid[1:]...)},
		{"Version3WithoutAPIByte", rawBulk(task.BulkVersion3, "w", 1, good)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := task.DecodeBulk(tt.b)
			require.ErrorIs(t, err, task.ErrCorrupt)
			require.Nil(t, got)
		})
	}
}

func TestBulkTaskID(t *testing.T) {
	t.Parallel()
	t.Run("IndependentOfOrder", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, task.BulkTaskID("w", []string{"a", "b", "c"}), task.BulkTaskID("w", []string{"c", "a", "b"}))
	})
	t.Run("DiffersByOpsAndWorkspace", func(t *testing.T) {
		t.Parallel()
		base := task.BulkTaskID("w", []string{"a", "b"})
		require.NotEqual(t, base, task.BulkTaskID("w", []string{"a", "b", "c"}))
		require.NotEqual(t, base, task.BulkTaskID("v", []string{"a", "b"}))
		// Length prefixes keep ("ab") and ("a","b") apart.
		require.NotEqual(t, task.BulkTaskID("w", []string{"ab"}), base)
	})
	t.Run("DoesNotModifyItsInput", func(t *testing.T) {
		t.Parallel()
		ids := []string{"z", "a"}
		task.BulkTaskID("w", ids)
		require.Equal(t, []string{"z", "a"}, ids)
	})
}

func TestNewBulkTask(t *testing.T) {
	t.Parallel()
	b := sampleBulk("eu-shop")
	tk := task.NewBulkTask(b)
	require.Equal(t, task.TypeBulk, tk.Type())
	got, err := task.BulkFromTask(tk)
	require.NoError(t, err)
	if diff := cmp.Diff(b, got); diff != "" {
		t.Fatalf("BulkFromTask (-want +got):\n%s", diff)
	}
	_, isAction := task.ActionOf(task.TypeBulk)
	require.False(t, isAction, "the bulk type must not be taken for an action")
	_, _, isType := task.ParseType(task.TypeBulkPipelines)
	require.False(t, isType, "the Pipelines bulk type must not be taken for an action")

	pb := sampleBulkOf("eu-shop", task.APIPipelines)
	ptk := task.NewBulkTask(pb)
	require.Equal(t, "cio:pipelines:bulk", ptk.Type())
	pgot, err := task.BulkFromTask(ptk)
	require.NoError(t, err)
	if diff := cmp.Diff(pb, pgot); diff != "" {
		t.Fatalf("BulkFromTask of a Pipelines bulk (-want +got):\n%s", diff)
	}
	_, err = task.BulkFromTask(asynq.NewTask(task.TypeBulk, task.EncodeBulk(pb)))
	require.ErrorIs(t, err, task.ErrCorrupt, "a Pipelines bulk under the Track bulk type")
	require.ErrorContains(t, err, "carries ops of the pipelines API")

	single := task.NewTask(b.Ops[0])
	_, err = task.BulkFromTask(single)
	require.ErrorIs(t, err, task.ErrCorrupt)
	_, err = task.FromTask(tk)
	require.ErrorIs(t, err, task.ErrCorrupt)
}

func TestBulkQueue(t *testing.T) {
	t.Parallel()
	require.Equal(t, "bulk", task.BulkQueue(task.DefaultWorkspace))
	require.Equal(t, "bulk", task.BulkQueue(""))
	require.Equal(t, "bulk.eu", task.BulkQueue("eu"))
}

func TestBulkBodyBytes(t *testing.T) {
	t.Parallel()
	b := &task.Bulk{Workspace: "w"}
	require.Equal(t, len(`{"batch":[]}`), b.BodyBytes())
	for i := range 3 {
		b.Ops = append(b.Ops, &task.Payload{OpID: strconv.Itoa(i), Op: []byte(`{"a":1}`)})
	}
	require.Equal(t, len(`{"batch":[{"a":1},{"a":1},{"a":1}]}`), b.BodyBytes())
}

func FuzzDecodeBulk(f *testing.F) {
	f.Add(task.EncodeBulk(&task.Bulk{Workspace: "w", Ops: sampleBulk("w").Ops[:4]}))
	f.Add([]byte{})
	f.Add([]byte{task.BulkVersion2, 1, 'w', 1})
	f.Add(rawBulk(task.BulkVersion2, "w", 2, rawOp("k", "event", "id:u", -5, `{}`), rawOp("j", "delete", "", 7, `x`)))
	f.Add(task.EncodeBulk(&task.Bulk{Workspace: "w", API: task.APIPipelines, Ops: sampleBulkOf("w", task.APIPipelines).Ops[:2]}))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		got, err := task.DecodeBulk(b)
		require.Equal(t, in, b, "DecodeBulk must not modify its input")
		if err != nil {
			require.ErrorIs(t, err, task.ErrCorrupt)
			require.Nil(t, got)
			return
		}
		require.NotEmpty(t, got.Workspace)
		require.NotEmpty(t, got.Ops)
		require.True(t, got.API.Valid())
		for _, p := range got.Ops {
			require.Equal(t, got.Workspace, p.Workspace)
			require.Equal(t, got.API, p.API)
			require.NotEmpty(t, p.OpID)
			require.True(t, p.Action.Valid())
			require.NotEmpty(t, p.Op)
		}
		again, err := task.DecodeBulk(task.EncodeBulk(got))
		require.NoError(t, err)
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("DecodeBulk(EncodeBulk(b)) (-want +got):\n%s", diff)
		}
	})
}

func FuzzBulkRoundTrip(f *testing.F) {
	f.Add("default", "01JD4X7Q8M6Y2K3N5P7R9T1V3W", uint8(1), "id:u1", int64(1700000000123), []byte(`{"a":1}`), uint8(3), false)
	f.Add("w", "k", uint8(4), "email:a@b.c", int64(5), []byte(`{"type":"track"}`), uint8(2), true)
	f.Fuzz(func(t *testing.T, ws, opID string, ai uint8, person string, us int64, op []byte, n uint8, pipelines bool) {
		if ws == "" || opID == "" || len(op) == 0 || n == 0 || us <= 0 {
			t.Skip("DecodeBulk rejects bulks missing a required field")
		}
		api := task.APITrack
		if pipelines {
			api = task.APIPipelines
		}
		b := &task.Bulk{Workspace: ws, API: api}
		for i := range int(n) {
			b.Ops = append(b.Ops, &task.Payload{Workspace: ws, API: api, OpID: opID + strconv.Itoa(i),
				Action: track.Actions()[(int(ai)+i)%len(track.Actions())], Person: person,
				EnqueuedAt: task.TimeOfStamp(us + int64(i)), Op: op})
		}
		got, err := task.DecodeBulk(task.EncodeBulk(b))
		require.NoError(t, err)
		if diff := cmp.Diff(b, got); diff != "" {
			t.Fatalf("DecodeBulk(EncodeBulk(b)) (-want +got):\n%s", diff)
		}
	})
}

func BenchmarkDecodeBulk(b *testing.B) {
	bulk := &task.Bulk{Workspace: "default"}
	op := []byte(`{"type":"person","identifiers":{"id":"u1"},"action":"event","name":"page_viewed","id":"01JD4X7Q8M6Y2K3N5P7R9T1V3W","timestamp":1700000000,"attributes":{"seq":1}}`)
	for i := range task.DefaultBulkMaxOps {
		bulk.Ops = append(bulk.Ops, &task.Payload{OpID: "imp-" + strconv.Itoa(i), Action: track.ActionEvent,
			Person: "id:u1", EnqueuedAt: enqueuedAt, Op: op})
	}
	enc := task.EncodeBulk(bulk)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := task.DecodeBulk(enc); err != nil {
			b.Fatal(err)
		}
	}
}
