package electrumsim

import (
	"hash/maphash"
	"sort"
	"sync"
	"time"
)

// State is where a payment stands at the partner: what happened to the
// customer's funds.
type State string

// The payment states of the ledger.
const (
	// StateReserved: approved, funds held, waiting for an advice.
	StateReserved State = "reserved"
	// StateDeclined: refused or failed; nothing was reserved.
	StateDeclined State = "declined"
	// StateCaptured: confirmed; the funds were taken.
	StateCaptured State = "captured"
	// StateReleased: reversed; the funds went back to the customer.
	StateReleased State = "released"
)

// Advice kinds, as AdviceEntry.Kind names them.
const (
	KindConfirmation = "confirmation"
	KindReversal     = "reversal"
)

// Ledger is what the sim, as a partner, has seen and done: every payment
// request, every confirmation and reversal, every scan its customer app sent,
// and totals. Crash and load tests read it to prove that every effect
// happened exactly once.
type Ledger struct {
	Payments []PaymentEntry `json:"payments"` // in order of arrival
	Advices  []AdviceEntry  `json:"advices"`  // in order of first arrival
	Scans    []ScanEntry    `json:"scans"`    // in order of sending
	Totals   Totals         `json:"totals"`
}

// PaymentEntry is one payment request id the sim received.
type PaymentEntry struct {
	ID        string `json:"id"`
	TranID    string `json:"tranId"`
	Amount    int64  `json:"amount"` // requestAmount, minor units
	Currency  string `json:"currency"`
	Behaviour string `json:"behaviour"` // Name of the behaviour row the amount selected
	// Fault is the injected fault that answered instead of the behaviour
	// row; the payment is then declined (nothing reserved).
	Fault string `json:"fault,omitempty"`
	// Status is the HTTP status the sim answered; 0 when it answered none
	// (connection dropped, client gone before a late answer, sim closed).
	Status int   `json:"status"`
	State  State `json:"state"`
	// PartnerPaymentToken is the token the switch passed on, masked to its
	// last four characters.
	PartnerPaymentToken string `json:"partnerPaymentToken,omitempty"`
	// Reference is the sim's reference in the WALLET tender of an approval.
	Reference string `json:"reference,omitempty"`
	// Deliveries counts requests that arrived with this id; every one after
	// the first was answered 400 DUPLICATE_RECORD.
	Deliveries int `json:"deliveries"`
	// AdviceDeliveries counts the deliveries of confirmations and reversals
	// of this payment, repeats included and those answered by an injected
	// fault excluded.
	AdviceDeliveries int       `json:"adviceDeliveries"`
	ReceivedAt       time.Time `json:"receivedAt"`
	// AnsweredAt is when the answer was written; zero when none was.
	AnsweredAt time.Time `json:"answeredAt,omitzero"`
	// Note says why an answer is missing, when it is.
	Note string `json:"note,omitempty"`
}

// AdviceEntry is one confirmation or reversal id the sim received.
type AdviceEntry struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"` // KindConfirmation or KindReversal
	RequestID      string    `json:"requestId"`
	TranID         string    `json:"tranId,omitempty"`
	ReversalReason string    `json:"reversalReason,omitempty"`
	FirstReceived  time.Time `json:"firstReceived"`
	LastReceived   time.Time `json:"lastReceived"`
	Deliveries     int       `json:"deliveries"`
	// FailedDeliveries counts deliveries answered by an injected fault or by
	// the 500s of behaviour 50 instead of by the advice's own answer.
	FailedDeliveries int `json:"failedDeliveries"`
	// Status is the advice's own answer, given again to every later
	// delivery; 0 while no delivery got that far.
	Status int `json:"status"`
	// LastStatus is the answer to the latest delivery (0: none was sent).
	LastStatus int `json:"lastStatus"`
	// EffectApplied reports whether this advice moved the payment's funds;
	// Effect is then the state it moved them to.
	EffectApplied bool  `json:"effectApplied"`
	Effect        State `json:"effect,omitempty"`
	// Note says why no effect was applied, when none was.
	Note string `json:"note,omitempty"`
}

// ScanEntry is one scan notification the sim's customer app sent.
type ScanEntry struct {
	ID                  string    `json:"id"`
	TranID              string    `json:"tranId"`
	PartnerPaymentToken string    `json:"partnerPaymentToken,omitempty"` // masked to the last four
	SentAt              time.Time `json:"sentAt"`
	Status              int       `json:"status"` // the switch's answer; 0 when none arrived
	Error               string    `json:"error,omitempty"`
}

// Totals sum up a Ledger.
type Totals struct {
	Payments int `json:"payments"` // distinct payment ids received
	Approved int `json:"approved"` // payments that reserved funds, whatever became of them
	Declined int `json:"declined"`
	Reserved int `json:"reserved"` // approved and still waiting for an advice
	Captured int `json:"captured"`
	Released int `json:"released"`

	Confirmations    int `json:"confirmations"` // distinct confirmation ids
	Reversals        int `json:"reversals"`     // distinct reversal ids
	AdviceDeliveries int `json:"adviceDeliveries"`
	EffectsApplied   int `json:"effectsApplied"`
	// DuplicateDeliveries counts deliveries of a payment or advice id the
	// sim already held: repeated advices and duplicate payment requests.
	DuplicateDeliveries int `json:"duplicateDeliveries"`

	Scans int `json:"scans"`
}

