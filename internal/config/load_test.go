package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
)

// testEnv is an injected environment: no os.Setenv, so tests run in parallel.
func testEnv(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// creds makes the env workspace valid.
var creds = []string{EnvSiteID, "site-1", EnvAPIKey, "key-s3cr3t"}

func withCreds(kv ...string) func(string) (string, bool) {
	return testEnv(append(append([]string{}, creds...), kv...)...)
}

// testFlags is a flag set like cmd/cioq's persistent flags, with args parsed.
func testFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("config", "", "")
	fs.String("redis", "", "")
	fs.String("addr", "", "")
	fs.String("log-level", "", "")
	fs.String("log-format", "", "")
	require.NoError(t, fs.Parse(args))
	return fs
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cioq.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestLoad_RedisURLPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "redis:\n  url: redis://file:6379\n")
	tests := []struct {
		name  string
		flags []string
		env   []string
		file  string
		want  string
	}{
		{name: "DefaultWhenNothingSet", want: DefaultRedisURL},
		{name: "FileOverDefault", file: file, want: "redis://file:6379"},
		{name: "RedisAddrHostPortOverFile", file: file, env: []string{"REDIS_ADDR", "addr:6380"}, want: "redis://addr:6380"},
		{name: "RedisAddrWithSchemeTakenAsURL", env: []string{"REDIS_ADDR", "rediss://addr:6380"}, want: "rediss://addr:6380"},
		{name: "RedisURLOverRedisAddr", file: file, env: []string{"REDIS_ADDR", "addr:6380", "REDIS_URL", "redis://url:6381"}, want: "redis://url:6381"},
		{name: "CioqRedisURLOverRedisURL", env: []string{"REDIS_ADDR", "addr:6380", "REDIS_URL", "redis://url:6381", "CIOQ_REDIS_URL", "redis://cioq:6382"}, want: "redis://cioq:6382"},
		{name: "EmptyEnvCountsAsUnset", env: []string{"CIOQ_REDIS_URL", "", "REDIS_URL", "redis://url:6381"}, want: "redis://url:6381"},
		{name: "FlagOverEverything", file: file, flags: []string{"--redis", "redis://flag:6383/2"}, env: []string{"CIOQ_REDIS_URL", "redis://cioq:6382", "REDIS_URL", "redis://url:6381"}, want: "redis://flag:6383/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(LoadOptions{File: tt.file, Env: withCreds(tt.env...), Flags: testFlags(t, tt.flags...)})
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.Redis.URL)
		})
	}
}

func TestLoad_HTTPAddrPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "http_addr: \":7000\"\n")
	tests := []struct {
		name  string
		flags []string
		env   []string
		file  string
		want  string
	}{
		{name: "DefaultWhenNothingSet", want: DefaultHTTPAddr},
		{name: "FileOverDefault", file: file, want: ":7000"},
		{name: "EnvOverFile", file: file, env: []string{"CIOQ_HTTP_ADDR", "127.0.0.1:7001"}, want: "127.0.0.1:7001"},
		{name: "FlagOverEnv", file: file, env: []string{"CIOQ_HTTP_ADDR", ":7001"}, flags: []string{"--addr", ":7002"}, want: ":7002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(LoadOptions{File: tt.file, Env: withCreds(tt.env...), Flags: testFlags(t, tt.flags...)})
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.HTTPAddr)
		})
	}
}

