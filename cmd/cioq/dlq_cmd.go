package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/worker"
)

// dlqFlags are the filters every dlq subcommand shares.
type dlqFlags struct {
	workspace string
	api       string
	action    string
	status    int
	olderThan time.Duration
	newerThan time.Duration
	limit     int
	all       bool
	asJSON    bool
}

func (f *dlqFlags) bind(cmd *cobra.Command, selection bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.workspace, "workspace", "", "workspace (default: every configured workspace)")
	fl.StringVar(&f.api, "api", "", "only ops for this API: track or pipelines")
	fl.StringVar(&f.action, "action", "", "only ops with this action (identify, event, suppress, ...; a Pipelines call's is the Track action it means)")
	fl.IntVar(&f.status, "status", 0, "only ops rejected with this HTTP status")
	fl.DurationVar(&f.olderThan, "older-than", 0, "only ops dead-lettered longer ago than this")
	fl.DurationVar(&f.newerThan, "newer-than", 0, "only ops dead-lettered within this")
	fl.IntVar(&f.limit, "limit", 100, "at most this many ops")
	if selection {
		fl.BoolVar(&f.all, "all", false, "every op matching the filters (instead of op ids)")
	}
}

func (f *dlqFlags) filter() worker.DeadLetterFilter {
	return worker.DeadLetterFilter{API: f.api, Action: f.action, Status: f.status, OlderThan: f.olderThan, NewerThan: f.newerThan, Limit: f.limit}
}

func (f *dlqFlags) workspaces(cfg *config.Config) []string {
	if f.workspace != "" {
		return []string{f.workspace}
	}
	names := make([]string, len(cfg.Workspaces))
	for i, w := range cfg.Workspaces {
		names[i] = w.Name
	}
	return names
}

// dlqEnv opens the dead-letter store of the configured Redis.
func dlqEnv(g *globals) (*config.Config, *worker.DeadLetters, func(), error) {
	cfg, err := g.load()
	if err != nil {
		return nil, nil, nil, err
	}
	rdb, err := cfg.Redis.UniversalClient()
	if err != nil {
		return nil, nil, nil, usageError(err)
	}
	return cfg, worker.NewDeadLetters(rdb, worker.DeadLetterConfig{Prefix: cfg.KeyPrefix, Max: cfg.DLQ.MaxEntries,
		TombstoneTTL: cfg.Idempotency.TombstoneTTL}), func() { _ = rdb.Close() }, nil
}

// selectDead returns the dead letters named by ids, or every match with --all.
func selectDead(ctx context.Context, cfg *config.Config, d *worker.DeadLetters, f *dlqFlags, ids []string) ([]worker.DeadLetter, error) {
	if f.all == (len(ids) > 0) {
		return nil, usageError(errors.New("name op ids or pass --all (not both)"))
	}
	var out []worker.DeadLetter
	for _, ws := range f.workspaces(cfg) {
		if f.all {
			dls, err := d.List(ctx, ws, f.filter())
			if err != nil {
				return nil, err
			}
			out = append(out, dls...)
			continue
		}
		for _, id := range ids {
			dl, err := d.Get(ctx, ws, id)
			if errors.Is(err, worker.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, *dl)
		}
	}
	if !f.all && len(out) < len(ids) {
		return out, fmt.Errorf("%d of %d op id(s) not found in the dead-letter store", len(ids)-len(out), len(ids))
	}
	return out, nil
}

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and purge dead-lettered operations",
		Long: `Operations Customer.io rejected permanently (a 4xx for that op) are kept in cioq's
dead-letter store, per workspace, with the status, reason and body. Replay sends
an op again unchanged: same op id, same event id, same timestamp (an event more
than 72 hours old still counts for segments but triggers no campaign).`,
	}
	cmd.AddCommand(newDLQListCmd(g), newDLQShowCmd(g), newDLQReplayCmd(g), newDLQPurgeCmd(g), newDLQExportCmd(g))
	return cmd
}

func newDLQListCmd(g *globals) *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use: "list", Short: "List dead-lettered operations, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, d, done, err := dlqEnv(g)
			if err != nil {
				return err
			}
			defer done()
			var all []worker.DeadLetter
			for _, ws := range f.workspaces(cfg) {
				dls, err := d.List(cmd.Context(), ws, f.filter())
				if err != nil {
					return err
				}
				all = append(all, dls...)
			}
			out := cmd.OutOrStdout()
			if f.asJSON {
				return writeJSONOut(out, all)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKSPACE\tAPI\tOP ID\tACTION\tPERSON\tSTATUS\tDEAD AT\tREASON")
			for _, dl := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", dl.Workspace, cmp.Or(dl.API, "track"), dl.OpID, dl.Action, dl.Person,
					dl.Status, dl.DeadAt.UTC().Format(time.RFC3339), truncate(dl.Reason, 80))
			}
			return tw.Flush()
		},
	}
	f.bind(cmd, false)
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	return cmd
}

