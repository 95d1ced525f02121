package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
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
}

// fileConfig is what the YAML file (and the other layers) decode into.
type fileConfig struct {
	Redis       Redis           `mapstructure:"redis"`
	KeyPrefix   string          `mapstructure:"key_prefix"`
	HTTPAddr    string          `mapstructure:"http_addr"`
	Workspaces  []fileWorkspace `mapstructure:"workspaces"`
	Worker      Worker          `mapstructure:"worker"`
	Batch       Batch           `mapstructure:"batch"`
	Idempotency Idempotency     `mapstructure:"idempotency"`
	Breaker     Breaker         `mapstructure:"breaker"`
	DLQ         DLQ             `mapstructure:"dlq"`
	Log         Log             `mapstructure:"log"`
	Spool       Spool           `mapstructure:"spool"`
	Monitoring  Monitoring      `mapstructure:"monitoring"`
}

// fileWorkspace keeps numbers as pointers so an explicit 0 in the file is
// told apart from an absent key.
type fileWorkspace struct {
	Name          string   `mapstructure:"name"`
	SiteID        string   `mapstructure:"site_id"`
	APIKey        string   `mapstructure:"api_key"`
	APIKeyEnv     string   `mapstructure:"api_key_env"`
	Region        string   `mapstructure:"region"`
	TrackURL      string   `mapstructure:"track_url"`
	CDPAPIKey     string   `mapstructure:"cdp_api_key"`
	CDPAPIKeyEnv  string   `mapstructure:"cdp_api_key_env"`
	CDPURL        string   `mapstructure:"cdp_url"`
	CDPRateLimit  *float64 `mapstructure:"cdp_rate_limit"`
	RateLimit     *float64 `mapstructure:"rate_limit"`
	RateBurst     *int     `mapstructure:"rate_burst"`
	CriticalShare *float64 `mapstructure:"critical_share"`
	Weight        *int     `mapstructure:"weight"`
	Batch         *Batch   `mapstructure:"batch"`
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

	var fc fileConfig
	if err := v.UnmarshalExact(&fc); err != nil {
		p.addf("config file %s: %v", file, unwrapAll(err))
	}

	cfg := &Config{
		Redis:       fc.Redis,
		KeyPrefix:   fc.KeyPrefix,
		HTTPAddr:    fc.HTTPAddr,
		Worker:      fc.Worker,
		Batch:       fc.Batch,
		Idempotency: fc.Idempotency,
		Breaker:     fc.Breaker,
		DLQ:         fc.DLQ,
		Log:         fc.Log,
		Spool:       fc.Spool,
		Monitoring:  fc.Monitoring,
	}
	for i, fw := range fc.Workspaces {
		cfg.Workspaces = append(cfg.Workspaces, fw.workspace(&p, i, lookup))
	}
	if len(cfg.Workspaces) == 0 {
		cfg.EnvWorkspace = true
		cfg.Workspaces = []Workspace{envWorkspace(&p, lookup)}
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
		p.addf("%s=%q: must be > 0 (unset it for the default %v)", from, s, k.def)
		return
	}
	v.Set(k.path, val)
}

func (fw fileWorkspace) workspace(p *problems, i int, lookup func(string) (string, bool)) Workspace {
	ws := Workspace{
		Name:      fw.Name,
		SiteID:    fw.SiteID,
		APIKey:    Secret(fw.APIKey),
		APIKeyEnv: fw.APIKeyEnv,
		Region:    fw.Region,
		TrackURL:  fw.TrackURL,
		Batch:     fw.Batch,

		CDPAPIKey:    Secret(fw.CDPAPIKey),
		CDPAPIKeyEnv: fw.CDPAPIKeyEnv,
		CDPURL:       fw.CDPURL,
	}
	where := fmt.Sprintf("workspaces[%d] %q", i, fw.Name)
	if fw.APIKeyEnv != "" {
		if ws.APIKey != "" {
			p.addf("%s: set api_key or api_key_env, not both", where)
		} else if s, ok := lookup(fw.APIKeyEnv); ok {
			ws.APIKey = Secret(strings.TrimSpace(s))
		}
	}
	if fw.CDPAPIKeyEnv != "" {
		if ws.CDPAPIKey != "" {
			p.addf("%s: set cdp_api_key or cdp_api_key_env, not both", where)
		} else if s, ok := lookup(fw.CDPAPIKeyEnv); ok {
			ws.CDPAPIKey = Secret(strings.TrimSpace(s))
		}
	}
	if fw.CDPRateLimit != nil {
		ws.CDPRateLimit = *fw.CDPRateLimit // checked with the workspace (validate.go)
	}
	if fw.RateLimit != nil {
		if *fw.RateLimit <= 0 {
			p.addf("%s: rate_limit %g: must be > 0 requests/s", where, *fw.RateLimit)
		}
		ws.RateLimit = *fw.RateLimit
	}
	if fw.RateBurst != nil {
		ws.RateBurst = *fw.RateBurst
	}
	if fw.CriticalShare != nil {
		if *fw.CriticalShare <= 0 {
			p.addf("%s: critical_share %g: must be between 0 and 1 exclusive", where, *fw.CriticalShare)
		}
		ws.CriticalShare = *fw.CriticalShare
	}
	if fw.Weight != nil {
		if *fw.Weight <= 0 {
			p.addf("%s: weight %d: must be positive", where, *fw.Weight)
		}
		ws.Weight = *fw.Weight
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
	if s, ok := lookup(EnvCDPRateLimit); ok {
		if f, err := parseAs(0.0, s); err != nil {
			p.addf("%s=%q: %v", EnvCDPRateLimit, s, err)
		} else if f.(float64) < 0 {
			p.addf("%s=%q: must be >= 0 requests/s (0 or unset: share %s)", EnvCDPRateLimit, s, EnvRateLimit)
		} else {
			ws.CDPRateLimit = f.(float64)
		}
	}
	if s, ok := lookup(EnvRateLimit); ok {
		if f, err := parseAs(0.0, s); err != nil {
			p.addf("%s=%q: %v", EnvRateLimit, s, err)
		} else if f.(float64) <= 0 {
			p.addf("%s=%q: must be > 0 requests/s (unset it for the default %g)", EnvRateLimit, s, DefaultRateLimit)
		} else {
			ws.RateLimit = f.(float64)
		}
	}
	if s, ok := lookup(EnvRateBurst); ok {
		if n, err := parseAs(0, s); err != nil {
			p.addf("%s=%q: %v", EnvRateBurst, s, err)
		} else {
			ws.RateBurst = n.(int)
		}
	}
	if s, ok := lookup(EnvCriticalShare); ok {
		if f, err := parseAs(0.0, s); err != nil {
			p.addf("%s=%q: %v", EnvCriticalShare, s, err)
		} else if f.(float64) <= 0 {
			p.addf("%s=%q: must be between 0 and 1 exclusive (unset it for the default %g)", EnvCriticalShare, s, DefaultCriticalShare)
		} else {
			ws.CriticalShare = f.(float64)
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
