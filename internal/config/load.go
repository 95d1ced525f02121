package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/cioq/cioq/ratelimit"
)

// LoadOptions says where Load reads from.
type LoadOptions struct {
	// File is the YAML config file. Empty means the --config flag in Flags,
	// else the CIOQ_CONFIG env var, else no file.
	File string
	// Env looks up an environment variable. Nil means os.LookupEnv. A
	// variable set to the empty string counts as unset.
	Env func(string) (string, bool)
	// Flags holds the command-line flags; only flags the user set count:
	// --config, --redis, --addr, --log-level and --log-format. Nil means none.
	Flags *pflag.FlagSet
	// AllowMissingCredentials skips the workspace site id / API key checks,
	// for commands that never call Customer.io (fakecio, dlq, load).
	AllowMissingCredentials bool
	// Defaults fills the zero settings owned by packages internal/config
	// does not import (worker, producer: Worker, Batch, DLQ, Spool.MaxBytes)
	// from their own defaults, before validation; cmd/cioq passes one that
	// asks them. Nil leaves those settings zero (zero means their default).
	Defaults func(*Config)
}

// Load reads the configuration: defaults, then the YAML file, then env vars,
// then flags, each overriding the one before. It applies defaults and
// validates. On a *ValidationError (errors.Is(err, ErrInvalid)) it still
// returns the effective Config, for `cioq config check` to print; callers
// must not run with it. Any other error returns a nil Config.
func Load(opts LoadOptions) (*Config, error) {
	env := opts.Env
	if env == nil {
		env = os.LookupEnv
	}
	lookup := func(name string) (string, bool) {
		v, ok := env(name)
		return v, ok && strings.TrimSpace(v) != ""
	}
	var p problems

	v := viper.New()
	for _, k := range keys() {
		v.SetDefault(k.path, k.def)
	}

	file := opts.File
	if file == "" {
		if f := changedFlag(opts.Flags, "config"); f != nil {
			file = f.Value.String()
		} else if s, ok := lookup(EnvConfigFile); ok {
			file = s
		}
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, &ValidationError{Problems: []string{fmt.Sprintf("config file: %v", err)}}
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, &ValidationError{Problems: []string{fmt.Sprintf("config file %s: %v", file, unwrapAll(err))}}
		}
	}

	for _, k := range keys() {
		if file != "" && v.InConfig(k.path) {
			raw := v.Get(k.path)
			if _, isDur := k.def.(time.Duration); isDur {
				if _, isStr := raw.(string); !isStr {
					p.addf("%s: %v in %s: give a unit, like 500ms, 30s or 24h", k.path, raw, file)
					v.Set(k.path, k.def)
					continue
				}
			}
			setParsed(v, &p, k, fmt.Sprint(raw), fmt.Sprintf("%s in %s", k.path, file))
		}
		for _, name := range k.envs {
			s, ok := lookup(name)
			if !ok {
				continue
			}
			if name == "REDIS_ADDR" {
				s = redisAddrURL(s)
			}
			setParsed(v, &p, k, s, name)
			break
		}
		if f := changedFlag(opts.Flags, k.flag); f != nil {
			setParsed(v, &p, k, f.Value.String(), "--"+k.flag)
		}
	}

	cfg := &Config{}
	if err := v.UnmarshalExact(cfg, func(dc *mapstructure.DecoderConfig) { dc.IgnoreUntaggedFields = true }); err != nil {
		p.addf("config file %s: %v", file, unwrapAll(err))
	}
	raw, _ := v.Get("workspaces").([]any)
	for i := range cfg.Workspaces {
		var fields map[string]any
		if i < len(raw) {
			fields, _ = raw[i].(map[string]any)
		}
		cfg.Workspaces[i] = fileWorkspace(&p, i, cfg.Workspaces[i], fields, lookup)
	}
	if len(cfg.Workspaces) == 0 {
		cfg.EnvWorkspace = true
		cfg.Workspaces = []Workspace{envWorkspace(&p, lookup)}
	}
	if opts.Defaults != nil {
		opts.Defaults(cfg)
	}

	out := cfg.WithDefaults()
	out.check(&p, !opts.AllowMissingCredentials)
	return out, p.err()
}

// setParsed parses s as k's type and sets it, or records a problem naming
// where the value came from. An explicit zero where zero is not a valid
// value is a problem, not a silent default.
func setParsed(v *viper.Viper, p *problems, k key, s, from string) {
	val, err := parseAs(k.def, s)
	if err != nil {
		p.addf("%s=%q: %v", from, s, err)
		return
	}
	if isNonPositive(val) {
		p.addf("%s=%q: must be > 0 (unset it for the default)", from, s)
		return
	}
	v.Set(k.path, val)
}

