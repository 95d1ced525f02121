package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/history"
	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/internal/task"
)

// personKinds are the typed forms of a person (track.Identifiers.Key).
var personKinds = []string{"id:", "email:", "cio_id:", "phone:", "anonymous_id:"}

// personKey returns the history's form of a person: as given when it is
// typed ("email:a@b.c"), else an id ("u1" → "id:u1").
func personKey(p string) string {
	for _, k := range personKinds {
		if strings.HasPrefix(p, k) {
			return p
		}
	}
	return "id:" + p
}

// opsEnv opens the history and the asynq inspector of the configured Redis.
type opsEnv struct {
	cfg   *config.Config
	store *history.Store
	insp  *asynq.Inspector
	close func()
}

func openOpsEnv(g *globals) (*opsEnv, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	rdb, err := cfg.Redis.UniversalClient()
	if err != nil {
		return nil, usageError(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	return &opsEnv{
		cfg: cfg, store: history.New(rdb, history.Config{Prefix: cfg.KeyPrefix}), insp: insp,
		close: func() { _ = rdb.Close() },
	}, nil
}

func (e *opsEnv) workspaces(flag string) []string {
	if flag != "" {
		return []string{flag}
	}
	names := make([]string, len(e.cfg.Workspaces))
	for i, w := range e.cfg.Workspaces {
		names[i] = w.Name
	}
	return names
}

// taskInfo returns asynq's view of the op's task (nil when asynq no longer
// holds it: completed, or never queued).
func (e *opsEnv) taskInfo(ws, opID, queue string) *asynq.TaskInfo {
	queues := []string{queue}
	if queue == "" {
		c, d := task.Lanes(ws)
		queues = []string{d, c}
	}
	for _, q := range queues {
		if info, err := e.insp.GetTaskInfo(q, task.TaskID(ws, opID)); err == nil {
			return info
		}
	}
	return nil
}

func newOpsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ops",
		Short: "Where is my event? An op's history, or a person's recent ops",
		Long: `cioq keeps, per op, what happened to it (enqueued, every delivery attempt with its
batch, HTTP status, error and latency, deferrals, drops by a duplicate marker or by a
delete/suppress tombstone, dead letters, archives, the delivery), in Redis for
history.ttl (default 24 h). 'ops show' prints one op's timeline with asynq's live
view of its task; 'ops find' lists a person's recent ops and their outcome.`,
	}
	cmd.AddCommand(newOpsShowCmd(g), newOpsFindCmd(g))
	return cmd
}

func newOpsShowCmd(g *globals) *cobra.Command {
	var workspace string
	var asJSON bool
	cmd := &cobra.Command{
		Use: "show OP_ID", Short: "Show an op's timeline", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openOpsEnv(g)
			if err != nil {
				return err
			}
			defer e.close()
			return e.show(cmd.Context(), cmd.OutOrStdout(), workspace, args[0], asJSON)
		},
	}
	cmd.Flags().StringVar(&workspace, "workspace", "", "workspace (default: every configured workspace)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the op, its events, attempts, delivered_at and task)")
	return cmd
}

// taskView is asynq's view of a task in `ops show --json`.
type taskView struct {
	Queue         string     `json:"queue"`
	State         string     `json:"state"`
	Retried       int        `json:"retried"`
	MaxRetry      int        `json:"max_retry"`
	LastError     string     `json:"last_error,omitempty"`
	NextProcessAt *time.Time `json:"next_process_at,omitempty"`
}

func viewTask(info *asynq.TaskInfo) *taskView {
	if info == nil {
		return nil
	}
	v := &taskView{Queue: info.Queue, State: info.State.String(), Retried: info.Retried, MaxRetry: info.MaxRetry, LastError: info.LastErr}
	if !info.NextProcessAt.IsZero() {
		n := info.NextProcessAt.UTC()
		v.NextProcessAt = &n
	}
	return v
}

func (e *opsEnv) show(ctx context.Context, out io.Writer, workspace, opID string, asJSON bool) error {
	for _, ws := range e.workspaces(workspace) {
		op, err := e.store.Get(ctx, ws, opID)
		if errors.Is(err, history.ErrNotFound) {
			if info := e.taskInfo(ws, opID, ""); info != nil {
				op = &history.Op{Workspace: ws, OpID: opID, Queue: info.Queue, State: history.StateQueued}
			} else {
				continue
			}
		} else if err != nil {
			return err
		}
		info := e.taskInfo(ws, opID, op.Queue)
		if asJSON {
			return writeJSONOut(out, struct {
				history.Op
				Task *taskView `json:"task"`
			}{*op, viewTask(info)})
		}
		printTimeline(out, op, info)
		return nil
	}
	return fmt.Errorf("no history for op %q (unknown op id or workspace, history off, or older than its TTL)", opID)
}

