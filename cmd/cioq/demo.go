package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/cioq/cioq/cdp"
	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/task"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// demoOptions configures `cioq demo`.
type demoOptions struct {
	ops     int
	rate    float64
	outage  time.Duration
	budget  float64
	timeout time.Duration
}

func newDemoCmd(_ *globals) *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on an embedded Redis and the fake Track and Pipelines APIs",
		Long: `demo starts an in-process Redis (miniredis), the fake Track API, the fake
Pipelines API, a worker and a producer; enqueues identify, track and suppress ops
with unique content, half as Track API ops and half as Pipelines API calls (one
workspace, one rate budget for both); takes Customer.io down for a while mid-run;
and prints live progress and a final table from the fakes' ledgers: sent,
delivered, duplicates, lost, 429s, for each API.

It needs nothing installed. Real deployments use a real Redis (cioq worker).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.ops, "ops", 3000, "operations to enqueue")
	f.Float64Var(&o.rate, "rate", 600, "enqueue rate in ops/s")
	f.DurationVar(&o.outage, "outage", 3*time.Second, "how long Customer.io is down mid-run (0: no outage)")
	f.Float64Var(&o.budget, "budget", 80, "request budget of the workspace in requests/s")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up when not drained by then")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	mr, err := miniredis.Run()
	if err != nil {
		return fmt.Errorf("demo: embedded redis: %w", err)
	}
	defer mr.Close()
	const site, key, cdpKey = "demo-site", "demo-key", "demo-cdp-key"
	srv := fake.NewServer(fake.Options{Credentials: map[string]string{site: key}, RateLimit: 100})
	defer srv.Close()
	cdpSrv := cdpfake.NewServer(cdpfake.Options{Keys: map[string]string{cdpKey: producer.DefaultWorkspace}, RateLimit: 100})
	defer cdpSrv.Close()

	conn := asynq.RedisClientOpt{Addr: mr.Addr()}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	prod, err := producer.New(producer.Config{Redis: conn})
	if err != nil {
		return err
	}
	defer prod.Close(context.Background())
	client, err := track.NewClient(track.Config{SiteID: site, APIKey: key, BaseURL: srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	pl, err := cdp.NewClient(cdp.Config{APIKey: cdpKey, BaseURL: cdpSrv.URL, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		Redis: conn, Client: rdb,
		Workspaces: []worker.Workspace{{
			Name: producer.DefaultWorkspace, Sender: client, Pipelines: pl,
			Limit: ratelimit.Limit{Rate: o.budget}, // one budget for both APIs
			Batch: worker.BatchConfig{MaxOps: 100, MaxWait: 50 * time.Millisecond},
		}},
		Concurrency: 200, Servers: 1, CriticalConcurrency: 20,
		Retry:          worker.RetryPolicy{Base: 200 * time.Millisecond, Cap: 2 * time.Second},
		BreakerTimeout: time.Second, DelayedTaskCheckInterval: 200 * time.Millisecond,
		RequestTimeout: 2 * time.Second, ShutdownTimeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Shutdown()
	insp := asynq.NewInspector(conn)
	defer insp.Close()

	fmt.Fprintf(out, "cioq demo: embedded Redis %s, fake Track API %s, fake Pipelines API %s, budget %.0f req/s for both\n",
		mr.Addr(), srv.URL, cdpSrv.URL, o.budget)
	fmt.Fprintf(out, "enqueuing %d ops at %.0f ops/s; Customer.io goes down (503) for %s mid-run\n\n", o.ops, o.rate, o.outage)

	var enqueued, expected, dupes atomic.Int64
	var enqErr atomic.Value
	start := time.Now()
	outageAt := time.Duration(float64(o.ops)/o.rate*float64(time.Second)) / 3
	go func() {
		tick := time.Duration(float64(time.Second) / o.rate)
		next := time.Now()
		for i := range o.ops {
			var r producer.Result
			var err error
			id := fmt.Sprintf("person-%d", i%400)
			call := func(c *cdp.Call) (producer.Result, error) {
				c.MessageID = fmt.Sprintf("demo-%d", i)
				return prod.Enqueue(ctx, producer.Op{Call: c})
			}
			switch {
			case i%100 == 99:
				// A suppress for a person of its own: delivered on the critical lane.
				r, err = prod.Suppress(ctx, fmt.Sprintf("leaver-%d", i))
			case i%100 == 49:
				// The same over the Pipelines API: the "User Suppressed" event.
				r, err = call(&cdp.Call{Type: cdp.TypeTrack, UserID: fmt.Sprintf("leaver-%d", i), Event: cdp.EventUserSuppressed})
			case i%10 == 0:
				r, err = prod.Identify(ctx, id, map[string]any{"plan": []string{"free", "pro"}[rand.IntN(2)], "seq": i})
			case i%10 == 5:
				r, err = call(&cdp.Call{Type: cdp.TypeIdentify, UserID: id, Traits: map[string]any{"plan": []string{"free", "pro"}[rand.IntN(2)], "seq": i}})
			case i%2 == 0:
				r, err = prod.Track(ctx, id, "page_viewed", map[string]any{"seq": i})
			default:
				r, err = call(&cdp.Call{Type: cdp.TypeTrack, UserID: id, Event: "page_viewed", Properties: map[string]any{"seq": i}})
			}
			if err != nil {
				enqErr.Store(err)
				return
			}
			enqueued.Add(1)
			if r.Duplicate {
				dupes.Add(1)
			} else {
				expected.Add(1)
			}
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
	}()

	outageState := "pending"
	var outageEnd time.Time
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.Now().Add(o.timeout)
	for {
		<-ticker.C
		el := time.Since(start)
		if o.outage > 0 && outageState == "pending" && el >= outageAt {
			_ = srv.SetFaults(fake.Faults{Down: true, DownStatus: 503})
			_ = cdpSrv.SetFaults(cdpfake.Faults{Down: true, DownStatus: 503})
			outageState, outageEnd = "down", time.Now().Add(o.outage)
		}
		if outageState == "down" && time.Now().After(outageEnd) {
			_ = srv.SetFaults(fake.Faults{})
			_ = cdpSrv.SetFaults(cdpfake.Faults{})
			outageState = "over"
		}
		l, cl := srv.Ledger(), cdpSrv.Ledger()
		open := queueOpen(insp)
		h, _ := w.Health(ctx)
		cio := "up"
		if outageState == "down" {
			cio = "DOWN"
		}
		fmt.Fprintf(out, "\r%5.1fs  enqueued %5d  delivered %5d track + %5d pipelines  queued %5d  requests %4d  breaker %-9s  customer.io %-4s",
			el.Seconds(), enqueued.Load(), l.UniqueOps, cl.UniqueCalls, open, l.Requests+cl.Requests, h.Customerio.CircuitState, cio)
		if e, ok := enqErr.Load().(error); ok {
			fmt.Fprintln(out)
			return fmt.Errorf("demo: enqueue: %w", e)
		}
		if enqueued.Load() == int64(o.ops) && open == 0 && outageState != "down" {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(out)
			return fmt.Errorf("demo: not drained after %s", o.timeout)
		}
	}
	fmt.Fprintln(out)
	elapsed := time.Since(start)
	l, cl := srv.Ledger(), cdpSrv.Ledger()
	dlq, _ := w.DeadLetters().Count(ctx, producer.DefaultWorkspace)
	lost := expected.Load() - l.UniqueOps - cl.UniqueCalls - dlq
	cioDupes := l.DuplicateOps + cl.DuplicateCalls
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(k string, tr, pl any) { fmt.Fprintf(tw, "%s\t%v\t%v\t\n", k, tr, pl) }
	row("", "Track API", "Pipelines API")
	row("delivered (unique at Customer.io)", l.UniqueOps, cl.UniqueCalls)
	row("duplicates at Customer.io", l.DuplicateOps, cl.DuplicateCalls)
	row("HTTP requests", l.Requests, cl.Requests)
	row("  accepted", l.Accepted, cl.Accepted)
	row("  503 during the outage", l.ServerErrors, cl.ServerErrors)
	row("  429 rate limited", l.RateLimited, cl.RateLimited)
	row("max ops in one request", l.MaxOpsPerRequest, cl.MaxCallsPerRequest)
	row("suppress (critical lane)", l.OpsByAction[string(track.ActionSuppress)], cl.CallsByKind[cdp.EventUserSuppressed])
	_ = tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	total := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\t\n", k, v) }
	var at []time.Time
	for _, r := range srv.Requests() {
		at = append(at, r.Time)
	}
	for _, r := range cdpSrv.Requests() {
		at = append(at, r.Time)
	}
	total("ops enqueued (both APIs)", enqueued.Load())
	total("max requests in any 1 s (both APIs)", fmt.Sprintf("%d (one budget: %.0f)", maxPerSecond(at), o.budget))
	total("lost", lost)
	total("dead-lettered", dlq)
	total("elapsed", elapsed.Round(10*time.Millisecond))
	_ = tw.Flush()
	if lost != 0 || cioDupes != 0 {
		return fmt.Errorf("demo: %d lost, %d duplicates", lost, cioDupes)
	}
	fmt.Fprintln(out, "\nnothing lost, nothing duplicated: every op was delivered once, through the outage, to both APIs.")
	return nil
}

// maxPerSecond is the most times of at in any one-second window.
func maxPerSecond(at []time.Time) int {
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	best, lo := 0, 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= time.Second {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// queueOpen counts tasks not yet settled in the lanes (critical, default,
// bulk) of the workspaces
// (the default workspace when none is named).
func queueOpen(insp *asynq.Inspector, workspaces ...string) int {
	if len(workspaces) == 0 {
		workspaces = []string{task.DefaultWorkspace}
	}
	var queues []string
	for _, ws := range workspaces {
		c, d := task.Lanes(ws)
		queues = append(queues, c, d, task.BulkQueue(ws))
	}
	n := 0
	for _, q := range queues {
		if info, err := insp.GetQueueInfo(q); err == nil {
			n += info.Pending + info.Active + info.Scheduled + info.Retry
		}
	}
	return n
}
