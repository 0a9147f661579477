package sqlite

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unsafe"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// A row is a record encoded for writing: its key, the version it was read
// at (0 creates it), the JSON to store (carrying the version the write gives
// it) and the values of its table's indexed columns, as the driver returns
// them (string, int64 or nil) so that they compare with a stored row. Rows
// are built on the committing goroutine so that the writer only runs SQL.
type row struct {
	key     string
	version int64
	data    string
	vals    []any
}

// The indexed columns of each table, in the order of row.vals.
var (
	qrCols      = []string{"retailer_id", "request_id", "payment_key", "expires_at"}
	paymentCols = []string{"retailer_id", "request_id", "tran_id", "rrn", "stan", "partner_id",
		"merchant_id", "terminal_id", "state", "amount", "created_at", "hold_until", "outcome", "finished_at"}
	adviceCols = []string{"sender", "id", "payment_key", "partner_id", "state", "next_at", "lease_until", "created_at",
		"queued_at", "attempts"}
	controlCols = []string{"paused"}
)

func encodeQR(q *qrswitch.QRCode) (*row, error) {
	next := *q
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	return &row{key: q.TranID, version: q.Version, data: data, vals: []any{q.RetailerID, q.RequestID, q.PaymentKey, nanos(q.ExpiresAt)}}, nil
}

func encodePayment(p *qrswitch.Payment) (*row, error) {
	next := *p
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	var rrn, stan, merchant, terminal string
	var amount any // NULL without a request amount
	if req := p.Request; req != nil {
		rrn, stan = req.Rrn, req.Stan
		if o := req.Originator; o != nil {
			merchant, terminal = o.Merchant.MerchantID, o.TerminalID
		}
		if a := req.Amounts; a != nil && a.RequestAmount != nil {
			amount = a.RequestAmount.Amount
		}
	}
	return &row{key: p.Key(), version: p.Version, data: data, vals: []any{
		p.RetailerID, p.RequestID, p.TranID, rrn, stan, p.PartnerID(),
		merchant, terminal, string(p.State), amount, nanos(p.CreatedAt), nanos(p.HoldUntil), p.LegOutcome(),
		finishedAt(p),
	}}, nil
}

// finishedAt is the finished_at column of a payment as this write would
// set it: its UpdatedAt once it is final (the writer keeps the first one
// stored; see table.sticky), 0 while it is not.
func finishedAt(p *qrswitch.Payment) int64 {
	if !p.State.Final() {
		return 0
	}
	at := p.UpdatedAt
	if at.IsZero() {
		at = p.CreatedAt
	}
	if n := nanos(at); n > 0 {
		return n
	}
	return 1 // a final payment with no time: the oldest there is
}

func encodeControl(c *qrswitch.QueueControl) (*row, error) {
	next := *c
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	paused := int64(0)
	if c.Paused {
		paused = 1
	}
	return &row{key: c.Destination, version: c.Version, data: data, vals: []any{paused}}, nil
}

func encodeAdvice(a *qrswitch.Advice) (*row, error) {
	next := *a
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	return &row{key: a.Key(), version: a.Version, data: data, vals: adviceVals(a)}, nil
}

func adviceVals(a *qrswitch.Advice) []any {
	return []any{a.Sender, a.ID, a.PaymentKey, a.Destination, string(a.State),
		nanos(a.NextAt), nanos(a.LeaseUntil), nanos(a.CreatedAt), nanos(a.QueuedAt), int64(a.Attempts)}
}

// marshal encodes a record as stored. The encoders pass a shallow copy
// carrying the version the write gives it: the caller's record changes only
// once the write is known to have committed.
func marshal(rec any) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("encoding record: %w", err)
	}
	// The bytes are fresh and never written again, so they can back the
	// string without a copy (a record's JSON is a few KiB, written on every
	// commit).
	return unsafe.String(&b[0], len(b)), nil
}

// nanos maps a time to a sortable integer column: Unix nanoseconds, clamped
// to the int64 range (where UnixNano is undefined), so the zero time sorts
// before every real one.
func nanos(t time.Time) int64 {
	const maxSec = math.MaxInt64 / int64(time.Second)
	switch sec := t.Unix(); {
	case sec >= maxSec:
		return math.MaxInt64
	case sec <= -maxSec:
		return math.MinInt64
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos, in UTC as the engine stores times; the
// clamped ends read back as the zero time.
func fromNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
