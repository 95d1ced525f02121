package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const apiKey = "apiKey-s3cr3t"

func TestSecret_NeverPrintsTheValue(t *testing.T) {
	t.Parallel()
	s := Secret(apiKey)
	require.Equal(t, apiKey, s.Reveal())

	ws := Workspace{Name: "w", APIKey: s}
	cfg := &Config{Workspaces: []Workspace{ws}}
	outputs := map[string]string{}
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%10s", "%T"} {
		outputs["secret "+verb] = fmt.Sprintf(verb, s)
		outputs["workspace "+verb] = fmt.Sprintf(verb, ws)
		outputs["config "+verb] = fmt.Sprintf(verb, cfg)
		outputs["config value "+verb] = fmt.Sprintf(verb, *cfg)
	}
	outputs["String"] = s.String()
	b, err := json.Marshal(ws)
	require.NoError(t, err)
	outputs["json"] = string(b)
	b, err = yaml.Marshal(ws)
	require.NoError(t, err)
	outputs["yaml"] = string(b)
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("m", "api_key", s, "workspace", ws)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("m", "api_key", s, "workspace", ws)
	outputs["slog text"] = text.String()
	outputs["slog json"] = js.String()

	for name, out := range outputs {
		require.NotContains(t, out, apiKey, name)
		require.NotContains(t, out, fmt.Sprintf("%x", apiKey), name)
	}
	require.Contains(t, outputs["secret %v"], Redacted)
	require.Contains(t, outputs["json"], Redacted)
	require.Contains(t, outputs["slog json"], Redacted)
}

func TestSecret_EmptyPrintsEmpty(t *testing.T) {
	t.Parallel()
	require.Equal(t, "", Secret("").String())
	require.Equal(t, `""`, fmt.Sprintf("%q", Secret("")))
}

func TestConfig_YAMLRedactsAndRoundTrips(t *testing.T) {
	t.Parallel()
	cfg, err := Load(LoadOptions{Env: testEnv(
		EnvSiteID, "site-1", EnvAPIKey, apiKey,
		"REDIS_URL", "redis://:hunter2@10.0.0.1:6379/4",
		"CIOQ_BATCH_MAX_WAIT", "75ms",
	), Defaults: testDefaults})
	require.NoError(t, err)
	out, err := cfg.YAML()
	require.NoError(t, err)
	require.NotContains(t, string(out), apiKey)
	require.NotContains(t, string(out), "hunter2")
	require.Contains(t, string(out), "api_key: REDACTED")
	require.Contains(t, string(out), "max_wait: 75ms")
	require.Contains(t, string(out), "url: redis://:xxxxx@10.0.0.1:6379/4")

	// The printed config is itself a valid config file giving the same
	// config, except for what was redacted.
	back, err := Load(LoadOptions{File: writeFile(t, string(out)), Env: testEnv(), Defaults: testDefaults})
	require.NoError(t, err)
	want := *cfg
	want.EnvWorkspace = false
	want.Redis.URL = "redis://:xxxxx@10.0.0.1:6379/4"
	want.Workspaces = []Workspace{cfg.Workspaces[0]}
	want.Workspaces[0].APIKey = Redacted
	require.Equal(t, &want, back)
}