func TestLoad_ConfigFileLocation(t *testing.T) {
	t.Parallel()
	fromFlag := writeFile(t, "key_prefix: \"flag:\"\n")
	fromEnv := writeFile(t, "key_prefix: \"env:\"\n")
	fromOpts := writeFile(t, "key_prefix: \"opts:\"\n")

	t.Run("FlagOverEnv", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(LoadOptions{Env: withCreds(EnvConfigFile, fromEnv), Flags: testFlags(t, "--config", fromFlag)})
		require.NoError(t, err)
		require.Equal(t, "flag:", cfg.KeyPrefix)
	})
	t.Run("EnvWhenNoFlag", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(LoadOptions{Env: withCreds(EnvConfigFile, fromEnv), Flags: testFlags(t)})
		require.NoError(t, err)
		require.Equal(t, "env:", cfg.KeyPrefix)
	})
	t.Run("OptionOverFlag", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(LoadOptions{File: fromOpts, Env: withCreds(), Flags: testFlags(t, "--config", fromFlag)})
		require.NoError(t, err)
		require.Equal(t, "opts:", cfg.KeyPrefix)
	})
	t.Run("MissingFileIsAConfigError", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(LoadOptions{File: filepath.Join(t.TempDir(), "nope.yaml"), Env: withCreds()})
		require.ErrorIs(t, err, ErrInvalid)
		require.Nil(t, cfg)
		require.Contains(t, err.Error(), "nope.yaml")
	})
	t.Run("BadYAMLIsAConfigError", func(t *testing.T) {
		t.Parallel()
		_, err := Load(LoadOptions{File: writeFile(t, "worker: [unclosed\n"), Env: withCreds()})
		require.ErrorIs(t, err, ErrInvalid)
	})
}

func TestLoad_SeedEnvWorkspace(t *testing.T) {
	t.Parallel()
	cfg, err := Load(LoadOptions{Env: testEnv(
		"CUSTOMERIO_SITE_ID", "site-42",
		"CUSTOMERIO_TRACK_API_KEY", "key-s3cr3t",
		"CUSTOMERIO_REGION", "EU",
		"CUSTOMERIO_TRACK_URL", "http://127.0.0.1:9000/api/v1/",
		"CIOQ_RATE_LIMIT", "12.5",
		"CIOQ_RATE_BURST", "4",
		"CIOQ_CRITICAL_SHARE", "0.3",
		"CUSTOMERIO_CDP_API_KEY", "cdp-s3cr3t",
		"CUSTOMERIO_CDP_URL", "http://127.0.0.1:9000/v1/",
		"CIOQ_CDP_RATE_LIMIT", "30",
	)})
	require.NoError(t, err)
	require.True(t, cfg.EnvWorkspace)
	want := []Workspace{{
		Name:          "default",
		SiteID:        "site-42",
		APIKey:        "key-s3cr3t",
		Region:        "eu",
		TrackURL:      "http://127.0.0.1:9000",
		CDPAPIKey:     "cdp-s3cr3t",
		CDPURL:        "http://127.0.0.1:9000",
		CDPRateLimit:  30,
		RateLimit:     12.5,
		RateBurst:     4,
		CriticalShare: 0.3,
		Weight:        1,
		Batch:         &Batch{},
	}}
	if diff := cmp.Diff(want, cfg.Workspaces); diff != "" {
		t.Fatalf("workspaces (-want +got):\n%s", diff)
	}
}

func TestLoad_EnvWorkspaceDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Load(LoadOptions{Env: withCreds()})
	require.NoError(t, err)
	ws := cfg.Workspaces[0]
	require.Equal(t, "us", ws.Region)
	require.Equal(t, track.USBaseURL, ws.TrackURL)
	require.Equal(t, cdp.USBaseURL, ws.CDPURL)
	require.Empty(t, ws.CDPAPIKey, "no Pipelines calls unless a key is set")
	require.Zero(t, ws.CDPRateLimit, "Pipelines requests share the Track budget")
	require.Equal(t, ratelimit.DefaultRate, ws.RateLimit)
	require.Zero(t, ws.RateBurst)
	require.Equal(t, ratelimit.DefaultCriticalShare, ws.CriticalShare)

	cfg, err = Load(LoadOptions{Env: withCreds(EnvRegion, "eu")})
	require.NoError(t, err)
	require.Equal(t, track.EUBaseURL, cfg.Workspaces[0].TrackURL)
	require.Equal(t, cdp.EUBaseURL, cfg.Workspaces[0].CDPURL)
}

