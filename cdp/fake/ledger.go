package fake

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"time"

	"github.com/cioq/cioq/cdp"
)

// WorkspaceLedger counts what the fake did with the requests it received,
// as Customer.io would suffer them. Calls count only when actually
// accepted: not the calls of requests answered 4xx, 429 or 5xx, dropped
// without an answer, or dropped by permissive mode.
//
// Every accepted call adds one to exactly one of UniqueCalls,
// DuplicateCalls and ResentCalls, so CallsAccepted = UniqueCalls +
// DuplicateCalls + ResentCalls.
type WorkspaceLedger struct {
	// Requests counts every Pipelines API request received (not control
	// calls).
	Requests int64 `json:"requests"`
	// Accepted counts requests answered 2xx whose calls were processed.
	Accepted int64 `json:"accepted"`
	// Permissive counts requests answered in permissive mode (without
	// X-Strict-Mode: 1 under StrictByHeader). cioq sends strict mode on
	// every request, so its senders keep this at zero.
	Permissive int64 `json:"permissive"`
	// Dropped counts requests answered 200 in permissive mode although some
	// or all of their calls were not processed (a wrong key, a body over a
	// limit, malformed JSON, an invalid call): the silent loss strict mode
	// exists to avoid.
	Dropped int64 `json:"dropped"`
	// RateLimited counts requests answered 429.
	RateLimited int64 `json:"rate_limited"`
	// ServerErrors counts requests answered 5xx.
	ServerErrors int64 `json:"server_errors"`
	// ClientErrors counts requests answered 4xx other than 429.
	ClientErrors int64 `json:"client_errors"`
	// Closed counts requests whose connection the CloseConnection fault
	// closed without an answer.
	Closed int64 `json:"closed"`
	// Canceled counts requests the client gave up on while the Latency
	// fault held them.
	Canceled int64 `json:"canceled"`

	// CallsAccepted counts calls accepted, resends included.
	CallsAccepted int64 `json:"calls_accepted"`
	// CallsRejected counts calls refused in strict mode (the 400 answers'
	// invalid calls, and the valid calls of such a batch unless
	// Faults.AcceptValidOnReject).
	CallsRejected int64 `json:"calls_rejected"`
	// CallsDropped counts calls dropped in permissive mode: answered 200,
	// never processed.
	CallsDropped int64 `json:"calls_dropped"`
	// CallsByKind counts accepted calls by type, a semantic event by its
	// name ("identify", "track", "User Deleted", ...).
	CallsByKind map[string]int64 `json:"calls_by_kind"`
	// UniqueCalls counts accepted calls seen for the first time: a new
	// messageId (or none) and new content.
	UniqueCalls int64 `json:"unique_calls"`
	// DuplicateCalls counts accepted calls Customer.io would apply twice:
	// the content (everything but messageId, sentAt and receivedAt) was
	// accepted before under another messageId, or without one.
	DuplicateCalls int64 `json:"duplicate_calls"`
	// ResentCalls counts accepted calls whose messageId was accepted
	// before: Customer.io drops them, so they are not duplicates.
	ResentCalls int64 `json:"resent_calls"`

	// MaxRequestsPerSecond is the most requests accepted (2xx) in any
	// sliding one-second window. In Ledger, the largest of any workspace.
	MaxRequestsPerSecond int `json:"max_requests_per_second"`
	// MaxReceivedPerSecond is the most requests received, whatever their
	// answer, in any sliding one-second window. In Ledger, the largest of
	// any workspace.
	MaxReceivedPerSecond int `json:"max_received_per_second"`
	// MaxCallsPerRequest is the most calls in one accepted request.
	MaxCallsPerRequest int `json:"max_calls_per_request"`
	// FirstAccept and LastAccept are the times of the first and the last
	// accepted request; zero when none.
	FirstAccept time.Time `json:"first_accept"`
	LastAccept  time.Time `json:"last_accept"`
}

// Ledger is a snapshot of the fake's counters: the totals over every
// workspace, and the same counters by workspace name. Requests without a
// valid API key count in the totals only.
type Ledger struct {
	WorkspaceLedger
	// PerWorkspace holds the counters of each workspace seen.
	PerWorkspace map[string]WorkspaceLedger `json:"per_workspace"`
	// Users is how many people have a final state (see Server.User);
	// UsersUntracked counts calls about people past Options.MaxUsers.
	Users          int   `json:"users"`
	UsersUntracked int64 `json:"users_untracked"`
}

// callKey is a 16-byte SHA-256 prefix naming a call's content or messageId
// within one workspace: the ledger keeps these, not the calls.
type callKey [16]byte

// keys holds the ledger keys of one accepted call.
type keys struct {
	kind    string
	content callKey
	id      callKey
	hasID   bool
}

// kind names a call for CallsByKind.
func kind(c *cdp.Call) string {
	if c.Type == cdp.TypeTrack && cdp.IsSemantic(c.Event) {
		return c.Event
	}
	return string(c.Type)
}

// ledgerKeys computes the keys of c in workspace ws.
func ledgerKeys(ws string, c *cdp.Call) keys {
	k := keys{kind: kind(c)}
	if c.MessageID != "" {
		k.id, k.hasID = hashKey(ws, 'i', []byte(c.MessageID)), true
	}
	content := c.Clone()
	content.MessageID = ""
	delete(content.Extra, "sentAt")
	delete(content.Extra, "receivedAt")
	b, err := content.MarshalJSON() // sorted keys: canonical
	if err != nil {
		b = fmt.Appendf(nil, "%p", c) // a validated call always encodes
	}
	k.content = hashKey(ws, 'c', b)
	return k
}

