// Package config loads cioq's configuration from a YAML file, environment
// variables and command-line flags into plain Go structs. It is the only
// package that imports viper; every other package takes the structs (or its
// own Config built from them).
//
// Precedence, highest first: flag > environment > file > default. The Redis
// URL has its own chain: --redis > CIOQ_REDIS_URL > REDIS_URL > REDIS_ADDR
// (host:port) > redis.url in the file > redis://127.0.0.1:6379.
//
//	cfg, err := config.Load(config.LoadOptions{File: "cioq.yaml", Flags: cmd.Flags()})
//	if err != nil {
//		// errors.Is(err, config.ErrInvalid): every problem at once in
//		// *config.ValidationError; cfg still holds the effective values.
//	}
//	opt, _ := cfg.Redis.ConnOpt() // for asynq
//	logger := cfg.Log.Logger(os.Stderr)
//
// When the file lists no workspaces, one workspace named "default" is built
// from the environment variables the seed services already use:
// CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY, CUSTOMERIO_REGION,
// CUSTOMERIO_TRACK_URL, CIOQ_RATE_LIMIT and CIOQ_RATE_BURST.
//
// API keys are held as Secret, which prints as "REDACTED" through fmt, slog,
// JSON and YAML; only Secret.Reveal returns the value. docs/configuration.md
// is the full reference.
package config
