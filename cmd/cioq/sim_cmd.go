package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/hpasim"
)

func newSimCmd(_ *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Offline simulations (no Redis needed)",
	}
	cmd.AddCommand(newSimHPACmd(), newSimRateCmd())
	return cmd
}

// simHPAOptions are the flags of `cioq sim hpa`.
type simHPAOptions struct {
	profile string
	model   hpasim.Model
	every   time.Duration
	json    bool
}

func newSimHPACmd() *cobra.Command {
	var o simHPAOptions
	cmd := &cobra.Command{
		Use:   "hpa",
		Short: "Replay traffic through the HPA algorithm: the seed's HPA against cioq_desired_replicas",
		Long: `hpa replays a traffic profile through the Kubernetes HPA v2 algorithm (15 s sync,
tolerance 0.1, stabilization windows, scaling policies) against a model of the
workers (ops/s per pod, pods ready after a startup delay) and the workspace
budget (requests/s × ops per request; work beyond it only meets 429s or limiter
waits), for three signals:

  seed (depth from 1 pod)      the seed's HPA: CPU 70% + Pods cio_queue_depth 500,
                               the depth exported by one pod (cioq's lease)
  seed (depth from every pod)  the same HPA with every pod exporting the depth
  cioq desired_replicas        External cioq_desired_replicas, AverageValue 1

It prints a table over time per profile and a summary: time to drain, peak
pods, pod-minutes, requests over budget. Profiles: steady, spike, daily,
backlog (1M ops), or all. docs/scaling.md explains the model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimHPA(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.profile, "profile", "all", "traffic profile: steady, spike, daily, backlog or all")
	f.Float64Var(&o.model.PodThroughput, "pod-throughput", 0, "ops/s one worker pod delivers (default 5000)")
	f.Float64Var(&o.model.Budget, "budget", 0, "workspace budget in requests/s (default 80)")
	f.Float64Var(&o.model.OpsPerRequest, "ops-per-request", 0, "ops per v2 batch request (default 500)")
	f.DurationVar(&o.model.DrainTime, "drain-time", 0, "cioq_desired_replicas drain target (default 5m)")
	f.DurationVar(&o.model.StartupDelay, "startup-delay", 0, "time until a new pod serves (default 30s)")
	f.DurationVar(&o.every, "every", 0, "spacing of the time table's rows (default: about 30 rows per profile)")
	f.BoolVar(&o.json, "json", false, "print JSON (model, summaries and rows)")
	return cmd
}

// simRun is one profile through every signal.
type simRun struct {
	Profile     string          `json:"profile"`
	Description string          `json:"description"`
	Results     []hpasim.Result `json:"results"`
}

func runSimHPA(w io.Writer, o simHPAOptions) error {
	profiles := hpasim.Profiles()
	if o.profile != "all" {
		p, err := hpasim.ProfileByName(o.profile)
		if err != nil {
			return usageError(err)
		}
		profiles = []hpasim.Profile{p}
	}
	if o.every < 0 {
		return usageError(fmt.Errorf("--every %s is negative", o.every))
	}
	model := o.model.WithDefaults()
	var runs []simRun
	for _, p := range profiles {
		m := model
		m.RowEvery = o.every
		if m.RowEvery == 0 {
			m.RowEvery = max(time.Minute, (p.Duration / 30).Truncate(time.Minute))
		}
		m.RowEvery = max(m.Step, m.RowEvery.Truncate(m.Step))
		run := simRun{Profile: p.Name, Description: p.Description}
		for _, s := range hpasim.Signals() {
			r, err := hpasim.Run(p, s, m)
			if err != nil {
				return usageError(err)
			}
			run.Results = append(run.Results, r)
		}
		runs = append(runs, run)
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Model simModelJSON `json:"model"`
			Runs  []simRun     `json:"runs"`
		}{newSimModelJSON(model), runs})
	}
	fmt.Fprintf(w, "model: %.0f ops/s per pod; budget %.0f req/s × %.0f ops = %.0f ops/s; pods serve %s after they are asked for;\n"+
		"HPA sync %s; cioq drain target %s\n", model.PodThroughput, model.Budget, model.OpsPerRequest, model.BudgetOps(),
		model.StartupDelay, model.SyncPeriod, model.DrainTime)
	for _, run := range runs {
		printSimTimeline(w, run)
	}
	printSimSummary(w, runs)
	return nil
}

// simModelJSON is the model in plain units.
type simModelJSON struct {
	PodThroughput  float64 `json:"pod_throughput_ops_per_second"`
	Budget         float64 `json:"budget_requests_per_second"`
	OpsPerRequest  float64 `json:"ops_per_request"`
	DrainTime      float64 `json:"drain_time_seconds"`
	StartupDelay   float64 `json:"startup_delay_seconds"`
	SyncPeriod     float64 `json:"sync_period_seconds"`
	BudgetOpsPerSe float64 `json:"budget_ops_per_second"`
}

func newSimModelJSON(m hpasim.Model) simModelJSON {
	return simModelJSON{PodThroughput: m.PodThroughput, Budget: m.Budget, OpsPerRequest: m.OpsPerRequest,
		DrainTime: m.DrainTime.Seconds(), StartupDelay: m.StartupDelay.Seconds(), SyncPeriod: m.SyncPeriod.Seconds(),
		BudgetOpsPerSe: m.BudgetOps()}
}

func printSimTimeline(w io.Writer, run simRun) {
	fmt.Fprintf(w, "\nprofile %s: %s\n", run.Profile, run.Description)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"time", "in ops/s"}
	for i, r := range run.Results {
		l := string(rune('A' + i))
		head = append(head, l+" pods", l+" backlog", l+" over req/s")
		_ = r
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for i, row := range run.Results[0].Rows {
		cols := []string{simDuration(row.At), fmt.Sprintf("%.0f", row.Arrival)}
		for _, r := range run.Results {
			rr := r.Rows[i]
			cols = append(cols, fmt.Sprint(rr.Pods), fmt.Sprintf("%.0f", rr.Backlog), fmt.Sprintf("%.0f", rr.OverBudget))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	}
	_ = tw.Flush()
	for i, r := range run.Results {
		fmt.Fprintf(w, "  %c = %s\n", 'A'+i, r.Summary.Signal)
	}
}

func printSimSummary(w io.Writer, runs []simRun) {
	fmt.Fprintln(w, "\nsummary")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "profile\tsignal\ttime to drain\tpeak pods\tpod-minutes\trequests over budget\tpeak backlog\tscalings")
	for _, run := range runs {
		for _, r := range run.Results {
			s := r.Summary
			drain := simDuration(s.DrainTime)
			if !s.Drained {
				drain = "not drained (" + drain + "+)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%d\n", s.Profile, s.Signal, drain, s.PeakPods,
				s.PodMinutes, s.OverBudget, s.PeakBacklog, s.Scalings)
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "time to drain: the longest stretch with a backlog of %.0f ops or more.\n", hpasim.DrainedBelow)
}

// simDuration prints 1h02m03s as 1h02m03s and 0 as 0s, without sub-seconds.
func simDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}