// fileWorkspace completes workspace i of the file: API keys named by
// *_env keys, and a problem for each number given explicitly where zero or
// less makes no sense (fields holds the keys the file gave).
func fileWorkspace(p *problems, i int, ws Workspace, fields map[string]any, lookup func(string) (string, bool)) Workspace {
	where := fmt.Sprintf("workspaces[%d] %q", i, ws.Name)
	if ws.APIKeyEnv != "" {
		if ws.APIKey != "" {
			p.addf("%s: set api_key or api_key_env, not both", where)
		} else if s, ok := lookup(ws.APIKeyEnv); ok {
			ws.APIKey = Secret(strings.TrimSpace(s))
		}
	}
	if ws.CDPAPIKeyEnv != "" {
		if ws.CDPAPIKey != "" {
			p.addf("%s: set cdp_api_key or cdp_api_key_env, not both", where)
		} else if s, ok := lookup(ws.CDPAPIKeyEnv); ok {
			ws.CDPAPIKey = Secret(strings.TrimSpace(s))
		}
	}
	// Negative values are reported with the workspace (validate.go).
	given := func(k string) bool { _, ok := fields[k]; return ok }
	if given("rate_limit") && ws.RateLimit == 0 {
		p.addf("%s: rate_limit %g: must be > 0 requests/s", where, ws.RateLimit)
	}
	if given("critical_share") && ws.CriticalShare == 0 {
		p.addf("%s: critical_share %g: must be between 0 and 1 exclusive", where, ws.CriticalShare)
	}
	if given("weight") && ws.Weight <= 0 {
		p.addf("%s: weight %d: must be positive", where, ws.Weight)
	}
	return ws
}

// envWorkspace builds the one workspace of a config file without workspaces.
func envWorkspace(p *problems, lookup func(string) (string, bool)) Workspace {
	get := func(name string) string {
		s, _ := lookup(name)
		return strings.TrimSpace(s)
	}
	ws := Workspace{
		Name:      DefaultWorkspaceName,
		SiteID:    get(EnvSiteID),
		APIKey:    Secret(get(EnvAPIKey)),
		Region:    get(EnvRegion),
		TrackURL:  get(EnvTrackURL),
		CDPAPIKey: Secret(get(EnvCDPAPIKey)),
		CDPURL:    get(EnvCDPURL),
	}
	rate := func(name string, dst *float64, valid func(float64) bool, want string) {
		s, ok := lookup(name)
		if !ok {
			return
		}
		f, err := parseAs(0.0, s)
		switch {
		case err != nil:
			p.addf("%s=%q: %v", name, s, err)
		case !valid(f.(float64)):
			p.addf("%s=%q: %s", name, s, want)
		default:
			*dst = f.(float64)
		}
	}
	positive := func(f float64) bool { return f > 0 }
	rate(EnvCDPRateLimit, &ws.CDPRateLimit, func(f float64) bool { return f >= 0 },
		"must be >= 0 requests/s (0 or unset: share "+EnvRateLimit+")")
	rate(EnvRateLimit, &ws.RateLimit, positive,
		fmt.Sprintf("must be > 0 requests/s (unset it for the default %g)", ratelimit.DefaultRate))
	rate(EnvCriticalShare, &ws.CriticalShare, positive,
		fmt.Sprintf("must be between 0 and 1 exclusive (unset it for the default %g)", ratelimit.DefaultCriticalShare))
	if s, ok := lookup(EnvRateBurst); ok {
		if n, err := parseAs(0, s); err != nil {
			p.addf("%s=%q: %v", EnvRateBurst, s, err)
		} else {
			ws.RateBurst = n.(int)
		}
	}
	return ws
}

func changedFlag(fs *pflag.FlagSet, name string) *pflag.Flag {
	if fs == nil || name == "" {
		return nil
	}
	f := fs.Lookup(name)
	if f == nil || !f.Changed {
		return nil
	}
	return f
}

// unwrapAll flattens a joined error into one line per cause, without the
// decoder's boilerplate header and without the offending value, which could
// be a secret (an api_key given as a list, say).
func unwrapAll(err error) string {
	var parts []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			parts = append(parts, unwrapAll(e))
		}
		return strings.Join(parts, "; ")
	}
	if u := errors.Unwrap(err); u != nil && strings.HasPrefix(err.Error(), "decoding failed") {
		return unwrapAll(u)
	}
	msg, _, _ := strings.Cut(err.Error(), ", value: ")
	return msg
}
