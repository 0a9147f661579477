package qrswitch

import (
	"context"
	"errors"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
)

// Store keeps the switch's records durably. Backends live under store/ and
// all pass the conformance suite in package store; the engine relies on
// nothing that suite does not check.
//
// Records are versioned: every write goes through Commit, which applies a
// Change atomically and only if every record it updates is still at the
// version the caller read. The engine reads, decides, and commits; on
// ErrConflict it reads again and decides again. This keeps every business
// rule in the engine and lets a backend implement Commit as one transaction
// (SQLite) or one script (Redis).
//
// Reads return copies the caller owns. A backend never consults its own clock
// for business decisions: times come in records and arguments, so tests
// control time. The engine stores times in UTC, so that a record read back
// equals the one written.
type Store interface {
	// QR returns the QR code with the tranId, or ErrNotFound.
	QR(ctx context.Context, tranID string) (*QRCode, error)
	// Payment returns the payment with the key (see PaymentKey), or ErrNotFound.
	Payment(ctx context.Context, key string) (*Payment, error)
	// Advice returns the advice with the key (see AdviceKey), or ErrNotFound.
	Advice(ctx context.Context, key string) (*Advice, error)

	// Commit applies c atomically: all of it or none of it. See Change.
	Commit(ctx context.Context, c *Change) error

	// ClaimAdvices leases due advices to a worker. See Claim.
	ClaimAdvices(ctx context.Context, c Claim) ([]*Advice, error)

	// Trace returns the trace of a payment in the order it was appended.
	Trace(ctx context.Context, paymentKey string) ([]TraceEntry, error)
	// PaymentAdvices returns every advice of a payment, oldest first.
	PaymentAdvices(ctx context.Context, paymentKey string) ([]*Advice, error)

	// Lookup returns the payments that any identifier names: a payment request
	// id (of any retailer), a tranId, an advice id (of any sender) or an rrn.
	// Newest first; an empty result is not an error.
	Lookup(ctx context.Context, id string) ([]*Payment, error)
	// Search returns payments matching q, newest first.
	Search(ctx context.Context, q Query) ([]*Payment, error)
	// ListAdvices returns advices matching q, oldest first.
	ListAdvices(ctx context.Context, q AdviceQuery) ([]*Advice, error)

	// QueueStats summarises one partner's advices (see QueueStats). Its cost
	// is bounded whatever the length of the queue.
	QueueStats(ctx context.Context, partnerID string) (*QueueStats, error)
	// QueueControl returns the control of a partner's queue, or
	// ErrNotFound when none was ever committed (the queue runs).
	QueueControl(ctx context.Context, partnerID string) (*QueueControl, error)
	// QueueControls returns every partner control, by PartnerID.
	QueueControls(ctx context.Context) ([]*QueueControl, error)

	// Orphans returns up to limit payments still AWAITING_SCAN or FORWARDED
	// whose HoldUntil is before now: their owner died holding them.
	Orphans(ctx context.Context, now time.Time, limit int) ([]*Payment, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store. Records committed before Close survive it.
	Close() error
}

// Errors of a Store.
var (
	// ErrNotFound: no record has the key.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a record being created already exists.
	ErrDuplicate = errors.New("already exists")
	// ErrConflict: a record being updated changed since it was read (its
	// version moved), or does not exist any more.
	ErrConflict = errors.New("changed concurrently")
	// ErrUnavailable: the store cannot be reached; nothing was written, or a
	// write's fate is unknown. Surfaces answer 503.
	ErrUnavailable = errors.New("store unavailable")
)

// Change is one atomic write. Each record in it is created when its Version
// is 0 and updated otherwise:
//
//   - Create fails with ErrDuplicate when a record with the same key exists.
//     For a QR code, the key is the tranId and, separately, the pair
//     (RetailerID, RequestID) must be unused by any other QR code.
//   - Update fails with ErrConflict unless the stored record has exactly the
//     given Version.
//
// The (RetailerID, RequestID) uniqueness of QR codes holds for updates too.
//
// On success the store sets each record's Version to its stored value (1 for
// a new record, Version+1 for an update), and appends Trace to the trace of
// TraceKey (Payment.Key() when TraceKey is empty). A Change with only a trace
// appends it. A record failing its check gives a *CommitError and nothing is
// written. Any other error wraps ErrUnavailable and means the Change may or
// may not have been applied: read again before deciding. The caller's
// records are unchanged on every error.
type Change struct {
	QR       *QRCode
	Payment  *Payment
	Advices  []*Advice
	Control  *QueueControl // keyed by PartnerID
	Trace    []TraceEntry
	TraceKey string
}

// CommitError says which record stopped a Commit.
type CommitError struct {
	Record string // "qr", "payment", "advice" or "control"
	Key    string
	Err    error // ErrDuplicate or ErrConflict
}

func (e *CommitError) Error() string { return e.Record + " " + e.Key + ": " + e.Err.Error() }
func (e *CommitError) Unwrap() error { return e.Err }

// Claim asks for up to Max due advices of one partner (any partner when
// PartnerID is empty; none when Max ≤ 0). An advice is due when
// it is AdvicePending, its NextAt is not after Now, and it has no live lease
// (LeaseUntil not after Now). At most one advice per payment is returned, and
// none for a payment that has another advice under a live lease, so two
// advices of one payment are never sent at once. Oldest NextAt first.
// Each returned advice is leased: LeaseOwner = Owner, LeaseUntil = Now+Lease,
// Version incremented, as stored. The engine clears an advice's lease when it
// records an attempt, so a finished advice never holds one.
type Claim struct {
	Destination string
	Owner       string
	Now         time.Time
	// DueBy, when after Now, makes advices due whose NextAt is not after
	// it (leases are still judged at Now): the engine claims a partner's
	// whole queue at once when the partner answers again after an outage,
	// rather than waiting out each advice's backoff.
	DueBy time.Time
	Lease time.Duration
	Max   int
}

// Query selects payments for support staff. Zero fields do not filter.
//
// Results come newest first: by CreatedAt descending, and payments created
// at the same time by Key descending. A backend may order by CreatedAt to
// the microsecond only (Redis does); payments created within one
// microsecond then come by Key descending. Paging with Before and BeforeKey
// follows the backend's order exactly, so pages never skip or repeat a
// payment, however many share a CreatedAt.
type Query struct {
	RetailerID string
	RequestID  string // the PaymentRequest id (of any retailer unless RetailerID is set)
	PartnerID  string
	MerchantID string
	TerminalID string
	State      outcome.State
	// Outcome keeps payments whose LegOutcome is this name: "successful",
	// "unknown" or "failed".
	Outcome   string
	TranID    string
	Rrn       string
	Stan      string
	MinAmount int64 // minor units of the request amount; 0 = no lower bound
	MaxAmount int64 // 0 = no upper bound
	// From (inclusive) and To (exclusive) bound CreatedAt.
	From, To time.Time
	// Before pages back. Alone, it keeps payments created strictly before
	// it. With BeforeKey — the CreatedAt and Key of the last payment of the
	// previous page — it keeps the payments that come after that one in
	// the order above. Zero = from the newest.
	Before    time.Time
	BeforeKey string
	Limit     int // default 50, at most 500
}

// QueueSample bounds the advices QueueStats.Attempts counts.
const QueueSample = 1000

// QueueStats summarises one partner's advices, for support staff and
// metrics.
type QueueStats struct {
	Destination string `json:"destination"`
	// Pending counts PENDING advices: due, backing off, or being sent.
	Pending int `json:"pending"`
	// Held counts HELD advices, waiting for their payment's outcome.
	Held int `json:"held"`
	// Dead counts dead letters.
	Dead int `json:"dead"`
	// OldestQueuedAt is the earliest QueuedAt of a PENDING advice and
	// NextAt the earliest NextAt of one; zero when none is pending. A
	// backend may round them down to the microsecond.
	OldestQueuedAt time.Time `json:"oldestQueuedAt,omitzero"`
	NextAt         time.Time `json:"nextAt,omitzero"`
	// Attempts counts PENDING advices by their number of attempts, among
	// the QueueSample that were queued longest (all of them when there are
	// no more): a bounded sample, so that the statistics of a queue grown
	// long in an outage cost no more than those of a short one, and the
	// advices stuck longest are always in it. Sampled is how many were
	// counted.
	Attempts map[int]int `json:"attempts"`
	Sampled  int         `json:"sampled"`
}

// QueueControl is the operators' control of one partner's advice queue,
// shared through the store by every switch process. A partner without one
// runs.
type QueueControl struct {
	Destination string `json:"destination"`
	// Paused stops sending the partner's advices (they stay queued).
	Paused bool `json:"paused"`
	// By, At and Reason say who last changed the control, when and why.
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	Version int64     `json:"version"`
}

// Clone returns a copy of c.
func (c *QueueControl) Clone() *QueueControl {
	if c == nil {
		return nil
	}
	out := *c
	return &out
}

// AdviceQuery selects advices. Zero fields do not filter.
type AdviceQuery struct {
	Destination string
	State       AdviceState
	// Leased keeps only advices that carry a lease (LeaseUntil set), live
	// or expired.
	Leased bool
	Limit  int // default 50, at most 500
}
