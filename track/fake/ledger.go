package fake

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/cioq/cioq/track"
)

// WorkspaceLedger counts what the fake did with the requests it received, as
// Customer.io would suffer them. Ops count only when actually accepted: not
// ops rejected with a batch_index error, nor ops of requests answered 4xx,
// 429 or 5xx, or dropped without an answer.
//
// Every accepted op adds one to exactly one of UniqueOps, DuplicateOps and
// RepeatedIDs, so OpsAccepted = UniqueOps + DuplicateOps + RepeatedIDs.
type WorkspaceLedger struct {
	// Requests counts every Track API request received (not /_fake/ calls).
	Requests int64 `json:"requests"`
	// Accepted counts requests answered 2xx (200 or 207).
	Accepted int64 `json:"accepted"`
	// RateLimited counts requests answered 429.
	RateLimited int64 `json:"rate_limited"`
	// ServerErrors counts requests answered 5xx.
	ServerErrors int64 `json:"server_errors"`
	// ClientErrors counts requests answered 4xx other than 429.
	ClientErrors int64 `json:"client_errors"`
	// Closed counts requests whose connection the CloseConnection fault
	// closed without an answer.
	Closed int64 `json:"closed"`
	// Canceled counts requests the client gave up on while the Latency fault
	// held them; they got no answer.
	Canceled int64 `json:"canceled"`

	// OpsAccepted counts ops accepted in 2xx answers, repeats included.
	OpsAccepted int64 `json:"ops_accepted"`
	// OpsRejected counts ops refused one by one: batch_index errors, and v1
	// or entity calls answered 400 for their op.
	OpsRejected int64 `json:"ops_rejected"`
	// OpsByAction counts accepted ops by v2 action.
	OpsByAction map[string]int64 `json:"ops_by_action"`
	// UniqueOps counts accepted ops seen for the first time: an event
	// (event, page, screen) whose id and content are both new, or any other
	// op whose content is new.
	UniqueOps int64 `json:"unique_ops"`
	// DuplicateOps counts accepted ops Customer.io would apply twice: an
	// event whose content (identifiers, action, name, attributes, timestamp)
	// was seen before under another id or with no id, or any other op whose
	// whole content was seen before.
	DuplicateOps int64 `json:"duplicate_ops"`
	// RepeatedIDs counts accepted events whose id was seen before: Customer.io
	// drops them, so they are not duplicates.
	RepeatedIDs int64 `json:"repeated_ids"`

	// MaxRequestsPerSecond is the most requests accepted (2xx) in any sliding
	// one-second window. In Ledger it is the largest of any one workspace.
	MaxRequestsPerSecond int `json:"max_requests_per_second"`
	// MaxReceivedPerSecond is the most requests received, whatever their
	// answer (429s included), in any sliding one-second window: what a
	// sender put on the wire. In Ledger, the largest of any one workspace.
	MaxReceivedPerSecond int `json:"max_received_per_second"`
	// MaxOpsPerRequest is the largest number of ops in one accepted request.
	MaxOpsPerRequest int `json:"max_ops_per_request"`
	// FirstAccept and LastAccept are the times of the first and the last
	// 2xx answer; zero when none.
	FirstAccept time.Time `json:"first_accept"`
	LastAccept  time.Time `json:"last_accept"`
}

// Ledger is a snapshot of the fake's counters: the totals over every
// workspace, and the same counters by site id. Requests that named no site
// id (no Basic auth) count in the totals only.
type Ledger struct {
	WorkspaceLedger
	// PerWorkspace holds the counters of each site id seen.
	PerWorkspace map[string]WorkspaceLedger `json:"per_workspace"`
}

// opKey is a 16-byte SHA-256 prefix naming an op's content or an event id
// within one workspace: the ledger keeps these, not the ops.
type opKey [16]byte

// keys holds the precomputed ledger keys of one accepted op.
type keys struct {
	action  string
	content opKey
	id      opKey
	hasID   bool
}

// ledgerKeys computes the keys of op for workspace site. For an event the
// content leaves the id out; for any other op the content is the whole op.
func ledgerKeys(site string, op *track.Op) keys {
	c := *op
	c.Type = "person"
	k := keys{action: string(op.Action)}
	if op.Action.IsEvent() {
		c.ID = ""
		if op.ID != "" {
			k.id, k.hasID = hashKey(site, 'i', []byte(op.ID)), true
		}
	}
	b, err := json.Marshal(&c) // maps are encoded with sorted keys: canonical
	if err != nil {
		// A validated op always encodes; fall back to something unique.
		b = fmt.Appendf(nil, "%p", op)
	}
	k.content = hashKey(site, 'c', b)
	return k
}

