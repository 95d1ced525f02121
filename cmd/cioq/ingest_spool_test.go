package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/internal/redistest"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/track"
)

// TestIngestCmd_SpoolsWhileRedisIsDown: with spool.dir set, cioq ingest stays
// ready and answers 200 while Redis is down (the op is durable on disk), and
// the op reaches Redis once it is back.
func TestIngestCmd_SpoolsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	db := redistest.NewOn(t, srv)
	env := map[string]string{"CUSTOMERIO_SITE_ID": "sp-site", "CUSTOMERIO_TRACK_API_KEY": "sp-key-secret",
		"CIOQ_SPOOL_DIR": filepath.Join(t.TempDir(), "spool")}
	ctx := context.Background()
	in := startIngestCmd(t, env, db.URL())
	base := in.base
	c, err := track.NewClient(track.Config{SiteID: "sp-site", APIKey: "sp-key-secret", BaseURL: base})
	require.NoError(t, err)

	srv.Kill()
	for i, id := range []string{"down-1", "down-2", "down-3"} {
		require.NoError(t, c.Identify(ctx, id, map[string]any{"i": i}), "200 while Redis is down: the op is in the spool")
	}
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "ready: the spool can take ops")

	srv.Start()
	insp := asynq.NewInspector(db.ConnOpt())
	defer insp.Close()
	require.Eventually(t, func() bool {
		info, err := insp.GetQueueInfo(task.QueueDefault)
		return err == nil && info.Pending == 3
	}, 30*time.Second, 50*time.Millisecond, "the spooled ops are replayed into Redis")

	in.stop(t)
	require.NotContains(t, in.errOut.String(), "ingest has no spool", "no warning with a spool")
	require.Contains(t, in.errOut.String(), "spool=true")
}