func TestLoad_FileWorkspaces(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
batch:
  max_ops: 200
workspaces:
  - name: us-shop
    site_id: s1
    api_key: k1-s3cr3t
    cdp_api_key: c1-s3cr3t
    cdp_url: http://127.0.0.1:8081/v1
  - name: eu-shop
    site_id: s2
    api_key_env: EU_SHOP_KEY
    cdp_api_key_env: EU_SHOP_CDP_KEY
    cdp_rate_limit: 25
    region: eu
    rate_limit: 40
    rate_burst: 10
    critical_share: 0.5
    weight: 3
    batch:
      max_wait: 200ms
`)
	// The CUSTOMERIO_* vars are ignored once the file lists workspaces.
	cfg, err := Load(LoadOptions{File: file, Env: testEnv("EU_SHOP_KEY", "k2-s3cr3t", "EU_SHOP_CDP_KEY", "c2-s3cr3t", EnvSiteID, "ignored")})
	require.NoError(t, err)
	require.False(t, cfg.EnvWorkspace)
	global := Batch{MaxOps: 200}
	want := []Workspace{
		{Name: "us-shop", SiteID: "s1", APIKey: "k1-s3cr3t", Region: "us", TrackURL: track.USBaseURL,
			CDPAPIKey: "c1-s3cr3t", CDPURL: "http://127.0.0.1:8081",
			RateLimit: ratelimit.DefaultRate, CriticalShare: ratelimit.DefaultCriticalShare, Weight: 1, Batch: &global},
		{Name: "eu-shop", SiteID: "s2", APIKey: "k2-s3cr3t", APIKeyEnv: "EU_SHOP_KEY", Region: "eu", TrackURL: track.EUBaseURL,
			CDPAPIKey: "c2-s3cr3t", CDPAPIKeyEnv: "EU_SHOP_CDP_KEY", CDPURL: cdp.EUBaseURL, CDPRateLimit: 25,
			RateLimit: 40, RateBurst: 10, CriticalShare: 0.5, Weight: 3,
			Batch: &Batch{MaxOps: 200, MaxWait: 200 * time.Millisecond}},
	}
	if diff := cmp.Diff(want, cfg.Workspaces); diff != "" {
		t.Fatalf("workspaces (-want +got):\n%s", diff)
	}
}

// fieldByPath finds the Config field at a YAML path such as "worker.concurrency".
func fieldByPath(t *testing.T, cfg *Config, path string) any {
	t.Helper()
	v := reflect.ValueOf(*cfg)
	for _, part := range strings.Split(path, ".") {
		found := false
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if name == part {
				v, found = v.Field(i), true
				break
			}
		}
		require.True(t, found, "no field for %s", path)
	}
	if s, ok := v.Interface().(Secret); ok {
		return s.Reveal()
	}
	return v.Interface()
}

// otherValue is a valid value of k's type that differs from its default.
func otherValue(k key) (env string, want any) {
	switch d := k.def.(type) {
	case int:
		return "7", 7
	case uint32:
		return "9", uint32(9)
	case time.Duration:
		if k.path == "idempotency.claim_ttl" { // must exceed worker.request_timeout
			return "2s", 2 * time.Second
		}
		return (d + time.Second).String(), d + time.Second
	}
	switch k.path {
	case "redis.url":
		return "redis://10.1.2.3:6390/3", "redis://10.1.2.3:6390/3"
	case "http_addr":
		return "127.0.0.1:9999", "127.0.0.1:9999"
	case "key_prefix":
		return "other:", "other:"
	case "log.level":
		return "debug", "debug"
	case "log.format":
		return "json", "json"
	case "spool.dir":
		return "/var/lib/cioq/spool", "/var/lib/cioq/spool"
	case "monitoring.username":
		return "ops", "ops"
	case "monitoring.password":
		return "pw-s3cr3t", "pw-s3cr3t"
	case "monitoring.admin_addr":
		return "127.0.0.1:9091", "127.0.0.1:9091"
	}
	panic("no test value for " + k.path)
}

func TestLoad_EveryDocumentedEnvVarIsHonoured(t *testing.T) {
	t.Parallel()
	for _, k := range keys() {
		for _, name := range k.envs {
			t.Run(name+"_"+k.path, func(t *testing.T) {
				t.Parallel()
				s, want := otherValue(k)
				if name == "REDIS_ADDR" {
					s, want = "10.1.2.3:6390", "redis://10.1.2.3:6390"
				}
				require.NotEqual(t, k.def, want)
				var kv []string
				if strings.HasPrefix(k.path, "monitoring.") {
					// Username and password come as a pair; the var under test is set last.
					kv = []string{"CIOQ_MONITORING_USERNAME", "someone", "CIOQ_MONITORING_PASSWORD", "other-pw"}
				}
				kv = append(kv, name, s)
				cfg, err := Load(LoadOptions{Env: withCreds(kv...)})
				require.NoError(t, err)
				got := fieldByPath(t, cfg, k.path)
				if r, ok := got.(Redis); ok {
					got = r.URL
				}
				require.Equal(t, want, got)
			})
		}
	}
}

func TestLoad_EveryFileKeyIsRead(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for _, k := range keys() {
		s, _ := otherValue(k)
		section, leaf, nested := strings.Cut(k.path, ".")
		if nested {
			b.WriteString(section + ":\n  " + leaf + ": \"" + s + "\"\n")
		} else {
			b.WriteString(k.path + ": \"" + s + "\"\n")
		}
	}
	// One YAML mapping per section: merge repeated section headers.
	cfg, err := Load(LoadOptions{File: writeFile(t, mergeSections(b.String())), Env: withCreds()})
	require.NoError(t, err)
	for _, k := range keys() {
		_, want := otherValue(k)
		got := fieldByPath(t, cfg, k.path)
		if r, ok := got.(Redis); ok {
			got = r.URL
		}
		require.Equal(t, want, got, k.path)
	}
}

// mergeSections turns repeated "section:\n  leaf: v" blocks into one block
// per section.
func mergeSections(s string) string {
	var order []string
	body := map[string][]string{}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasSuffix(l, ":") {
			if _, ok := body[l]; !ok {
				order = append(order, l)
			}
			body[l] = append(body[l], lines[i+1])
			i++
			continue
		}
		order = append(order, l)
	}
	var out strings.Builder
	for _, l := range order {
		out.WriteString(l + "\n")
		for _, c := range body[l] {
			out.WriteString(c + "\n")
		}
	}
	return out.String()
}

func TestLoad_ReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
batch:
  max_bytes: 600000
  max_wait: 50
worker:
  concurency: 10
`)
	cfg, err := Load(LoadOptions{File: file, Env: testEnv(
		EnvRegion, "ap",
		EnvRateLimit, "0",
		"CIOQ_WORKER_RETRY_CAP", "-1s",
		"CIOQ_DLQ_MAX_ENTRIES", "lots",
		"CIOQ_LOG_FORMAT", "xml",
	)})
	require.ErrorIs(t, err, ErrInvalid)
	require.NotNil(t, cfg, "the effective config comes back for printing")
	var ve *ValidationError
	require.True(t, errors.As(err, &ve))
	for _, want := range []string{
		"CUSTOMERIO_SITE_ID",
		"CUSTOMERIO_TRACK_API_KEY",
		`region "ap"`,
		`CIOQ_RATE_LIMIT="0": must be > 0`,
		`CIOQ_WORKER_RETRY_CAP="-1s": must be > 0`,
		`CIOQ_DLQ_MAX_ENTRIES="lots": want a whole number`,
		`log.format "xml"`,
		"batch.max_bytes 600000: must be below 500000",
		"batch.max_wait: 50 in " + file + ": give a unit",
		"concurency",
	} {
		require.True(t, containsOne(ve.Problems, want), "no problem mentions %q in:\n%s", want, err)
	}
}