func hashKey(site string, kind byte, data []byte) opKey {
	h := sha256.New()
	h.Write([]byte(site))
	h.Write([]byte{0, kind, 0})
	h.Write(data)
	var k opKey
	copy(k[:], h.Sum(nil))
	return k
}

// window finds the most events in any sliding one-second window.
type window struct {
	times []time.Time
	max   int
}

func (w *window) add(now time.Time) int {
	cut := now.Add(-time.Second)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	w.times = append(w.times[i:], now)
	w.max = max(w.max, len(w.times))
	return w.max
}

// wsState is one workspace's live counters.
type wsState struct {
	l        WorkspaceLedger
	accepts  window
	received window
}

// ledger is the live state behind Ledger; guarded by Server.mu.
type ledger struct {
	total WorkspaceLedger
	ws    map[string]*wsState
	seen  map[opKey]struct{}
}

func newLedger() *ledger {
	return &ledger{
		total: WorkspaceLedger{OpsByAction: map[string]int64{}},
		ws:    map[string]*wsState{},
		seen:  map[opKey]struct{}{},
	}
}

// outcome is what one request did, as the ledger counts it.
type outcome struct {
	site     string
	status   int // 0: no answer
	closed   bool
	canceled bool
	nOps     int    // ops in the request (accepted requests)
	accepted []keys // accepted ops
	rejected int
}

func (l *ledger) record(now time.Time, o outcome) {
	var ws *wsState
	if o.site != "" {
		ws = l.ws[o.site]
		if ws == nil {
			ws = &wsState{l: WorkspaceLedger{OpsByAction: map[string]int64{}}}
			l.ws[o.site] = ws
		}
	}
	each := func(f func(c *WorkspaceLedger)) {
		f(&l.total)
		if ws != nil {
			f(&ws.l)
		}
	}
	each(func(c *WorkspaceLedger) {
		c.Requests++
		c.OpsRejected += int64(o.rejected)
		switch {
		case o.closed:
			c.Closed++
		case o.canceled:
			c.Canceled++
		case o.status == 429:
			c.RateLimited++
		case o.status >= 500:
			c.ServerErrors++
		case o.status >= 400:
			c.ClientErrors++
		case o.status >= 200 && o.status < 300:
			c.Accepted++
			c.MaxOpsPerRequest = max(c.MaxOpsPerRequest, o.nOps)
			if c.FirstAccept.IsZero() {
				c.FirstAccept = now
			}
			c.LastAccept = now
		}
	})
	if ws != nil {
		n := ws.received.add(now)
		ws.l.MaxReceivedPerSecond = n
		l.total.MaxReceivedPerSecond = max(l.total.MaxReceivedPerSecond, n)
		if o.status >= 200 && o.status < 300 {
			n := ws.accepts.add(now)
			ws.l.MaxRequestsPerSecond = n
			l.total.MaxRequestsPerSecond = max(l.total.MaxRequestsPerSecond, n)
		}
	}
	for _, k := range o.accepted {
		l.accept(ws, k)
	}
}

// accept counts one accepted op as unique, duplicate or repeated id.
func (l *ledger) accept(ws *wsState, k keys) {
	_, seenContent := l.seen[k.content]
	repeatedID := false
	if k.hasID {
		_, repeatedID = l.seen[k.id]
		l.seen[k.id] = struct{}{}
	}
	l.seen[k.content] = struct{}{}
	count := func(c *WorkspaceLedger) {
		c.OpsAccepted++
		c.OpsByAction[k.action]++
		switch {
		case repeatedID:
			c.RepeatedIDs++
		case seenContent:
			c.DuplicateOps++
		default:
			c.UniqueOps++
		}
	}
	count(&l.total)
	if ws != nil {
		count(&ws.l)
	}
}

// snapshot returns a deep copy as a Ledger.
func (l *ledger) snapshot() Ledger {
	out := Ledger{WorkspaceLedger: l.total, PerWorkspace: make(map[string]WorkspaceLedger, len(l.ws))}
	out.OpsByAction = maps.Clone(l.total.OpsByAction)
	for site, ws := range l.ws {
		c := ws.l
		c.OpsByAction = maps.Clone(ws.l.OpsByAction)
		out.PerWorkspace[site] = c
	}
	return out
}
