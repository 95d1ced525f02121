package faults_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cioq/cioq/track/fake"
	"github.com/cioq/cioq/worker"
)

// row is one line of the fault table.
type row struct {
	Num      int
	Scenario string
	// Sent counts ops cioq took (queued or spooled).
	Sent int
	// Delivered counts distinct sent ops the fake accepted.
	Delivered int
	// Duplicates counts accepted ops Customer.io would apply twice (the
	// ledger's DuplicateOps).
	Duplicates int64
	// Repeated counts events accepted again under the same event id:
	// Customer.io drops them, so they are not duplicates.
	Repeated int64
	// Lost counts sent ops neither delivered, dead-lettered nor obsolete.
	Lost int
	// Obsolete counts sent ops not delivered because a later delete or
	// suppress of their person made them obsolete (cioq drops them).
	Obsolete int
	// DeadLettered counts sent ops in cioq's dead-letter store.
	DeadLettered int
	// Archived counts tasks asynq archived (only an undecodable payload is
	// left to asynq's archive: cioq dead-letters ops whose retries run out
	// itself), so any is a finding.
	Archived int
	// WrongState counts persons whose state at the fake is not the one the
	// ops cioq took, applied in the order it took them, give.
	WrongState int
	// RateLimited counts 429 answers.
	RateLimited int64
	// MaxPerSecond is the most accepted requests in any one second.
	MaxPerSecond int
	// Budget and Burst are the fleet's CIOQ_RATE_LIMIT and its limiter
	// burst; zero means the suite's budget and budgetBurst.
	Budget, Burst int
	// Drain is the time from the end of the fault (or the last enqueue,
	// when later) to the last delivery.
	Drain time.Duration
	// Note says what else the scenario showed, and why a non-zero count is
	// expected.
	Note string
	// Failed marks a scenario whose test failed.
	Failed bool

	lostSeqs    []string
	wrongStates []string
	ledger      fake.Ledger
}

// wrongStates compares, person by person, what the fake holds with what the
// feed's ops (but the dead-lettered ones) give when applied in the order
// cioq took them: existence, suppression and every attribute.
func (c *cluster) wrongStates(f *feed, dls map[string]worker.DeadLetter) (int, []string) {
	skip := make(map[string]bool, len(dls))
	for id := range dls {
		skip[id] = true
	}
	want := fake.Expect(f.sentOps(skip), time.Now())
	got := c.fake.People(siteID)
	var bad []string
	for key, w := range want {
		g := got[key]
		if g.Exists != w.Exists || g.Suppressed != w.Suppressed || fmt.Sprint(g.Attributes) != fmt.Sprint(w.Attributes) {
			bad = append(bad, fmt.Sprintf("%s: want %v %v, got %v %v", key, w.Exists, w.Attributes, g.Exists, g.Attributes))
		}
	}
	sort.Strings(bad)
	return len(bad), bad
}

func (r row) budget() int { return cmp.Or(r.Budget, budget) }
func (r row) burst() int  { return cmp.Or(r.Burst, budgetBurst) }

// delivered counts, per seq of this run, how often the fake accepted it,
// from its request log; it also reports whether the log kept every
// accepted op.
func (c *cluster) delivered(run string) (map[string]int, bool) {
	l := c.fake.Ledger()
	out := map[string]int{}
	var ops int64
	for _, r := range c.fake.Requests() {
		if r.Status < 200 || r.Status > 299 {
			continue
		}
		ops += int64(len(r.Ops))
		for _, op := range r.Ops {
			if s, ok := op.Attributes["seq"].(string); ok && strings.HasPrefix(s, run+"-") {
				out[s]++
			}
		}
	}
	return out, ops == l.OpsAccepted
}

// deadLettered returns the op ids in the dead-letter store.
func (c *cluster) deadLettered() (map[string]worker.DeadLetter, error) {
	dls, err := c.dlq.List(context.Background(), workspace, worker.DeadLetterFilter{Limit: 100_000})
	if err != nil {
		return nil, err
	}
	out := make(map[string]worker.DeadLetter, len(dls))
	for _, d := range dls {
		out[d.OpID] = d
	}
	return out, nil
}