func containsOne(problems []string, s string) bool {
	for _, p := range problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

func TestLoad_AllowMissingCredentials(t *testing.T) {
	t.Parallel()
	_, err := Load(LoadOptions{Env: testEnv()})
	require.ErrorIs(t, err, ErrInvalid)
	cfg, err := Load(LoadOptions{Env: testEnv(), AllowMissingCredentials: true})
	require.NoError(t, err)
	require.Equal(t, "default", cfg.Workspaces[0].Name)
}

func TestLoad_FileWorkspaceProblems(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
workspaces:
  - name: a
    site_id: s
    api_key: k
    api_key_env: A_KEY
    rate_limit: 0
  - name: a
    api_key_env: MISSING_KEY
  - name: "bad name"
    site_id: s
    api_key: k
    track_url: ftp://example.com
    sitee_id: typo
`)
	_, err := Load(LoadOptions{File: file, Env: testEnv()})
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	for _, want := range []string{
		`workspaces[0] "a": set api_key or api_key_env, not both`,
		`workspaces[0] "a": rate_limit 0: must be > 0`,
		`workspaces[1] "a": name used twice`,
		`workspaces[1] "a": site id is missing: set workspaces[].site_id`,
		`workspaces[1] "a": API key is missing: env var MISSING_KEY`,
		`workspaces[2] "bad name": name must be`,
		`workspaces[2] "bad name": track_url ftp://example.com`,
		"sitee_id",
	} {
		require.True(t, containsOne(ve.Problems, want), "no problem mentions %q in:\n%s", want, err)
	}
}