func newDLQShowCmd(g *globals) *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use: "show OP_ID...", Short: "Show dead-lettered operations in full (JSON)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, d, done, err := dlqEnv(g)
			if err != nil {
				return err
			}
			defer done()
			dls, err := selectDead(cmd.Context(), cfg, d, f, args)
			if len(dls) > 0 {
				_ = writeJSONOut(cmd.OutOrStdout(), dls)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&f.workspace, "workspace", "", "workspace (default: every configured workspace)")
	return cmd
}

func newDLQReplayCmd(g *globals) *cobra.Command {
	f := &dlqFlags{}
	var force bool
	cmd := &cobra.Command{
		Use: "replay [OP_ID...]", Short: "Enqueue dead-lettered operations again, unchanged",
		Long: `Enqueue dead-lettered operations again, unchanged: same op id, event id,
timestamp and place in their person's order, so a newer delete or suppress of
the person still drops them. An update of a person (identify, event, device)
queued longer ago than the tombstone TTL is refused: cioq can no longer tell
whether the person was deleted since, and replaying it could bring a deleted
person back. --force replays it anyway.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, d, done, err := dlqEnv(g)
			if err != nil {
				return err
			}
			defer done()
			dls, selErr := selectDead(cmd.Context(), cfg, d, f, args)
			if len(dls) == 0 {
				if selErr != nil {
					return selErr
				}
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to replay")
				return nil
			}
			var replayed, queued, refused int
			var oldest time.Duration
			for i := range dls {
				dup, err := d.Replay(cmd.Context(), &dls[i], worker.ReplayOptions{MaxRetry: cfg.Worker.MaxRetry, Force: force})
				if errors.Is(err, worker.ErrReplayTooOld) {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					refused++
					continue
				}
				if err != nil {
					return err
				}
				if dup {
					queued++
				} else {
					replayed++
				}
				oldest = max(oldest, time.Since(dls[i].EnqueuedAt))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d op(s), %d already queued; oldest op enqueued %s ago", replayed, queued, oldest.Round(time.Second))
			if oldest > 72*time.Hour {
				fmt.Fprint(cmd.OutOrStdout(), " (events older than 72 h count for segments but trigger no campaigns)")
			}
			fmt.Fprintln(cmd.OutOrStdout())
			if refused > 0 {
				return fmt.Errorf("%d op(s) older than the tombstone TTL not replayed (use --force)", refused)
			}
			return selErr
		},
	}
	f.bind(cmd, true)
	cmd.Flags().BoolVar(&force, "force", false, "replay ops older than the tombstone TTL too")
	return cmd
}

func newDLQPurgeCmd(g *globals) *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use: "purge [OP_ID...]", Short: "Delete dead-lettered operations for good",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, d, done, err := dlqEnv(g)
			if err != nil {
				return err
			}
			defer done()
			dls, selErr := selectDead(cmd.Context(), cfg, d, f, args)
			n := 0
			for _, dl := range dls {
				k, err := d.Remove(cmd.Context(), dl.Workspace, dl.OpID)
				if err != nil {
					return err
				}
				n += k
			}
			fmt.Fprintf(cmd.OutOrStdout(), "purged %d op(s)\n", n)
			return selErr
		},
	}
	f.bind(cmd, true)
	return cmd
}

func newDLQExportCmd(g *globals) *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use: "export", Short: "Write dead-lettered operations as JSON Lines", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, d, done, err := dlqEnv(g)
			if err != nil {
				return err
			}
			defer done()
			enc := json.NewEncoder(cmd.OutOrStdout())
			for _, ws := range f.workspaces(cfg) {
				dls, err := d.List(cmd.Context(), ws, f.filter())
				if err != nil {
					return err
				}
				for _, dl := range dls {
					if err := enc.Encode(dl); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	f.bind(cmd, false)
	cmd.Flags().Lookup("limit").DefValue = "100000"
	_ = cmd.Flags().Set("limit", "100000")
	return cmd
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
