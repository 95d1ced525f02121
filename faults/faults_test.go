package faults_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track/fake"
)

// scenario is one fault the suite provokes.
type scenario struct {
	num  int
	name string
	// id names the subtest (CIOQ_FAULTS takes the number).
	id string
	// long scenarios run only when CIOQ_FAULTS selects them (make faults).
	long bool
	// wantDead is how many ops the scenario dead-letters on purpose; -1
	// means any number (every one must be in cioq's store, none archived).
	wantDead int
	run      func(t *testing.T, bin string) row
	// runBase, set instead of run, also gets the baseline binary ("" when
	// CIOQ_FAULTS_BASELINE is unset) to measure in the same run.
	runBase func(t *testing.T, bin, base string) row
}

func scenarios() []scenario {
	return []scenario{
		{num: 1, id: "CustomerioDown", name: "Customer.io down 60 s (503), then up", long: true, run: scenarioDown},
		{num: 2, id: "RandomServerErrors", name: "30% of requests answer 500/502/503/504", run: scenarioErrorRate},
		{num: 3, id: "RateLimitStorm", name: "429 storm: real limit a quarter of the budget", run: scenarioStorm},
		{num: 4, id: "SlowAnswers", name: "answers after 2 s (> 1 s client timeout) for 30 s", long: true, run: scenarioSlow},
		{num: 5, id: "ConnectionReset", name: "connection reset mid-request (30%)", run: scenarioReset},
		{num: 6, id: "RedisRestart", name: "Redis SIGKILL + restart (AOF everysec) while ops flow", run: scenarioRedisRestart},
		{num: 7, id: "WorkerKilled", name: "a worker SIGKILLed mid-batch", long: true, run: scenarioKillWorker},
		{num: 8, id: "WorkersStopped", name: "all workers stopped 30 s, producer keeps enqueuing", long: true, run: scenarioWorkersStopped},
		{num: 9, id: "ProducerSpool", name: "producer with Redis down 20 s (spool)", long: true, run: scenarioSpool},
		{num: 10, id: "PoisonInput", name: "poison input", wantDead: 1, run: scenarioPoison},
		{num: 11, id: "BadCredentials", name: "bad credentials (401)", long: true, run: scenarioUnauthorized},
		{num: 12, id: "RetriesRunOut", name: "retry budget 1: a 503 outage, then a 429 storm", wantDead: -1, run: scenarioRetriesRunOut},
		{num: 13, id: "IngestRedisRestart", name: "ingest: Redis SIGKILL + restart while clients post batches and retry", long: true, run: scenarioIngestRedisRestart},
		{num: 14, id: "PersonOrder", name: "deletes, suppresses, unsuppresses and updates of 40 people under 30% 5xx", run: scenarioPersonOrder},
		{num: 15, id: "RealLimitDrops16x", name: "real limit 80 → 5 req/s for 15 s under load, then back", long: true, runBase: scenarioRateDrop16},
		{num: 16, id: "RealLimitDrops20x", name: "real limit 40 → 2 req/s for 15 s under load, then back", long: true, runBase: scenarioRateDrop20},
		{num: 17, id: "RealLimitAtHalfBudget", name: "real limit at half the budget (40 of 80 req/s) for 60 s", long: true, runBase: scenarioRateHalf},
	}
}

// baselineRev is CIOQ_FAULTS_BASELINE: a git revision whose cioq the
// adaptive-rate scenarios also run, for comparison; "" for none.
func baselineRev() string { return strings.TrimSpace(os.Getenv("CIOQ_FAULTS_BASELINE")) }

// selected reports whether CIOQ_FAULTS picks scenario sc: "all", a comma
// list of numbers, or unset for the short scenarios only.
func selected(sel string, sc scenario) bool {
	switch sel = strings.TrimSpace(sel); sel {
	case "":
		return !sc.long
	case "all":
		return true
	}
	return slices.Contains(strings.Split(sel, ","), strconv.Itoa(sc.num))
}

// TestFaults runs the selected scenarios one after the other (each starts
// its own Redis, fake and workers; the machine's cores are the limit) and
// prints the fault table at the end. Set CIOQ_FAULTS_TABLE=FILE to also
// write it to FILE.
func TestFaults(t *testing.T) {
	sel := os.Getenv("CIOQ_FAULTS")
	var run []scenario
	for _, sc := range scenarios() {
		if selected(sel, sc) {
			run = append(run, sc)
		}
	}
	if len(run) == 0 {
		t.Skipf("CIOQ_FAULTS=%q selects no scenario", sel)
	}
	bin := buildCioq(t)
	base := ""
	if rev := baselineRev(); rev != "" && slices.ContainsFunc(run, func(sc scenario) bool { return sc.runBase != nil }) {
		base = buildBaseline(t, rev)
	}
	var rows []row
	for _, sc := range run {
		t.Run(fmt.Sprintf("%02d_%s", sc.num, sc.id), func(t *testing.T) {
			start := time.Now()
			r := row{Num: sc.num, Scenario: sc.name, Failed: true, Note: "the scenario stopped before counting"}
			defer func() {
				r.Num, r.Scenario, r.Failed = sc.num, sc.name, t.Failed()
				rows = append(rows, r)
				t.Logf("scenario %d took %s", sc.num, time.Since(start).Round(time.Second))
			}()
			if sc.runBase != nil {
				r = sc.runBase(t, bin, base)
			} else {
				r = sc.run(t, bin)
			}
			requireOutcome(t, r, sc.wantDead)
		})
	}
	var buf bytes.Buffer
	printTable(&buf, rows)
	os.Stdout.Write(buf.Bytes())
	if path := os.Getenv("CIOQ_FAULTS_TABLE"); path != "" {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
}

// requireOutcome fails the scenario on any loss, any duplicate, a dead
// letter it did not ask for, or a fleet over its budget.
func requireOutcome(t *testing.T, r row, wantDead int) {
	t.Helper()
	if r.Lost != 0 {
		t.Errorf("%d ops lost, e.g. %v", r.Lost, r.lostSeqs[:min(len(r.lostSeqs), 10)])
	}
	if r.Duplicates != 0 {
		t.Errorf("%d duplicate ops at Customer.io", r.Duplicates)
	}
	if r.WrongState != 0 {
		t.Errorf("%d persons do not hold the state of the last op enqueued for them, e.g. %v", r.WrongState,
			r.wrongStates[:min(len(r.wrongStates), 5)])
	}
	if r.Archived != 0 {
		t.Errorf("%d tasks archived by asynq: their ops are out of cioq's dead-letter store", r.Archived)
	}
	if wantDead >= 0 && r.DeadLettered != wantDead {
		t.Errorf("%d ops dead-lettered or archived, want %d", r.DeadLettered, wantDead)
	}
	if r.MaxPerSecond > r.budget()+r.burst() {
		t.Errorf("%d requests accepted in one second, budget %d (burst %d)", r.MaxPerSecond, r.budget(), r.burst())
	}
	if r.Sent == 0 || r.Sent != r.Delivered+r.DeadLettered+r.Obsolete+r.Lost {
		t.Errorf("counts do not add up: sent %d, delivered %d, dead %d, obsolete %d, lost %d",
			r.Sent, r.Delivered, r.DeadLettered, r.Obsolete, r.Lost)
	}
}

// setFaults changes the fake's faults.
func setFaults(t *testing.T, srv *fake.Server, f fake.Faults) {
	t.Helper()
	require.NoError(t, srv.SetFaults(f))
}
