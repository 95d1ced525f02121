package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

func TestNewTaskWithHeaders(t *testing.T) {
	t.Parallel()
	p := &task.Payload{Workspace: "ws", OpID: "op1", Action: track.ActionEvent, Person: "id:u",
		EnqueuedAt: time.UnixMicro(1_700_000_000_000_000).UTC(), Op: []byte(`{"type":"person"}`)}

	t.Run("CarriesHeadersAndTheSamePayload", func(t *testing.T) {
		t.Parallel()
		h := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
		tk := task.NewTaskWithHeaders(p, h)
		require.Equal(t, h, tk.Headers())
		require.Equal(t, task.NewTask(p).Payload(), tk.Payload())
		got, err := task.FromTask(tk)
		require.NoError(t, err)
		require.Equal(t, p, got)
	})

	t.Run("NoHeadersIsNewTask", func(t *testing.T) {
		t.Parallel()
		tk := task.NewTaskWithHeaders(p, nil)
		require.Empty(t, tk.Headers())
		require.Equal(t, task.TypeName(track.ActionEvent), tk.Type())
	})
}
