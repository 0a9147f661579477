package qrswitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// TranIDSource is implemented by a Store that places QR codes by their
// tranId (the Redis store spread over shards of a cluster): NewTranID
// returns a new random tranId, 32 hex digits as the engine's own, that the
// store finds in one read. The engine uses it for every QR code it creates.
type TranIDSource interface {
	NewTranID(retailerID string) string
}

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

	// Record returns a rail's record (see partners.Record), or ErrNotFound.
	Record(ctx context.Context, owner, kind, key string) (*partners.Record, error)
	// Records returns the records of one owner that q selects.
	Records(ctx context.Context, owner string, q partners.RecordQuery) ([]*partners.Record, error)

	// Orphans returns up to limit payments still AWAITING_SCAN or FORWARDED
	// whose HoldUntil is before now: their owner died holding them.
	Orphans(ctx context.Context, now time.Time, limit int) ([]*Payment, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store. Records committed before Close survive it.
	Close() error
}

// Errors of a Store. The first three are partners' own, so that a rail's
// records and the engine's answer to the same errors.
var (
	// ErrNotFound: no record has the key.
	ErrNotFound = partners.ErrNotFound
	// ErrDuplicate: a record being created already exists.
	ErrDuplicate = partners.ErrDuplicate
	// ErrConflict: a record being updated changed since it was read (its
	// version moved), or does not exist any more.
	ErrConflict = partners.ErrConflict
	// ErrUnavailable: the store cannot be reached; nothing was written, or a
	// write's fate is unknown. Surfaces answer 503.
	ErrUnavailable = errors.New("store unavailable")
	// ErrSharded: the store keeps the Change's records in different
	// shards, and cannot apply it atomically; nothing was written. A store
	// spread over shards (Redis Cluster, shards=N) keeps each retailer's QR
	// codes, payments, advices and traces together, with the rails' records
	// of that retailer (partners.Record.Retailer), and partner controls,
	// their audit trails and rails' records of no retailer apart from every
	// retailer's.
	ErrSharded = errors.New("the change joins records the store keeps in different shards")
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
// Rails' records follow the same rule, keyed by (Owner, Kind, Key); their
// Index entries and DueAt are replaced with each write.
//
// On success the store sets each record's Version to its stored value (1 for
// a new record, Version+1 for an update), and appends Trace to the trace of
// TraceKey (Payment.Key() when TraceKey is empty). A Change with only a trace
// appends it. A record failing its check gives a *CommitError and nothing is
// written. Any other error wraps ErrUnavailable and means the Change may or
// may not have been applied: read again before deciding. The caller's
// records are unchanged on every error.
type Change struct {
	QR      *QRCode
	Payment *Payment
	Advices []*Advice
	Control *QueueControl // keyed by Destination
	// Records are rails' records (partners.Record), each with its Owner.
	Records  []*partners.Record
	Trace    []TraceEntry
	TraceKey string
}

// CommitError says which record stopped a Commit.
type CommitError struct {
	Record string // "qr", "payment", "advice", "control" or "record"
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
	// Operator counts OPERATOR advices, waiting for a person.
	Operator int `json:"operator"`
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
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// PausedFor is the time the queue spent paused in pauses that ended;
	// with At (the start of the pause under way) it lets give_up_after
	// count only the time a queue ran (see Paused).
	PausedFor time.Duration `json:"pausedFor,omitempty"`
	Version   int64         `json:"version"`
}

// PausedBy returns the time the queue has spent paused up to now, the
// pause under way included.
func (c *QueueControl) PausedBy(now time.Time) time.Duration {
	if c == nil {
		return 0
	}
	d := c.PausedFor
	if c.Paused && now.After(c.At) {
		d += now.Sub(c.At)
	}
	return d
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

// UnmarshalJSON reads a control, including those stored before queues had
// destinations (their "partnerId").
func (c *QueueControl) UnmarshalJSON(b []byte) error {
	type plain QueueControl
	var v struct {
		plain
		LegacyPartner string `json:"partnerId"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = QueueControl(v.plain)
	if c.Destination == "" {
		c.Destination = v.LegacyPartner
	}
	return nil
}

// CheckRecord checks what the store requires of a rail's record before it
// writes it: an owner, a kind and a key, names without '/' for owner and
// kind, and bounded secondary keys. Backends call it on every record of a
// Change.
func CheckRecord(r *partners.Record) error {
	switch {
	case r.Owner == "" || r.Kind == "" || r.Key == "":
		return fmt.Errorf("record %q/%q/%q: owner, kind and key are required", r.Owner, r.Kind, r.Key)
	case !recordName(r.Owner) || !recordName(r.Kind):
		return fmt.Errorf("record %s/%s: owner and kind are letters, digits, '.', '_' and '-'", r.Owner, r.Kind)
	case len(r.Key) > 512:
		return fmt.Errorf("record %s/%s: key longer than 512 bytes", r.Owner, r.Kind)
	case len(r.Index) > 8:
		return fmt.Errorf("record %s/%s/%s: more than 8 secondary keys", r.Owner, r.Kind, r.Key)
	}
	for _, idx := range r.Index {
		if idx == "" || len(idx) > 200 {
			return fmt.Errorf("record %s/%s/%s: secondary key %q is empty or longer than 200 bytes", r.Owner, r.Kind, r.Key, idx)
		}
	}
	return nil
}

func recordName(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