// payment is the sim's record of a payment; guarded by its shard's lock.
type payment struct {
	entry PaymentEntry
	kind  kind
}

// advice is the sim's record of an advice; guarded by its shard's lock.
type advice struct {
	entry    AdviceEntry
	answered bool   // entry.Status and body are the advice's own answer
	body     []byte // the answer's body, repeated to later deliveries
}

// shardCount spreads records over enough locks that concurrent requests
// rarely meet on one.
const shardCount = 64

// shard is one lock and the records it guards.
type shard[V any] struct {
	mu sync.Mutex
	m  map[string]*V
}

// shards is a map split by key hash, so the hot path takes no global lock.
type shards[V any] struct {
	seed maphash.Seed
	s    [shardCount]shard[V]
}

func (t *shards[V]) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.s {
		t.s[i].m = make(map[string]*V)
	}
}

// of returns the shard holding key.
func (t *shards[V]) of(key string) *shard[V] {
	return &t.s[maphash.String(t.seed, key)%shardCount]
}

// each calls fn on every record, one shard locked at a time.
func (t *shards[V]) each(fn func(*V)) {
	for i := range t.s {
		sh := &t.s[i]
		sh.mu.Lock()
		for _, v := range sh.m {
			fn(v)
		}
		sh.mu.Unlock()
	}
}

func (t *shards[V]) clear() {
	for i := range t.s {
		sh := &t.s[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}

// Ledger returns a snapshot of the ledger. Each entry is consistent in
// itself; while traffic flows, entries are copied one shard at a time, so
// the snapshot is not one instant across entries. The totals are computed
// from the entries returned.
func (s *Sim) Ledger() Ledger {
	var l Ledger
	s.payments.each(func(p *payment) { l.Payments = append(l.Payments, p.entry) })
	s.advices.each(func(a *advice) { l.Advices = append(l.Advices, a.entry) })
	s.scans.each(func(e *ScanEntry) { l.Scans = append(l.Scans, *e) })
	sort.Slice(l.Payments, func(i, j int) bool {
		a, b := &l.Payments[i], &l.Payments[j]
		return a.ReceivedAt.Before(b.ReceivedAt) || a.ReceivedAt.Equal(b.ReceivedAt) && a.ID < b.ID
	})
	sort.Slice(l.Advices, func(i, j int) bool {
		a, b := &l.Advices[i], &l.Advices[j]
		return a.FirstReceived.Before(b.FirstReceived) || a.FirstReceived.Equal(b.FirstReceived) && a.ID < b.ID
	})
	sort.Slice(l.Scans, func(i, j int) bool {
		a, b := &l.Scans[i], &l.Scans[j]
		return a.SentAt.Before(b.SentAt) || a.SentAt.Equal(b.SentAt) && a.ID < b.ID
	})
	if l.Payments == nil {
		l.Payments = []PaymentEntry{}
	}
	if l.Advices == nil {
		l.Advices = []AdviceEntry{}
	}
	if l.Scans == nil {
		l.Scans = []ScanEntry{}
	}
	l.Totals = totals(&l)
	return l
}

func totals(l *Ledger) Totals {
	var t Totals
	for i := range l.Payments {
		t.addPayment(&l.Payments[i])
	}
	for i := range l.Advices {
		t.addAdvice(&l.Advices[i])
	}
	t.Scans = len(l.Scans)
	t.Approved = t.Reserved + t.Captured + t.Released
	return t
}

func (t *Totals) addPayment(p *PaymentEntry) {
	t.Payments++
	t.DuplicateDeliveries += p.Deliveries - 1
	switch p.State {
	case StateDeclined:
		t.Declined++
	case StateReserved:
		t.Reserved++
	case StateCaptured:
		t.Captured++
	case StateReleased:
		t.Released++
	}
}

func (t *Totals) addAdvice(a *AdviceEntry) {
	if a.Kind == KindConfirmation {
		t.Confirmations++
	} else {
		t.Reversals++
	}
	t.AdviceDeliveries += a.Deliveries
	t.DuplicateDeliveries += a.Deliveries - 1
	if a.EffectApplied {
		t.EffectsApplied++
	}
}

// Totals counts the ledger without copying it: cheap enough to poll while
// a load test drains a queue.
func (s *Sim) Totals() Totals {
	var t Totals
	s.payments.each(func(p *payment) { t.addPayment(&p.entry) })
	s.advices.each(func(a *advice) { t.addAdvice(&a.entry) })
	s.scans.each(func(*ScanEntry) { t.Scans++ })
	t.Approved = t.Reserved + t.Captured + t.Released
	return t
}

// Reset empties the ledger: payments, advices and scans. Injected faults
// stay (ClearFaults removes them). Answers still being held (late, slow,
// hang) finish normally but no longer appear in the ledger.
func (s *Sim) Reset() {
	s.payments.clear()
	s.advices.clear()
	s.scans.clear()
}

// maskToken keeps only the last four characters of a payment token.
func maskToken(t string) string {
	if t == "" {
		return ""
	}
	r := []rune(t)
	if len(r) <= 4 {
		return "****"
	}
	return "****" + string(r[len(r)-4:])
}
