package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is one run of the CLI.
type result struct {
	code        int
	stdout      string
	stderr      string
	outputs     string // both, for "never prints" checks
	parsedYAML  map[string]any
	yamlInvalid error
}

// run executes cioq with args and an injected environment (no os.Setenv, so
// tests run in parallel).
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCtx(t, context.Background(), env, args...)
}

func runCtx(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := execute(ctx, args, streams{in: strings.NewReader(""), out: &out, err: &errOut}, lookup)
	r := result{code: code, stdout: out.String(), stderr: errOut.String()}
	r.outputs = r.stdout + r.stderr
	r.yamlInvalid = yaml.Unmarshal([]byte(r.stdout), &r.parsedYAML)
	return r
}

const testKey = "key-s3cr3t-value"

func credsEnv(kv ...string) map[string]string {
	m := map[string]string{"CUSTOMERIO_SITE_ID": "site-1", "CUSTOMERIO_TRACK_API_KEY": testKey}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "version")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "cioq dev\n")
	require.Contains(t, r.stdout, "go: go1.")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "NoArgsPrintsHelp", args: nil, wantCode: exitOK},
		{name: "UnknownCommand", args: []string{"bogus"}, wantCode: exitUsage, wantErr: `unknown command "bogus" for "cioq"`},
		{name: "UnknownSubcommand", args: []string{"config", "bogus"}, wantCode: exitUsage, wantErr: `unknown command "bogus" for "cioq config"`},
		{name: "UnknownFlag", args: []string{"version", "--nope"}, wantCode: exitUsage, wantErr: "unknown flag: --nope"},
		{name: "ExtraArgument", args: []string{"version", "extra"}, wantCode: exitUsage, wantErr: `unknown command "extra" for "cioq version"`},
		{name: "BadFlagValue", args: []string{"fakecio", "--rate", "fast"}, wantCode: exitUsage, wantErr: `invalid argument "fast"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, tt.args...)
			require.Equal(t, tt.wantCode, r.code, r.outputs)
			if tt.wantErr != "" {
				require.Contains(t, r.stderr, tt.wantErr)
				require.Contains(t, r.stderr, "--help' for usage.")
			} else {
				require.Contains(t, r.stdout, "Usage:")
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()

	t.Run("ValidPrintsRedactedYAML", func(t *testing.T) {
		t.Parallel()
		r := run(t, credsEnv("REDIS_URL", "redis://:hunter2@10.0.0.5:6379/1"), "config", "check")
		require.Equal(t, exitOK, r.code, r.outputs)
		require.NoError(t, r.yamlInvalid)
		require.NotContains(t, r.outputs, testKey)
		require.NotContains(t, r.outputs, "hunter2")
		ws := r.parsedYAML["workspaces"].([]any)[0].(map[string]any)
		require.Equal(t, "REDACTED", ws["api_key"])
		require.Equal(t, "site-1", ws["site_id"])
		require.Equal(t, "redis://:xxxxx@10.0.0.5:6379/1", r.parsedYAML["redis"].(map[string]any)["url"])
		require.Contains(t, r.stderr, "configuration OK")
	})

	// No credential embedded in a URL reaches the output, whatever the
	// scheme: Redis URLs of every kind, track_url, monitoring password.
	t.Run("NoSecretInAnyURL", func(t *testing.T) {
		t.Parallel()
		const secret = "pw-6c1e"
		for _, tt := range []struct{ name, redis, track string }{
			{"Redis", "redis://" + secret + "@10.0.0.5:6379/1", ""},
			{"RedisUserPassword", "redis://app:" + secret + "@10.0.0.5:6379/1", ""},
			{"Rediss", "rediss://:" + secret + "@redis.example:6380/0", ""},
			{"Sentinel", "redis-sentinel://:" + secret + "@s1:26379,s2:26379/0?master=mymaster&password=" + secret, ""},
			{"Cluster", "redis-cluster://u:" + secret + "@n1:7000,n2:7001?password=" + secret, ""},
			{"Socket", "redis-socket://:" + secret + "@/var/run/redis.sock", ""},
			{"TrackURLUserinfo", "", "https://proxy:" + secret + "@proxy.example/api/v1"},
			{"TrackURLToken", "", "https://" + secret + "@proxy.example"},
			{"TrackURLQueryToken", "", "https://proxy.example?token=" + secret},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				env := credsEnv("CIOQ_MONITORING_USERNAME", "ops", "CIOQ_MONITORING_PASSWORD", secret)
				if tt.redis != "" {
					env["REDIS_URL"] = tt.redis
				}
				if tt.track != "" {
					env["CUSTOMERIO_TRACK_URL"] = tt.track
				}
				r := run(t, env, "config", "check")
				require.NotContains(t, r.outputs, secret, "exit %d", r.code)
				require.NotContains(t, r.outputs, testKey)
				if tt.track == "" {
					require.Equal(t, exitOK, r.code, r.outputs)
					require.Contains(t, r.parsedYAML["redis"].(map[string]any)["url"], "xxxxx")
				} else {
					ws := r.parsedYAML["workspaces"].([]any)[0].(map[string]any)
					require.Contains(t, ws["track_url"], "xxxxx")
				}
			})
		}
	})

	t.Run("InvalidListsEveryProblemAndExits2", func(t *testing.T) {
		t.Parallel()
		r := run(t, map[string]string{
			"CUSTOMERIO_TRACK_API_KEY": testKey,
			"CUSTOMERIO_REGION":        "mars",
			"CIOQ_RATE_LIMIT":          "-5",
			"CIOQ_BATCH_MAX_BYTES":     "600000",
		}, "config", "check", "--log-level", "loud")
		require.Equal(t, exitUsage, r.code, r.outputs)
		require.NoError(t, r.yamlInvalid, "the effective config is still printed")
		for _, want := range []string{"CUSTOMERIO_SITE_ID", `region "mars"`, `CIOQ_RATE_LIMIT="-5"`, "batch.max_bytes 600000", `log.level "loud"`} {
			require.Contains(t, r.stderr, want)
		}
		require.NotContains(t, r.stderr, "--help' for usage.", "a config error says what to set, not how to call")
		require.NotContains(t, r.outputs, testKey)
	})

	t.Run("NoCredentialsSkipsTheCredentialCheck", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, exitUsage, run(t, nil, "config", "check").code)
		r := run(t, nil, "config", "check", "--no-credentials")
		require.Equal(t, exitOK, r.code, r.outputs)
	})

	t.Run("FlagsBeatEnvBeatFile", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "cioq.yaml")
		require.NoError(t, os.WriteFile(file, []byte("http_addr: \":7000\"\nredis:\n  url: redis://file:1\nkey_prefix: \"file:\"\n"), 0o600))
		env := credsEnv("CIOQ_CONFIG", file, "CIOQ_HTTP_ADDR", ":7001", "REDIS_ADDR", "envhost:2")

		r := run(t, env, "config", "check")
		require.Equal(t, exitOK, r.code, r.outputs)
		require.Equal(t, ":7001", r.parsedYAML["http_addr"])
		require.Equal(t, "redis://envhost:2", r.parsedYAML["redis"].(map[string]any)["url"])
		require.Equal(t, "file:", r.parsedYAML["key_prefix"])

		r = run(t, env, "config", "check", "--addr", ":7002", "--redis", "redis://flag:3")
		require.Equal(t, exitOK, r.code, r.outputs)
		require.Equal(t, ":7002", r.parsedYAML["http_addr"])
		require.Equal(t, "redis://flag:3", r.parsedYAML["redis"].(map[string]any)["url"])
	})

	t.Run("ConfigFlagBeatsEnv", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
		require.NoError(t, os.WriteFile(a, []byte("key_prefix: \"a:\"\n"), 0o600))
		require.NoError(t, os.WriteFile(b, []byte("key_prefix: \"b:\"\n"), 0o600))
		r := run(t, credsEnv("CIOQ_CONFIG", a), "config", "check", "-c", b)
		require.Equal(t, exitOK, r.code, r.outputs)
		require.Equal(t, "b:", r.parsedYAML["key_prefix"])
	})

	t.Run("MissingFileExits2", func(t *testing.T) {
		t.Parallel()
		r := run(t, credsEnv(), "config", "check", "--config", filepath.Join(t.TempDir(), "none.yaml"))
		require.Equal(t, exitUsage, r.code)
		require.Contains(t, r.stderr, "none.yaml")
	})
}
