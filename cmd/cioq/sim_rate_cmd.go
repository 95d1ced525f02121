package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cioq/cioq/internal/ratesim"
)

// simRateOptions are the flags of `cioq sim rate`.
type simRateOptions struct {
	profile   string
	budget    float64
	factor    float64
	storm     time.Duration
	share     float64
	steady    time.Duration
	replicas  int
	slots     int
	latency   time.Duration
	critical  float64
	json      bool
	perSecond bool
}

func newSimRateCmd() *cobra.Command {
	var o simRateOptions
	cmd := &cobra.Command{
		Use:   "rate",
		Short: "Replay a fleet against a moving real limit: the adaptive rate at work",
		Long: `rate runs the limiter's own scripts (on an embedded Redis, with a virtual clock)
for a fleet of workers that always has more to send than Customer.io takes,
against a real limit that moves (a token bucket of one second's burst, like
the fake Track API), and prints per second the real limit, the effective rate
every replica shares, and the requests sent, accepted and answered 429. It
models the fleet, not asynq or the batcher. Profiles:

  storm   the real limit equals the budget for 10 s, drops by --factor for
          --storm, and comes back for 20 s
  steady  the real limit stays at --share of the budget for --steady

docs/architecture.md ("Adaptive rate") explains the control law.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimRate(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.profile, "profile", "all", "storm, steady or all")
	f.Float64Var(&o.budget, "budget", ratesim.DefaultBudget, "configured budget in req/s (CIOQ_RATE_LIMIT)")
	f.Float64Var(&o.factor, "factor", 16, "storm: how many times the real limit drops")
	f.DurationVar(&o.storm, "storm", 15*time.Second, "storm: how long the real limit stays low")
	f.Float64Var(&o.share, "share", 0.5, "steady: the real limit as a share of the budget")
	f.DurationVar(&o.steady, "steady", time.Minute, "steady: how long")
	f.IntVar(&o.replicas, "replicas", ratesim.DefaultReplicas, "worker processes")
	f.IntVar(&o.slots, "slots", ratesim.DefaultSlots, "requests each replica keeps in flight or waiting")
	f.DurationVar(&o.latency, "latency", ratesim.DefaultLatency, "round trip of one request")
	f.Float64Var(&o.critical, "critical", 0, "fraction of requests on the critical lane")
	f.BoolVar(&o.perSecond, "per-second", true, "print the per-second table")
	f.BoolVar(&o.json, "json", false, "print JSON (models, seconds and phases)")
	return cmd
}

func runSimRate(cmd *cobra.Command, o simRateOptions) error {
	if o.factor < 1 || o.share <= 0 || o.share > 1 || o.storm <= 0 || o.steady <= 0 {
		return usageError(fmt.Errorf("--factor must be ≥ 1, --share in (0, 1], --storm and --steady positive"))
	}
	var models []ratesim.Model
	switch o.profile {
	case "storm", "steady", "all":
	default:
		return usageError(fmt.Errorf("unknown profile %q (storm, steady or all)", o.profile))
	}
	if o.profile != "steady" {
		models = append(models, ratesim.Storm(o.budget, o.factor, o.storm))
	}
	if o.profile != "storm" {
		models = append(models, ratesim.Steady(o.budget, o.share, o.steady))
	}
	var results []ratesim.Result
	for _, m := range models {
		m.Replicas, m.Slots, m.Latency, m.Critical = o.replicas, o.slots, o.latency, o.critical
		r, err := ratesim.Run(cmd.Context(), m)
		if err != nil {
			return usageError(err)
		}
		results = append(results, r)
	}
	w := cmd.OutOrStdout()
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for _, r := range results {
		printSimRate(w, r, o.perSecond)
	}
	return nil
}

func printSimRate(w io.Writer, r ratesim.Result, perSecond bool) {
	m := r.Model
	fmt.Fprintf(w, "\nbudget %.0f req/s; %d replicas × %d slots; round trip %s\n", m.Budget, m.Replicas, m.Slots, m.Latency)
	if perSecond {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "second\treal limit\teffective rate\tsent\taccepted\t429\t")
		for _, s := range r.Seconds {
			fmt.Fprintf(tw, "%.0f\t%.1f\t%.1f\t%d\t%d\t%d\t\n", s.At.Seconds(), s.Limit, s.Rate, s.Sent, s.Accepted, s.Throttled)
		}
		_ = tw.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\treal limit\tsent\taccepted\t429\t429 share\taccepted / limit\taccepted from +5 s / budget\tfirst second ≥ 80% of the lanes' share")
	for _, p := range r.Phases {
		reach := "never"
		if p.Reach80 >= 0 {
			reach = fmt.Sprintf("+%.0f s", p.Reach80.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%d\t%d\t%.1f%%\t%.0f%%\t%.0f%%\t%s\n", p.Name, p.Limit, p.Sent, p.Accepted,
			p.Throttled, 100*p.Share429, 100*p.Used, 100*p.From5s, reach)
	}
	_ = tw.Flush()
}
