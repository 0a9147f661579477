package partners

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Record is a piece of a rail's own state kept in the switch's store: an
// incoming payment, an invoice, a ledger transfer or account, a chain
// cursor. The store knows nothing of its Data; it keeps records durable,
// shared by every replica, versioned for optimistic concurrency, and
// findable by key, by the secondary keys in Index, and by DueAt.
type Record struct {
	// Owner is the partner whose rail owns the record. Set by the switch:
	// a rail sees and writes only its own records.
	Owner string `json:"owner"`
	// Kind says what the record is ("invoice", "transfer", …): letters,
	// digits, '-', '_' and '.'.
	Kind string `json:"kind"`
	// Key is unique within Owner and Kind. Listings come in Key order, so
	// a key that sorts by time gives time order.
	Key string `json:"key"`
	// Data is the rail's own encoding of the record.
	Data json.RawMessage `json:"data"`
	// Index are secondary keys (such as "wallet:shop-1" or "relay:4711")
	// by which List finds the record; at most 8, none longer than 200
	// bytes.
	Index []string `json:"index,omitempty"`
	// DueAt, when set, is when the rail wants the record back (an expiry
	// to enforce); List with DueBy finds it.
	DueAt time.Time `json:"dueAt,omitzero"`
	// Version is the optimistic-concurrency counter: 0 for a record not
	// yet stored; Commit checks and increments it.
	Version int64 `json:"version"`
	// Retailer is the retailer whose QR code or payment the record was
	// created with: the switch sets it then (a record a rail creates alone
	// has none, unless the rail sets it). A store spread over shards keeps
	// the record with that retailer's payments, or one without apart from
	// every retailer's, for life: a rail that builds a record anew to
	// update it must give it the same Retailer (one read back has it).
	Retailer string `json:"retailer,omitempty"`
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	out := *r
	out.Data = append(json.RawMessage(nil), r.Data...)
	out.Index = append([]string(nil), r.Index...)
	return &out
}

// Records is a rail's view of its records in the switch's store.
type Records interface {
	// Get returns the record, or ErrNotFound.
	Get(ctx context.Context, kind, key string) (*Record, error)
	// List returns the records q selects, in Key order (descending with
	// q.Desc), or by DueAt with q.DueBy.
	List(ctx context.Context, q RecordQuery) ([]*Record, error)
	// Commit writes the records atomically: all or none. A record with
	// Version 0 is created (ErrDuplicate when its key exists); any other is
	// updated only if it is still at that Version (ErrConflict otherwise).
	// On success each record's Version is the stored one.
	Commit(ctx context.Context, rs ...*Record) error
}

// RecordQuery selects records of one kind.
type RecordQuery struct {
	Kind string
	// Index keeps the records carrying this secondary key; "" keeps all.
	Index string
	// After and Before bound Key (exclusive), for paging.
	After, Before string
	// Desc lists in descending Key order.
	Desc bool
	// DueBy, when set, lists records whose DueAt is set and not after it,
	// earliest first (Index, After, Before and Desc then do not apply).
	DueBy time.Time
	// Limit bounds the result: default 50, at most 1000.
	Limit int
}

// Errors of the store, shared by the engine's records and rails' records.
var (
	// ErrNotFound: no record has the key.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a record being created already exists.
	ErrDuplicate = errors.New("already exists")
	// ErrConflict: a record being updated changed since it was read (its
	// version moved), or does not exist any more.
	ErrConflict = errors.New("changed concurrently")
)
