package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cioq/cioq/cdp"
	cdpfake "github.com/cioq/cioq/cdp/fake"
	"github.com/cioq/cioq/internal/config"
	"github.com/cioq/cioq/producer"
	"github.com/cioq/cioq/ratelimit"
	"github.com/cioq/cioq/track"
	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// loadOptions configures `cioq load`.
type loadOptions struct {
	ops         int
	rate        float64
	identify    float64
	size        int
	concurrency int
	fake        bool
	fakeURL     string
	workers     int
	budget      float64
	timeout     time.Duration
	asJSON      bool
	// bulk enqueues through the producer's bulk path (many ops per task).
	bulk bool
	// workspaces spreads the ops over these workspaces by person
	// (producer.HashRouter); empty means the first configured workspace.
	workspaces []string
	// api is the API the ops go to: "track" (v2 ops) or "pipelines"
	// (Pipelines calls).
	api string
}

// loadSummary is what `cioq load` reports.
type loadSummary struct {
	// API is the API the ops went to: track or pipelines.
	API             string  `json:"api"`
	Ops             int     `json:"ops"`
	Bulk            bool    `json:"bulk,omitempty"`
	Enqueued        int64   `json:"enqueued"`
	Duplicates      int64   `json:"duplicates"`
	EnqueueSeconds  float64 `json:"enqueue_seconds"`
	EnqueueRate     float64 `json:"enqueue_ops_per_second"`
	EnqueueP50Micro int64   `json:"enqueue_p50_us"`
	EnqueueP99Micro int64   `json:"enqueue_p99_us"`
	DrainSeconds    float64 `json:"drain_seconds"`
	DeliveredRate   float64 `json:"delivered_ops_per_second"`
	// The fields below need the fake's ledger (--fake or --fake-url).
	Ledger        bool    `json:"ledger"`
	Delivered     int64   `json:"delivered_unique"`
	DuplicatesCIO int64   `json:"duplicates_at_customerio"`
	Lost          int64   `json:"lost"`
	Requests      int64   `json:"requests"`
	OpsPerRequest float64 `json:"ops_per_request"`
	RateLimited   int64   `json:"rate_limited_429"`
	MaxReqPerSec  int     `json:"max_requests_per_second"`
	// Workspaces breaks the run down by workspace (with --workspaces).
	Workspaces []loadWorkspace `json:"workspaces,omitempty"`
}

// loadWorkspace is one workspace's share of a `cioq load` run. The ledger
// fields need the fake's ledger and the workspace's site id (--fake, or a
// configured workspace with --fake-url).
type loadWorkspace struct {
	Name          string  `json:"name"`
	Enqueued      int64   `json:"enqueued"`
	Ledger        bool    `json:"ledger"`
	Delivered     int64   `json:"delivered_unique"`
	DuplicatesCIO int64   `json:"duplicates_at_customerio"`
	Lost          int64   `json:"lost"`
	Requests      int64   `json:"requests"`
	OpsPerRequest float64 `json:"ops_per_request"`
	RateLimited   int64   `json:"rate_limited_429"`
	MaxReqPerSec  int     `json:"max_requests_per_second"`
	DeliveredRate float64 `json:"delivered_ops_per_second"`
}

