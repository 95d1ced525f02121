package task_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

func TestTypeNameAndActionOf(t *testing.T) {
	t.Parallel()
	t.Run("EveryActionRoundTrips", func(t *testing.T) {
		t.Parallel()
		for _, a := range track.Actions() {
			name := task.TypeName(a)
			require.Equal(t, "cio:"+string(a), name)
			got, ok := task.ActionOf(name)
			require.True(t, ok, name)
			require.Equal(t, a, got)
		}
	})
	t.Run("RejectsForeignTypes", func(t *testing.T) {
		t.Parallel()
		for _, typ := range []string{"", "cio:", "cio:launch", "identify", "email:welcome", "CIO:identify", "cio:identify ",
			"cio:pipelines:identify", "cio:pipelines:", "cio:pipelines:launch"} {
			a, ok := task.ActionOf(typ)
			require.False(t, ok, "%q", typ)
			require.Empty(t, a)
		}
	})
	t.Run("PipelinesTypesRoundTrip", func(t *testing.T) {
		t.Parallel()
		for _, api := range task.APIs {
			for _, a := range track.Actions() {
				name := task.TypeNameOf(api, a)
				gotAPI, got, ok := task.ParseType(name)
				require.True(t, ok, name)
				require.Equal(t, a, got)
				require.Equal(t, api, gotAPI)
			}
		}
		require.Equal(t, "cio:pipelines:identify", task.TypeNameOf(task.APIPipelines, track.ActionIdentify))
		require.Equal(t, "cio:identify", task.TypeNameOf(task.APITrack, track.ActionIdentify))
	})
}

func TestAPI(t *testing.T) {
	t.Parallel()
	for _, api := range task.APIs {
		got, err := task.ParseAPI(api.String())
		require.NoError(t, err)
		require.Equal(t, api, got)
		require.True(t, api.Valid())
	}
	got, err := task.ParseAPI("")
	require.NoError(t, err)
	require.Equal(t, task.APITrack, got, "dead letters from before the Pipelines API name none")
	_, err = task.ParseAPI("cdp")
	require.Error(t, err)
	require.False(t, task.API(2).Valid())
	require.Equal(t, "api(2)", task.API(2).String())
}

func TestQueue(t *testing.T) {
	t.Parallel()
	want := map[track.Action]string{
		track.ActionSuppress:   task.QueueCritical,
		track.ActionUnsuppress: task.QueueCritical,
		track.ActionDelete:     task.QueueCritical,
	}
	for _, a := range track.Actions() {
		require.Equal(t, cmpOr(want[a], task.QueueDefault), task.Queue(task.DefaultWorkspace, a), string(a))
		require.Equal(t, cmpOr(want[a], task.QueueDefault)+".eu", task.Queue("eu", a), string(a))
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestTaskID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "default:01JD4X7Q8M6Y2K3N5P7R9T1V3W", task.TaskID("default", "01JD4X7Q8M6Y2K3N5P7R9T1V3W"))
	require.Equal(t, task.TaskID("w", "k"), task.TaskID("w", "k"), "deterministic")
	require.NotEqual(t, task.TaskID("w1", "k"), task.TaskID("w2", "k"))
}

func TestNewTaskAndFromTask(t *testing.T) {
	t.Parallel()
	t.Run("CarriesTypeAndPayload", func(t *testing.T) {
		t.Parallel()
		for _, tt := range samplePayloads() {
			tk := task.NewTask(&tt.p, asynq.MaxRetry(3))
			require.Equal(t, task.TypeNameOf(tt.p.API, tt.p.Action), tk.Type())
			got, err := task.FromTask(tk)
			require.NoError(t, err)
			if diff := cmp.Diff(&tt.p, got); diff != "" {
				t.Fatalf("%s: FromTask (-want +got):\n%s", tt.name, diff)
			}
		}
	})
	t.Run("RejectsTypeMismatch", func(t *testing.T) {
		t.Parallel()
		p := samplePayloads()[0].p // identify
		tk := asynq.NewTask(task.TypeName(track.ActionDelete), task.Encode(&p))
		_, err := task.FromTask(tk)
		require.ErrorIs(t, err, task.ErrCorrupt)
		require.ErrorContains(t, err, `task type "cio:delete" carries action "identify"`)
	})
	t.Run("RejectsAPIMismatch", func(t *testing.T) {
		t.Parallel()
		p := samplePayloads()[0].p // a Track identify
		_, err := task.FromTask(asynq.NewTask(task.TypeNameOf(task.APIPipelines, track.ActionIdentify), task.Encode(&p)))
		require.ErrorIs(t, err, task.ErrCorrupt)
		require.ErrorContains(t, err, `task type "cio:pipelines:identify" carries an op of the track API`)
		p.API = task.APIPipelines
		_, err = task.FromTask(asynq.NewTask(task.TypeName(track.ActionIdentify), task.Encode(&p)))
		require.ErrorIs(t, err, task.ErrCorrupt)
		require.ErrorContains(t, err, "carries an op of the pipelines API")
	})
	t.Run("RejectsForeignType", func(t *testing.T) {
		t.Parallel()
		p := samplePayloads()[0].p
		_, err := task.FromTask(asynq.NewTask("email:welcome", task.Encode(&p)))
		require.ErrorIs(t, err, task.ErrCorrupt)
	})
	t.Run("RejectsCorruptPayload", func(t *testing.T) {
		t.Parallel()
		_, err := task.FromTask(asynq.NewTask("cio:identify", []byte("{}")))
		require.ErrorIs(t, err, task.ErrCorrupt)
	})
}