func hashKey(ws string, kind byte, data []byte) callKey {
	h := sha256.New()
	h.Write([]byte(ws))
	h.Write([]byte{0, kind, 0})
	h.Write(data)
	var k callKey
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

// wsState is one workspace's live counters and people.
type wsState struct {
	l        WorkspaceLedger
	accepts  window
	received window
	users    map[string]*userState
}

// ledger is the live state behind Ledger; guarded by Server.mu.
type ledger struct {
	total          WorkspaceLedger
	ws             map[string]*wsState
	seen           map[callKey]struct{}
	maxUsers       int
	nUsers         int
	usersUntracked int64
}

func newLedger(maxUsers int) *ledger {
	return &ledger{
		total:    WorkspaceLedger{CallsByKind: map[string]int64{}},
		ws:       map[string]*wsState{},
		seen:     map[callKey]struct{}{},
		maxUsers: maxUsers,
	}
}

// acceptedCall is one call accepted by a request, with its time.
type acceptedCall struct {
	keys keys
	call *cdp.Call
	at   time.Time // the call's timestamp, else when it was received
}

// outcome is what one request did, as the ledger counts it.
type outcome struct {
	ws           string
	strict       bool
	status       int // 0: no answer
	closed       bool
	canceled     bool
	dropped      bool // permissive: answered 200 without processing everything
	nCalls       int  // calls in an accepted request
	accepted     []acceptedCall
	rejected     int
	droppedCalls int
}

func (l *ledger) record(now time.Time, o outcome) {
	var ws *wsState
	if o.ws != "" {
		ws = l.ws[o.ws]
		if ws == nil {
			ws = &wsState{l: WorkspaceLedger{CallsByKind: map[string]int64{}}, users: map[string]*userState{}}
			l.ws[o.ws] = ws
		}
	}
	each := func(f func(c *WorkspaceLedger)) {
		f(&l.total)
		if ws != nil {
			f(&ws.l)
		}
	}
	ok := o.status >= 200 && o.status < 300
	each(func(c *WorkspaceLedger) {
		c.Requests++
		c.CallsRejected += int64(o.rejected)
		c.CallsDropped += int64(o.droppedCalls)
		if !o.strict && o.status != 0 {
			c.Permissive++
		}
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
		case ok && o.dropped:
			c.Dropped++
		case ok:
			c.Accepted++
			c.MaxCallsPerRequest = max(c.MaxCallsPerRequest, o.nCalls)
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
		if ok && !o.dropped {
			n := ws.accepts.add(now)
			ws.l.MaxRequestsPerSecond = n
			l.total.MaxRequestsPerSecond = max(l.total.MaxRequestsPerSecond, n)
		}
	}
	for _, a := range o.accepted {
		l.accept(ws, a)
	}
}

// accept counts one accepted call as unique, duplicate or resent, and
// applies it to its person unless it is a resend.
func (l *ledger) accept(ws *wsState, a acceptedCall) {
	k := a.keys
	resent := false
	if k.hasID {
		_, resent = l.seen[k.id]
		l.seen[k.id] = struct{}{}
	}
	_, seenContent := l.seen[k.content]
	l.seen[k.content] = struct{}{}
	count := func(c *WorkspaceLedger) {
		c.CallsAccepted++
		c.CallsByKind[k.kind]++
		switch {
		case resent:
			c.ResentCalls++
		case seenContent:
			c.DuplicateCalls++
		default:
			c.UniqueCalls++
		}
	}
	count(&l.total)
	if ws == nil {
		return
	}
	count(&ws.l)
	if !resent {
		l.apply(ws, a)
	}
}

// apply changes the state of the call's person.
func (l *ledger) apply(ws *wsState, a acceptedCall) {
	key := a.call.Person().Key()
	if key == "" || (a.call.Type == cdp.TypeTrack && a.call.Event == cdp.EventObjectDeleted) {
		return
	}
	u := ws.users[key]
	if u == nil {
		if l.nUsers >= l.maxUsers {
			l.usersUntracked++
			return
		}
		u = newUserState()
		ws.users[key] = u
		l.nUsers++
	}
	u.apply(a.call, a.at)
}

func (l *ledger) user(ws, key string) (UserState, bool) {
	w := l.ws[ws]
	if w == nil || w.users[key] == nil {
		return UserState{}, false
	}
	return w.users[key].snapshot(), true
}

func (l *ledger) users(ws string) map[string]UserState {
	out := map[string]UserState{}
	if w := l.ws[ws]; w != nil {
		for k, u := range w.users {
			out[k] = u.snapshot()
		}
	}
	return out
}

// snapshot returns a deep copy as a Ledger.
func (l *ledger) snapshot() Ledger {
	out := Ledger{
		WorkspaceLedger: l.total, PerWorkspace: make(map[string]WorkspaceLedger, len(l.ws)),
		Users: l.nUsers, UsersUntracked: l.usersUntracked,
	}
	out.CallsByKind = maps.Clone(l.total.CallsByKind)
	for name, ws := range l.ws {
		c := ws.l
		c.CallsByKind = maps.Clone(ws.l.CallsByKind)
		out.PerWorkspace[name] = c
	}
	return out
}