// settle waits until every op the feed sent is delivered or dead-lettered
// and the queues hold nothing open, or until the queues have held nothing
// open for 5 s (nothing can arrive any more), or timeout; then it counts.
// recovered is when the fault ended: the drain time runs from it, or from
// the last enqueue when that came later.
func (c *cluster) settle(f *feed, recovered time.Time, timeout time.Duration) row {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var emptySince time.Time
	for {
		open, _, ok := c.queued()
		if ok && open == 0 {
			if emptySince.IsZero() {
				emptySince = time.Now()
			}
			if c.complete(f) || time.Since(emptySince) > 5*time.Second {
				break
			}
		} else {
			emptySince = time.Time{}
		}
		if time.Now().After(deadline) {
			c.t.Errorf("not settled after %s: %d tasks still open", timeout, open)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	return c.count(f, recovered)
}

// complete reports whether every sent op is delivered or dead-lettered.
func (c *cluster) complete(f *feed) bool {
	got, _ := c.delivered(f.run)
	dls, err := c.deadLettered()
	if err != nil {
		return false
	}
	obsolete := f.obsolete()
	for s := range f.sentSeqs() {
		if got[s] == 0 && !obsolete[s] {
			if _, ok := dls[s]; !ok {
				return false
			}
		}
	}
	return true
}

// count builds the row from the fake's ledger and log, the dead-letter
// store and asynq's archive.
func (c *cluster) count(f *feed, recovered time.Time) row {
	c.t.Helper()
	l := c.fake.Ledger()
	got, complete := c.delivered(f.run)
	if !complete {
		c.t.Errorf("the fake's request log dropped requests: raise RequestLog/RequestLogOps")
	}
	dls, err := c.deadLettered()
	if err != nil {
		c.t.Errorf("dead letters: %v", err)
	}
	_, archived, _ := c.queued()
	r := row{
		Duplicates: l.DuplicateOps, Repeated: l.RepeatedIDs, RateLimited: l.RateLimited,
		MaxPerSecond: l.MaxRequestsPerSecond, ledger: l, Archived: archived,
	}
	obsolete := f.obsolete()
	for s := range f.sentSeqs() {
		r.Sent++
		switch _, dead := dls[s]; {
		case got[s] > 0:
			r.Delivered++
		case dead:
			r.DeadLettered++
		case obsolete[s]:
			r.Obsolete++
		default:
			r.Lost++
			r.lostSeqs = append(r.lostSeqs, s)
		}
	}
	sort.Strings(r.lostSeqs)
	r.WrongState, r.wrongStates = c.wrongStates(f, dls)
	from := recovered
	if last := f.lastSent(); last.After(from) {
		from = last
	}
	if l.LastAccept.After(from) {
		r.Drain = l.LastAccept.Sub(from)
	}
	return r
}

// tableHeader is the fault table's header, in Markdown.
const tableHeader = `| # | scenario | ops sent | delivered unique | duplicates | repeated ids (dropped by CIO) | lost | dead-lettered | persons not in their last state | 429s | max req in 1 s (budget) | drain after recovery | result |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
`

// printTable writes the rows as a Markdown table, then their notes.
func printTable(w io.Writer, rows []row) {
	sort.Slice(rows, func(i, j int) bool { return rows[i].Num < rows[j].Num })
	fmt.Fprint(w, tableHeader)
	for _, r := range rows {
		result := "pass"
		if r.Failed {
			result = "**FAIL**"
		}
		dead := strconv.Itoa(r.DeadLettered)
		if r.Archived > 0 {
			dead += fmt.Sprintf(" + %d archived", r.Archived)
		}
		fmt.Fprintf(w, "| %d | %s | %d | %d | %d | %d | %d | %s | %d | %d | %d (%d+%d) | %s | %s |\n",
			r.Num, r.Scenario, r.Sent, r.Delivered, r.Duplicates, r.Repeated, r.Lost, dead, r.WrongState,
			r.RateLimited, r.MaxPerSecond, r.budget(), r.burst(), r.Drain.Round(100*time.Millisecond), result)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(w, "- %d. %s: %s\n", r.Num, r.Scenario, r.Note)
		}
	}
}