func printTimeline(out io.Writer, op *history.Op, info *asynq.TaskInfo) {
	fmt.Fprintf(out, "op %s", op.OpID)
	if op.Action != "" {
		fmt.Fprintf(out, " (%s)", op.Action)
	}
	fmt.Fprintf(out, "  workspace %s", op.Workspace)
	if op.Person != "" {
		fmt.Fprintf(out, "  person %s", op.Person)
	}
	fmt.Fprintln(out)
	attempts := op.Attempts()
	fmt.Fprintf(out, "state: %s", op.State)
	if at := op.DeliveredAt(); !at.IsZero() {
		fmt.Fprintf(out, " at %s", at.UTC().Format(time.RFC3339Nano))
		if !op.EnqueuedAt.IsZero() {
			fmt.Fprintf(out, ", %s after enqueue", at.Sub(op.EnqueuedAt).Round(time.Millisecond))
		}
	}
	fmt.Fprintf(out, ", %d attempt(s)\n\n", len(attempts))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	n := 0
	for _, ev := range op.Events {
		what, detail := ev.Kind.String(), ""
		switch ev.Kind {
		case history.KindEnqueued:
			detail = "queue " + ev.Queue
		case history.KindAttempt, history.KindDelivered:
			n++
			what = fmt.Sprintf("%s #%d", what, n)
			if ev.Kind == history.KindAttempt {
				what = fmt.Sprintf("attempt #%d", n)
			}
			detail = fmt.Sprintf("HTTP %s  batch %s  %s", statusText(ev.Status), ev.Batch, ev.Latency.Round(100*time.Microsecond))
			if ev.Reason != "" {
				detail += "  " + ev.Reason
			}
			if ev.Ref != "" {
				detail += "  request " + ev.Ref
			}
		case history.KindDeferred:
			detail = ev.Reason + ", again at " + ev.Next.UTC().Format("15:04:05.000")
		case history.KindDropped:
			detail = ev.Reason
			if ev.Ref != "" {
				detail += " (by op " + ev.Ref + ")"
			}
		case history.KindDeadLettered:
			detail = fmt.Sprintf("HTTP %s  %s  (cioq dlq show %s)", statusText(ev.Status), ev.Reason, op.OpID)
		case history.KindArchived:
			detail = "retries exhausted: " + ev.Reason
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", ev.At.UTC().Format("2006-01-02 15:04:05.000"), what, detail)
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
	if info == nil {
		fmt.Fprintln(out, "task: not in the queue (done, or never queued)")
		return
	}
	fmt.Fprintf(out, "task: %s in queue %s, retried %d of %d", info.State, info.Queue, info.Retried, info.MaxRetry)
	if !info.NextProcessAt.IsZero() {
		fmt.Fprintf(out, ", next try %s", info.NextProcessAt.UTC().Format(time.RFC3339))
	}
	if info.LastErr != "" {
		fmt.Fprintf(out, ", last error: %s", truncate(info.LastErr, 120))
	}
	fmt.Fprintln(out)
}

func statusText(s int) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprint(s)
}

func newOpsFindCmd(g *globals) *cobra.Command {
	var (
		person, workspace, action string
		since                     time.Duration
		limit                     int
		asJSON                    bool
	)
	cmd := &cobra.Command{
		Use:   "find --person ID",
		Short: "List a person's recent ops and their outcome, newest first",
		Long: `find lists the ops of a person, newest first, from the history's person index.
--person takes an id ("u1") or a typed identifier ("email:a@b.c", "cio_id:...",
"phone:...", "anonymous_id:..."). --json prints a JSON array of ops: op_id, action,
state, attempts (at, status, error) and delivered_at (null until delivered).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if person == "" {
				return usageError(errors.New("--person is required"))
			}
			if action == "track" {
				action = "event" // the v2 action of a track call
			}
			e, err := openOpsEnv(g)
			if err != nil {
				return err
			}
			defer e.close()
			var ops []history.Op
			for _, ws := range e.workspaces(workspace) {
				found, err := e.store.Find(cmd.Context(), ws, personKey(person), history.Query{Since: since, Action: action, Limit: limit})
				if err != nil {
					return err
				}
				ops = append(ops, found...)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				sums := make([]history.Summary, len(ops))
				for i := range ops {
					sums[i] = ops[i].Summary()
				}
				return writeJSONOut(out, sums)
			}
			if len(ops) == 0 {
				fmt.Fprintf(out, "no ops of %s in the history\n", personKey(person))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ENQUEUED\tOP ID\tACTION\tSTATE\tATTEMPTS\tLAST")
			for i := range ops {
				op := &ops[i]
				last := ""
				if len(op.Events) > 0 {
					ev := op.Events[len(op.Events)-1]
					last = ev.Kind.String()
					if ev.Status != 0 {
						last += fmt.Sprintf(" %d", ev.Status)
					}
					if ev.Reason != "" {
						last += " " + truncate(ev.Reason, 60)
					}
					if ev.Ref != "" && ev.Kind == history.KindDropped {
						last += " by " + ev.Ref
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", op.EnqueuedAt.UTC().Format("2006-01-02 15:04:05"), op.OpID,
					op.Action, op.State, len(op.Attempts()), last)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&person, "person", "", "the person: an id, or a typed identifier (email:a@b.c)")
	f.StringVar(&workspace, "workspace", "", "workspace (default: every configured workspace)")
	f.StringVar(&action, "action", "", "only ops of this action (identify, track (= event), suppress, ...)")
	f.DurationVar(&since, "since", 0, "only ops enqueued within this long (e.g. 1h; default: all kept)")
	f.IntVar(&limit, "limit", history.DefaultFindLimit, "at most this many ops per workspace")
	f.BoolVar(&asJSON, "json", false, "print the JSON contract: op_id, action, state, attempts, delivered_at")
	return cmd
}
