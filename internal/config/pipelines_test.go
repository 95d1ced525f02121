package config

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/cdp"
)

func TestLoad_PipelinesSettings(t *testing.T) {
	t.Parallel()
	t.Run("BadValuesAreReportedWithoutTheKey", func(t *testing.T) {
		t.Parallel()
		file := writeFile(t, `
workspaces:
  - name: a
    site_id: s1
    api_key: k1
    cdp_api_key: same-cdp-s3cr3t
    cdp_url: ftp://user:pw@example.com
    cdp_rate_limit: -1
  - name: b
    site_id: s2
    api_key: k2
    cdp_api_key: same-cdp-s3cr3t
  - name: c
    site_id: s3
    api_key: k3
    cdp_api_key: x
    cdp_api_key_env: C_CDP_KEY
  - name: d
    site_id: s4
    api_key: k4
    cdp_api_key_env: D_CDP_KEY
`)
		_, err := Load(LoadOptions{File: file, Env: testEnv()})
		require.ErrorIs(t, err, ErrInvalid)
		msg := err.Error()
		require.Contains(t, msg, `workspaces[0] "a": cdp_url ftp://xxxxx:xxxxx@example.com: want an http(s) base URL`)
		require.Contains(t, msg, `cdp_rate_limit -1: must be >= 0`)
		require.Contains(t, msg, `workspaces[1] "b": cdp_api_key is also the key of workspace "a"`)
		require.Contains(t, msg, `workspaces[2] "c": set cdp_api_key or cdp_api_key_env, not both`)
		require.Contains(t, msg, `workspaces[3] "d": Pipelines API key is missing: env var D_CDP_KEY`)
		require.NotContains(t, msg, "s3cr3t")
		require.NotContains(t, msg, ":pw@")
	})
	t.Run("EnvRateMustNotBeNegative", func(t *testing.T) {
		t.Parallel()
		_, err := Load(LoadOptions{Env: withCreds(EnvCDPRateLimit, "-3")})
		require.ErrorIs(t, err, ErrInvalid)
		require.Contains(t, err.Error(), "CIOQ_CDP_RATE_LIMIT")
	})
	t.Run("ConfigCheckRedactsTheKey", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(LoadOptions{Env: withCreds(EnvCDPAPIKey, "cdp-s3cr3t", EnvCDPURL, "http://127.0.0.1:1/v1")})
		require.NoError(t, err)
		out, err := cfg.YAML()
		require.NoError(t, err)
		require.NotContains(t, string(out), "cdp-s3cr3t")
		require.Contains(t, string(out), "cdp_api_key: REDACTED")
		require.Contains(t, string(out), "cdp_url: http://127.0.0.1:1\n")
		// A URL with credentials is refused, and printed without them.
		_, err = Load(LoadOptions{Env: withCreds(EnvCDPURL, "http://u:pw@127.0.0.1:1")})
		require.ErrorIs(t, err, ErrInvalid)
		require.NotContains(t, err.Error(), "pw")
	})
	t.Run("WithoutAKeyNothingIsPrintedForIt", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(LoadOptions{Env: withCreds()})
		require.NoError(t, err)
		out, err := cfg.YAML()
		require.NoError(t, err)
		require.NotContains(t, string(out), "cdp_api_key")
		require.Contains(t, string(out), "cdp_url: "+cdp.USBaseURL)
	})
}

func TestNormalizeCDPURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://cdp.customer.io":      "https://cdp.customer.io",
		"https://cdp.customer.io/":     "https://cdp.customer.io",
		"https://cdp.customer.io/v1":   "https://cdp.customer.io",
		" https://cdp.customer.io/v1/": "https://cdp.customer.io",
		"http://proxy:8080/cio/v1":     "http://proxy:8080/cio",
		"":                             "",
	} {
		require.Equal(t, want, NormalizeCDPURL(in), in)
	}
}
