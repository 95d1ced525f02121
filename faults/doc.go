// Package faults is cioq's fault suite: its tests provoke every failure the
// design names and count, op by op, that nothing is lost and nothing is
// delivered twice.
//
// Each scenario runs real processes: a redis-server of its own (with AOF
// where the scenario kills Redis), two or three `cioq worker` processes
// built from this tree, the producer (in the test process) or `cioq
// import`, and the fake Track API (track/fake, in the test process, so it
// outlives every worker) whose ledger and request log say what Customer.io
// would have received. Every op carries a unique sequence attribute; the
// suite compares the set it enqueued with the set the fake accepted and the
// dead-letter store holds, and prints one row per scenario: ops sent,
// delivered unique, duplicates, lost, dead-lettered, 429s, most accepted
// requests in one second against the budget, and the time to drain after
// the fault ended.
//
// The package holds no code outside its tests. Run it with
//
//	make faults                         # every scenario, CIOQ_FAULTS=all
//	CIOQ_FAULTS=6,7 go test -v ./faults # some scenarios, by number
//	go test ./faults                    # the short scenarios (make test)
//
// docs/FAULTS.md holds the table of a full run and what each scenario
// proves.
package faults
