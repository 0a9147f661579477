package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// The rows below are records encoded for writing: the JSON to store (with the
// version the write gives it) and the index columns. They are built on the
// committing goroutine so that the writer only runs SQL.

type qrRow struct {
	tranID, retailerID, requestID string
	version                       int64 // as read; 0 creates
	data                          string
}

type paymentRow struct {
	key, retailerID, requestID               string
	tranID, rrn, stan                        string
	partnerID, merchantID, terminalID, state string
	amount                                   sql.NullInt64
	createdAt, holdUntil                     int64
	version                                  int64
	data                                     string
}

type adviceRow struct {
	key, sender, id, paymentKey, partnerID, state string
	nextAt, leaseUntil, createdAt                 int64
	version                                       int64
	data                                          string
}

func encodeQR(q *qrswitch.QRCode) (*qrRow, error) {
	next := *q
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	return &qrRow{
		tranID:     q.TranID,
		retailerID: q.RetailerID,
		requestID:  q.RequestID,
		version:    q.Version,
		data:       data,
	}, nil
}

func encodePayment(p *qrswitch.Payment) (*paymentRow, error) {
	next := *p
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	r := &paymentRow{
		key:        p.Key(),
		retailerID: p.RetailerID,
		requestID:  p.RequestID,
		tranID:     p.TranID,
		partnerID:  p.PartnerID(),
		state:      string(p.State),
		createdAt:  nanos(p.CreatedAt),
		holdUntil:  nanos(p.HoldUntil),
		version:    p.Version,
		data:       data,
	}
	if req := p.Request; req != nil {
		r.rrn = req.Rrn
		r.stan = req.Stan
		if o := req.Originator; o != nil {
			r.merchantID = o.Merchant.MerchantID
			r.terminalID = o.TerminalID
		}
		if a := req.Amounts; a != nil && a.RequestAmount != nil {
			r.amount = sql.NullInt64{Int64: a.RequestAmount.Amount, Valid: true}
		}
	}
	return r, nil
}

func encodeAdvice(a *qrswitch.Advice) (*adviceRow, error) {
	next := *a
	next.Version++
	data, err := marshal(&next)
	if err != nil {
		return nil, err
	}
	return &adviceRow{
		key:        a.Key(),
		sender:     a.Sender,
		id:         a.ID,
		paymentKey: a.PaymentKey,
		partnerID:  a.PartnerID,
		state:      string(a.State),
		nextAt:     nanos(a.NextAt),
		leaseUntil: nanos(a.LeaseUntil),
		createdAt:  nanos(a.CreatedAt),
		version:    a.Version,
		data:       data,
	}, nil
}

// marshal encodes a record as stored. The encoders pass a shallow copy
// carrying the version the write gives it: the caller's record changes only
// once the write is known to have committed.
func marshal(rec any) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encoding record: %w", err)
	}
	return string(b), nil
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