func newLoadCmd(g *globals) *cobra.Command {
	o := loadOptions{}
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Generate synthetic load through the producer and report throughput, latency and loss",
		Long: `load enqueues --ops synthetic identify/track ops (unique content, --size bytes of
attributes each) through the producer into the configured Redis, at --rate ops/s
(0: as fast as possible), waits for the queues to drain, and prints a summary:
enqueue rate and p50/p99, delivered ops/s, requests, ops per request, 429s, lost
and duplicates. --api pipelines makes them Pipelines API calls (identify and
track calls, each with a messageId), delivered to the Pipelines API (/v1/batch):
with --fake to the fake Pipelines API, else to the configured workspaces'
Pipelines API (cdp_api_key), counted with --fake-url from the ledger of
cioq fakecio's fake Pipelines API.

With --fake it runs the fake Track API and --workers workers in this process at a
--budget req/s workspace budget. Without it, run workers yourself (cioq worker)
against a fake (cioq fakecio) and pass --fake-url to count loss and duplicates
from the fake's ledger.

--workspaces a,b,c spreads the ops over several workspaces by person id
(producer.HashRouter, as a sharded deployment routes them); with --fake each
workspace gets its own site id at the fake, its own --budget and the workers
serve all of them; the summary adds one line per workspace. Without --fake the
workers (cioq worker) must serve every workspace listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if o.ops <= 0 || o.identify < 0 || o.identify > 1 || o.size < 0 || o.concurrency < 1 {
				return usageError(errors.New("--ops and --concurrency must be positive, --identify in [0,1], --size ≥ 0"))
			}
			if o.api != "track" && o.api != "pipelines" {
				return usageError(fmt.Errorf("--api %q: want track or pipelines", o.api))
			}
			var progress io.Writer
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) && !o.asJSON {
				progress = f
			}
			sum, err := runLoad(cmd.Context(), cfg, o, progress)
			if err != nil {
				return err
			}
			printLoadSummary(cmd.OutOrStdout(), sum, o.asJSON)
			if sum.Ledger && (sum.Lost != 0 || sum.DuplicatesCIO != 0) {
				return exitError{code: 1, err: fmt.Errorf("%d lost, %d duplicates", sum.Lost, sum.DuplicatesCIO)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.bulk, "bulk", false, "enqueue through the bulk path (EnqueueBulkSeq: up to 2,000 ops per task; no per-op enqueue latency)")
	f.IntVar(&o.ops, "ops", 10000, "operations to enqueue")
	f.Float64Var(&o.rate, "rate", 0, "enqueue rate in ops/s (0: as fast as possible)")
	f.Float64Var(&o.identify, "identify", 0.2, "fraction of identify ops (the rest are track events)")
	f.IntVar(&o.size, "size", 64, "bytes of attribute payload per op")
	f.IntVar(&o.concurrency, "concurrency", 16, "enqueuing goroutines")
	f.BoolVar(&o.fake, "fake", false, "run the fake Track API and workers in this process")
	f.StringVar(&o.fakeURL, "fake-url", "", "base URL of a running fake (cioq fakecio) whose ledger counts loss and duplicates")
	f.IntVar(&o.workers, "workers", 1, "in-process workers with --fake")
	f.Float64Var(&o.budget, "budget", 100, "workspace budget in req/s with --fake")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up when not drained by then")
	f.BoolVar(&o.asJSON, "json", false, "print the summary as JSON")
	f.StringSliceVar(&o.workspaces, "workspaces", nil, "spread ops over these workspaces by person hash (default: the first configured workspace)")
	f.StringVar(&o.api, "api", "track", "the API of the ops: track (v2 ops) or pipelines (Pipelines calls)")
	return cmd
}

// loadLedger is what load reads from a fake's ledger, the fake Track API's
// or the fake Pipelines API's: ops are calls for the latter.
type loadLedger struct {
	Unique, Duplicates, Requests, Accepted, OpsAccepted, RateLimited int64
	MaxRequestsPerSecond                                             int
	// PerWorkspace is by the fake's workspace key: the site id at the fake
	// Track API, the workspace name at the fake Pipelines API.
	PerWorkspace map[string]loadLedger
}

func fromTrackLedger(l fake.WorkspaceLedger) loadLedger {
	return loadLedger{Unique: l.UniqueOps, Duplicates: l.DuplicateOps, Requests: l.Requests, Accepted: l.Accepted,
		OpsAccepted: l.OpsAccepted, RateLimited: l.RateLimited, MaxRequestsPerSecond: l.MaxRequestsPerSecond}
}

func fromCDPLedger(l cdpfake.WorkspaceLedger) loadLedger {
	return loadLedger{Unique: l.UniqueCalls, Duplicates: l.DuplicateCalls, Requests: l.Requests, Accepted: l.Accepted,
		OpsAccepted: l.CallsAccepted, RateLimited: l.RateLimited, MaxRequestsPerSecond: l.MaxRequestsPerSecond}
}

func trackLedger(l fake.Ledger) loadLedger {
	out := fromTrackLedger(l.WorkspaceLedger)
	out.PerWorkspace = map[string]loadLedger{}
	for k, w := range l.PerWorkspace {
		out.PerWorkspace[k] = fromTrackLedger(w)
	}
	return out
}

func cdpLedger(l cdpfake.Ledger) loadLedger {
	out := fromCDPLedger(l.WorkspaceLedger)
	out.PerWorkspace = map[string]loadLedger{}
	for k, w := range l.PerWorkspace {
		out.PerWorkspace[k] = fromCDPLedger(w)
	}
	return out
}

// ledgerSource reads the fake's ledger.
type ledgerSource func(ctx context.Context) (loadLedger, error)

// httpLedger reads the ledger of the fake at url: the fake Track API's
// (/_fake/ledger), or for api "pipelines" the fake Pipelines API's
// (/_fake/cdp/ledger), as cioq fakecio serves them.
func httpLedger(url, api string) ledgerSource {
	path := "/_fake/ledger"
	if api == "pipelines" {
		path = cdpfake.ControlPrefix + "ledger"
	}
	return func(ctx context.Context) (loadLedger, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+path, nil)
		if err != nil {
			return loadLedger{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return loadLedger{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return loadLedger{}, fmt.Errorf("fake ledger: %s", resp.Status)
		}
		if api == "pipelines" {
			var l cdpfake.Ledger
			err := json.NewDecoder(resp.Body).Decode(&l)
			return cdpLedger(l), err
		}
		var l fake.Ledger
		err = json.NewDecoder(resp.Body).Decode(&l)
		return trackLedger(l), err
	}
}

func runLoad(ctx context.Context, cfg *config.Config, o loadOptions, progress io.Writer) (loadSummary, error) {
	o.api = cmp.Or(o.api, "track")
	sum := loadSummary{API: o.api, Ops: o.ops}
	conn, err := cfg.Redis.ConnOpt()
	if err != nil {
		return sum, usageError(err)
	}
	names := o.workspaces
	if len(names) == 0 {
		names = []string{cfg.Workspaces[0].Name}
	}
	// sites maps a workspace to its site id at the fake, for its ledger.
	sites := map[string]string{}
	var ledger ledgerSource
	if o.fake {
		stop, src, err := startLoadFake(cfg, conn, names, o, sites)
		if err != nil {
			return sum, err
		}
		defer stop()
		ledger = src
	} else if o.fakeURL != "" {
		ledger = httpLedger(o.fakeURL, o.api)
		for _, w := range cfg.Workspaces {
			sites[w.Name] = w.SiteID
			if o.api == "pipelines" {
				sites[w.Name] = w.Name // fakecio counts Pipelines calls by workspace name
			}
		}
	}
	var before loadLedger
	if ledger != nil {
		if before, err = ledger(ctx); err != nil {
			return sum, err
		}
	}
	route := producer.HashRouter(names...)
	var plWorkspaces []string // with --fake every workspace has a Pipelines key
	if !o.fake {
		plWorkspaces = pipelinesWorkspaces(cfg)
	}
	p, err := producer.New(producer.Config{Redis: conn, KeyPrefix: cfg.KeyPrefix, Workspace: names[0], Workspaces: names,
		PipelinesWorkspaces: plWorkspaces, Route: route, MaxRetry: cfg.Worker.MaxRetry})
	if err != nil {
		return sum, usageError(err)
	}
	defer p.Close(context.Background())
	insp := asynq.NewInspector(conn)
	defer insp.Close()

	var bar *progressbar.ProgressBar
	if progress != nil {
		bar = progressbar.NewOptions(o.ops, progressbar.OptionSetWriter(progress), progressbar.OptionSetDescription("enqueuing"),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("ops"), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	}
	run := fmt.Sprintf("%x", rand.Uint64())
	pad := strings.Repeat("x", o.size)
	lat := make([]time.Duration, o.ops)
	index := map[string]int{}
	for i, ws := range names {
		index[ws] = i
	}
	perWS := make([]atomic.Int64, len(names))
	makeOp := func(i int) producer.Op {
		person := fmt.Sprintf("load-%s-%d", run, i%10000)
		attrs := map[string]any{"seq": i, "run": run, "pad": pad}
		identify := rand.Float64() < o.identify
		var op producer.Op
		switch {
		case o.api == "pipelines" && identify:
			op.Call = &cdp.Call{Type: cdp.TypeIdentify, UserID: person, Traits: attrs, MessageID: fmt.Sprintf("load-%s-%d", run, i)}
		case o.api == "pipelines":
			op.Call = &cdp.Call{Type: cdp.TypeTrack, UserID: person, Event: "load_event", Properties: attrs,
				MessageID: fmt.Sprintf("load-%s-%d", run, i)}
		case identify:
			op.Op = track.Op{Action: track.ActionIdentify, Identifiers: &track.Identifiers{ID: person}, Attributes: attrs}
		default:
			op.Op = track.Op{Action: track.ActionEvent, Name: "load_event", Identifiers: &track.Identifiers{ID: person}, Attributes: attrs}
		}
		op.Workspace = route(&op)
		return op
	}
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	if o.bulk {
		sum.Bulk = true
		res, err := p.EnqueueBulkSeq(ctx, func(yield func(producer.Op) bool) {
			for i := range o.ops {
				op := makeOp(i)
				perWS[index[op.Workspace]].Add(1)
				if bar != nil {
					_ = bar.Add(1)
				}
				if !yield(op) {
					return
				}
			}
		})
		if err != nil {
			return sum, fmt.Errorf("load: bulk enqueue: %w", err)
		}
		if len(res.Invalid) > 0 {
			return sum, fmt.Errorf("load: bulk enqueue: %d invalid op(s), first: %v", len(res.Invalid), res.Invalid[0].Err)
		}
		sum.Enqueued, sum.Duplicates = int64(res.Enqueued), int64(res.Duplicates)
		next.Store(int64(o.ops)) // the per-op goroutines below have nothing left to do
	}
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.ops {
					return
				}
				if o.rate > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))))
				}
				op := makeOp(i)
				t0 := time.Now()
				r, err := p.Enqueue(ctx, op)
				lat[i] = time.Since(t0)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if r.Duplicate {
					atomic.AddInt64(&sum.Duplicates, 1)
				} else {
					atomic.AddInt64(&sum.Enqueued, 1)
					perWS[index[op.Workspace]].Add(1)
				}
				if bar != nil {
					_ = bar.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	if err, ok := firstErr.Load().(error); ok {
		return sum, fmt.Errorf("load: enqueue: %w", err)
	}
	enqDone := time.Since(start)
	sum.EnqueueSeconds = enqDone.Seconds()
	sum.EnqueueRate = float64(o.ops) / enqDone.Seconds()
	if !o.bulk {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		sum.EnqueueP50Micro = lat[len(lat)/2].Microseconds()
		sum.EnqueueP99Micro = lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()
	}

	deadline := time.Now().Add(o.timeout)
	for queueOpen(insp, names...) > 0 {
		if time.Now().After(deadline) {
			return sum, fmt.Errorf("load: queues not drained after %s", o.timeout)
		}
		select {
		case <-ctx.Done():
			return sum, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	total := time.Since(start)
	sum.DrainSeconds = total.Seconds()
	sum.DeliveredRate = float64(sum.Enqueued) / total.Seconds()
	var after loadLedger
	if ledger != nil {
		if after, err = ledger(ctx); err != nil {
			return sum, err
		}
		sum.Ledger = true
		sum.Delivered = after.Unique - before.Unique
		sum.DuplicatesCIO = after.Duplicates - before.Duplicates
		sum.Requests = after.Requests - before.Requests
		if acc := after.Accepted - before.Accepted; acc > 0 {
			sum.OpsPerRequest = float64(after.OpsAccepted-before.OpsAccepted) / float64(acc)
		}
		sum.RateLimited = after.RateLimited - before.RateLimited
		sum.MaxReqPerSec = after.MaxRequestsPerSecond
		sum.Lost = sum.Enqueued - sum.Delivered
	}
	if len(names) > 1 {
		for i, ws := range names {
			w := loadWorkspace{Name: ws, Enqueued: perWS[i].Load()}
			if site, ok := sites[ws]; ok && sum.Ledger {
				w.addLedger(before.PerWorkspace[site], after.PerWorkspace[site], total)
			}
			sum.Workspaces = append(sum.Workspaces, w)
		}
	}
	return sum, nil
}

// addLedger fills w's ledger fields from the fake's counters for its
// workspace before and after the run.
func (w *loadWorkspace) addLedger(before, after loadLedger, total time.Duration) {
	w.Ledger = true
	w.Delivered = after.Unique - before.Unique
	w.DuplicatesCIO = after.Duplicates - before.Duplicates
	w.Lost = w.Enqueued - w.Delivered
	w.Requests = after.Requests - before.Requests
	if acc := after.Accepted - before.Accepted; acc > 0 {
		w.OpsPerRequest = float64(after.OpsAccepted-before.OpsAccepted) / float64(acc)
	}
	w.RateLimited = after.RateLimited - before.RateLimited
	w.MaxReqPerSec = after.MaxRequestsPerSecond
	w.DeliveredRate = float64(w.Delivered) / total.Seconds()
}

// startLoadFake runs the fake Track API, the fake Pipelines API and
// o.workers workers in-process, serving every workspace in names, each with
// a site id and a Pipelines key of its own at the fakes (sites records the
// key of its ledger: the site id, or for --api pipelines its name) and a
// budget of o.budget req/s.
func startLoadFake(cfg *config.Config, conn asynq.RedisConnOpt, names []string, o loadOptions, sites map[string]string) (func(), ledgerSource, error) {
	creds := map[string]string{}
	cdpKeys := map[string]string{}
	for _, ws := range names {
		sites[ws] = "load-site-" + ws
		creds[sites[ws]] = "load-key-" + ws
		cdpKeys["load-cdp-key-"+ws] = ws
		if o.api == "pipelines" {
			sites[ws] = ws
		}
	}
	srv := fake.NewServer(fake.Options{Credentials: creds, RateLimit: o.budget, RequestLog: -1})
	cdpSrv := cdpfake.NewServer(cdpfake.Options{Keys: cdpKeys, RateLimit: o.budget, RequestLog: -1, MaxUsers: -1})
	var workers []*worker.Worker
	stop := func() {
		for _, w := range workers {
			w.Shutdown()
		}
		srv.Close()
		cdpSrv.Close()
	}
	for range o.workers {
		var wss []worker.Workspace
		for _, ws := range names {
			site := "load-site-" + ws
			client, err := track.NewClient(track.Config{SiteID: site, APIKey: creds[site], BaseURL: srv.URL})
			if err != nil {
				stop()
				return nil, nil, err
			}
			pl, err := cdp.NewClient(cdp.Config{APIKey: "load-cdp-key-" + ws, BaseURL: cdpSrv.URL})
			if err != nil {
				stop()
				return nil, nil, err
			}
			wss = append(wss, worker.Workspace{Name: ws, Sender: client, Pipelines: pl, Limit: ratelimit.Limit{Rate: o.budget}})
		}
		rdb, err := cfg.Redis.UniversalClient()
		if err != nil {
			stop()
			return nil, nil, usageError(err)
		}
		w, err := worker.New(worker.Config{Redis: conn, Client: rdb, KeyPrefix: cfg.KeyPrefix,
			Workspaces:  wss,
			Concurrency: cfg.Worker.Concurrency, Servers: cfg.Worker.DefaultServers,
			Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			err = w.Start()
		}
		if err != nil {
			_ = rdb.Close()
			stop()
			return nil, nil, err
		}
		workers = append(workers, w)
	}
	if o.api == "pipelines" {
		return stop, func(context.Context) (loadLedger, error) { return cdpLedger(cdpSrv.Ledger()), nil }, nil
	}
	return stop, func(context.Context) (loadLedger, error) { return trackLedger(srv.Ledger()), nil }, nil
}

func printLoadSummary(w io.Writer, s loadSummary, asJSON bool) {
	if asJSON {
		_ = writeJSONOut(w, s)
		return
	}
	fmt.Fprintf(w, "ops %d (%s API): enqueued %d, duplicates %d\n", s.Ops, cmp.Or(s.API, "track"), s.Enqueued, s.Duplicates)
	if s.Bulk {
		fmt.Fprintf(w, "enqueue (bulk): %.0f ops/s\n", s.EnqueueRate)
	} else {
		fmt.Fprintf(w, "enqueue: %.0f ops/s, p50 %dµs, p99 %dµs\n", s.EnqueueRate, s.EnqueueP50Micro, s.EnqueueP99Micro)
	}
	fmt.Fprintf(w, "delivered: %.0f ops/s (drained in %.1fs)\n", s.DeliveredRate, s.DrainSeconds)
	if s.Ledger {
		fmt.Fprintf(w, "at the fake: %d unique, %d duplicates, %d lost; %d requests, %.0f ops/request, %d 429s, max %d req in 1 s\n",
			s.Delivered, s.DuplicatesCIO, s.Lost, s.Requests, s.OpsPerRequest, s.RateLimited, s.MaxReqPerSec)
	}
	for _, ws := range s.Workspaces {
		fmt.Fprintf(w, "  workspace %s: enqueued %d", ws.Name, ws.Enqueued)
		if ws.Ledger {
			fmt.Fprintf(w, ", %d unique at %.0f ops/s, %d duplicates, %d lost; %d requests, %.0f ops/request, %d 429s, max %d req in 1 s",
				ws.Delivered, ws.DeliveredRate, ws.DuplicatesCIO, ws.Lost, ws.Requests, ws.OpsPerRequest, ws.RateLimited, ws.MaxReqPerSec)
		}
		fmt.Fprintln(w)
	}
}
