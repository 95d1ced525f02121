package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cioq/cioq/internal/config"
)

// Exit codes of every cioq command.
const (
	exitOK      = 0 // success
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // bad usage or configuration: nothing was done
)

// streams are the standard streams a command reads and writes.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// globals holds the persistent flags every command shares and how to load
// the configuration from them.
type globals struct {
	configFile string
	redisURL   string
	addr       string
	logLevel   string
	logFormat  string

	// env looks up environment variables; nil means os.LookupEnv. Tests
	// inject one.
	env func(string) (string, bool)
	// flags are the root's persistent flags, to tell set flags from defaults.
	flags *pflag.FlagSet
}

// load reads the configuration (file, env, flags) and validates everything
// but workspace credentials: commands that call Customer.io (worker) also
// call cfg.Validate. Its errors are usage errors (exit 2) and list every
// problem at once.
func (g *globals) load() (*config.Config, error) {
	cfg, err := config.Load(g.loadOptions(true))
	if err != nil {
		return nil, usageError(err)
	}
	return cfg, nil
}

// loadOptions are the config.LoadOptions for the current flags and env.
func (g *globals) loadOptions(allowMissingCredentials bool) config.LoadOptions {
	return config.LoadOptions{Env: g.env, Flags: g.flags, AllowMissingCredentials: allowMissingCredentials, Defaults: componentDefaults}
}

// newRootCmd builds the whole command tree.
func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "cioq",
		Short: "Queue-backed delivery to the Customer.io Track API",
		Long: `cioq delivers identify, track and suppress operations to the Customer.io Track
API through a Redis-backed queue (asynq): a shared rate limit, a circuit breaker,
done-markers so nothing is sent twice, and a dead-letter store so nothing is lost.

Configuration: a YAML file (--config or CIOQ_CONFIG), environment variables and
flags; flags win over env, env over the file. See docs/configuration.md, and
'cioq config check' for the effective configuration.

Exit status: 0 success, 1 failure, 2 usage or configuration error.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true

	pf := root.PersistentFlags()
	pf.StringVarP(&g.configFile, "config", "c", "", "YAML config file (env CIOQ_CONFIG)")
	pf.StringVar(&g.redisURL, "redis", "", "Redis URL (env CIOQ_REDIS_URL, REDIS_URL, REDIS_ADDR; default "+config.DefaultRedisURL+")")
	pf.StringVar(&g.addr, "addr", "", "listen address of server commands (env CIOQ_HTTP_ADDR; default "+config.DefaultHTTPAddr+")")
	pf.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (env CIOQ_LOG_LEVEL; default info)")
	pf.StringVar(&g.logFormat, "log-format", "", "text or json (env CIOQ_LOG_FORMAT; default text)")
	g.flags = pf

	// One line per command; each is built by its own file's newXxxCmd(g).
	cmds := []*cobra.Command{
		newVersionCmd(g),
		newConfigCmd(g),
		newFakecioCmd(g),
		newWorkerCmd(g),
		newIngestCmd(g),
		newDemoCmd(g),
		newImportCmd(g),
		newDLQCmd(g),
		newSimCmd(g),
		newLoadCmd(g),
		newDashboardCmd(g),
		newOpsCmd(g),
	}
	root.AddCommand(cmds...)
	markUsageErrors(root)
	return root
}

// markUsageErrors makes flag and argument errors anywhere in the tree usage
// errors (exit 2), and makes a command group answer an unknown subcommand
// with an error instead of its help.
func markUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = cobra.NoArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError(err)
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// execute runs cioq with args and returns the exit code. env nil means
// os.LookupEnv.
func execute(ctx context.Context, args []string, s streams, env func(string) (string, bool)) int {
	g := &globals{env: env}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(s.err, "cioq: %v\n", err)
	var ee exitError
	if !errors.As(err, &ee) {
		return exitFailure
	}
	if ee.code == exitUsage && ee.hint && cmd != nil {
		fmt.Fprintf(s.err, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return ee.code
}

// exitError carries an exit code: return exitError{code: 2, err: err} (or
// usageError(err)) from a RunE. A plain error exits 1.
type exitError struct {
	code int
	err  error
	hint bool // print the --help hint
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// usageError marks err as a usage or configuration error: exit 2. A
// configuration error (config.ErrInvalid) gets no --help hint: its message
// already says what to set.
func usageError(err error) error {
	if err == nil {
		return nil
	}
	var ee exitError
	if errors.As(err, &ee) && ee.code == exitUsage {
		return err
	}
	return exitError{code: exitUsage, err: err, hint: !errors.Is(err, config.ErrInvalid)}
}
