package config

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLog_Logger(t *testing.T) {
	t.Parallel()
	t.Run("JSONAtWarnDropsInfo", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		l := Log{Level: "warn", Format: "json"}.Logger(&buf)
		l.Info("quiet")
		l.Warn("loud", "workspace_id", "w1")
		var rec map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
		require.Equal(t, "loud", rec["msg"])
		require.Equal(t, "w1", rec["workspace_id"])
	})
	t.Run("TextAtDebug", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		Log{Level: "DEBUG"}.Logger(&buf).Debug("hello")
		require.Contains(t, buf.String(), "level=DEBUG msg=hello")
	})
	t.Run("UnknownLevelMeansInfo", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		l := Log{Level: "loud"}.Logger(&buf)
		l.Debug("no")
		l.Info("yes")
		require.NotContains(t, buf.String(), "msg=no")
		require.Contains(t, buf.String(), "msg=yes")
	})
}