func TestDocs_ListEveryEnvVarAndKey(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	for _, k := range keys() {
		require.Contains(t, string(doc), "`"+k.path+"`", "docs/configuration.md misses key %s", k.path)
		for _, e := range k.envs {
			require.Contains(t, string(doc), "`"+e+"`", "docs/configuration.md misses env var %s", e)
		}
		if k.flag != "" {
			require.Contains(t, string(doc), "`--"+k.flag+"`", "docs/configuration.md misses flag --%s", k.flag)
		}
	}
	for _, e := range []string{EnvSiteID, EnvAPIKey, EnvRegion, EnvTrackURL, EnvRateLimit, EnvRateBurst, EnvCriticalShare, EnvConfigFile,
		EnvCDPAPIKey, EnvCDPURL, EnvCDPRateLimit} {
		require.Contains(t, string(doc), "`"+e+"`", "docs/configuration.md misses env var %s", e)
	}
}

func TestDocs_ExampleFileIsValid(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	require.True(t, ok)
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	cfg, err := Load(LoadOptions{File: writeFile(t, example), Env: testEnv("CIO_US_MAIN_KEY", "k1", "CIO_EU_SHOP_KEY", "k2", "CIO_EU_SHOP_CDP_KEY", "c2")})
	require.NoError(t, err)
	require.Len(t, cfg.Workspaces, 2)
	require.Equal(t, 100*time.Millisecond, cfg.Workspaces[1].Batch.MaxWait)
	require.Equal(t, "json", cfg.Log.Format)
}

func TestLoad_DecodeErrorsNeverQuoteAKey(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "workspaces:\n  - name: a\n    site_id: s\n    api_key: [key-s3cr3t]\n")
	_, err := Load(LoadOptions{File: file, Env: testEnv()})
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "api_key")
	require.NotContains(t, err.Error(), "s3cr3t")
}

// LoadOptions.Defaults fills the settings other packages own before the
// workspaces take the global batch and before validation, which sees them.
func TestLoad_DefaultsFillBeforeValidation(t *testing.T) {
	t.Parallel()
	defaults := func(c *Config) {
		if c.Batch.MaxOps == 0 {
			c.Batch.MaxOps = 300
		}
		if c.Worker.RetryCap == 0 {
			c.Worker.RetryCap = 10 * time.Minute
		}
	}
	cfg, err := Load(LoadOptions{Env: withCreds(), Defaults: defaults})
	require.NoError(t, err)
	require.Equal(t, 300, cfg.Batch.MaxOps)
	require.Equal(t, 300, cfg.Workspaces[0].Batch.MaxOps)

	_, err = Load(LoadOptions{Env: withCreds("CIOQ_WORKER_RETRY_BASE", "20m"), Defaults: defaults})
	require.ErrorContains(t, err, "worker.retry_base 20m0s is above worker.retry_cap 10m0s")
}

// testDefaults stands in for cmd/cioq's componentDefaults (which asks the
// worker and producer): every setting of the worker, batch and dlq sections
// and spool.max_bytes left zero gets 1 (1s for a duration).
func testDefaults(c *Config) {
	for _, v := range []reflect.Value{reflect.ValueOf(&c.Worker).Elem(), reflect.ValueOf(&c.Batch).Elem(), reflect.ValueOf(&c.DLQ).Elem()} {
		for i := range v.NumField() {
			switch f := v.Field(i); {
			case !f.IsZero():
			case f.Type() == reflect.TypeFor[time.Duration]():
				f.SetInt(int64(time.Second))
			default:
				f.SetInt(1)
			}
		}
	}
	if c.Spool.MaxBytes == 0 {
		c.Spool.MaxBytes = 1
	}
}
