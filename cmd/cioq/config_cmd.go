package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/config"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
	}
	cmd.AddCommand(newConfigCheckCmd(g))
	return cmd
}

func newConfigCheckCmd(g *globals) *cobra.Command {
	var noCredentials bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Print the effective configuration (secrets redacted) and every problem in it",
		Long: `check loads the configuration as every command does (defaults, then the YAML
file, then environment variables, then flags), prints the result as YAML with API
keys and the Redis password redacted, and lists every problem at once on stderr.
Missing workspace credentials are problems (the worker needs them) unless
--no-credentials is given. Exit status 2 when the configuration is invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.loadOptions(noCredentials))
			if err != nil && !errors.Is(err, config.ErrInvalid) {
				return err
			}
			if cfg != nil {
				out, yerr := cfg.YAML()
				if yerr != nil {
					return yerr
				}
				if _, werr := cmd.OutOrStdout().Write(out); werr != nil {
					return werr
				}
			}
			if err != nil {
				return usageError(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "configuration OK: %d workspace(s)\n", len(cfg.Workspaces))
			return nil
		},
	}
	cmd.Flags().BoolVar(&noCredentials, "no-credentials", false, "do not require workspace site ids and API keys")
	return cmd
}
