package qrswitch

import (
	"context"
	"errors"
	"sort"
)

// Story is everything the switch knows about one payment, for support staff:
// the record, its QR code, its advices and its trace, secrets masked.
type Story struct {
	Payment *Payment     `json:"payment,omitempty"`
	QR      *QRCode      `json:"qr,omitempty"`
	Advices []*Advice    `json:"advices"`
	Trace   []TraceEntry `json:"trace"`
}

// Stories finds payments by any identifier (request id, tranId, advice id,
// rrn) and returns their stories, newest first. A tranId whose QR code has
// no payment yet gives a story with the QR code alone.
func (e *Engine) Stories(ctx context.Context, id string) ([]Story, error) {
	ps, err := e.store.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	stories := make([]Story, 0, len(ps))
	for _, p := range ps {
		s, err := e.story(ctx, p)
		if err != nil {
			return nil, err
		}
		stories = append(stories, s)
	}
	if len(stories) == 0 {
		code, err := e.store.QR(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			return stories, nil
		case err != nil:
			return nil, err
		}
		trace, err := e.store.Trace(ctx, qrTraceKey(id))
		if err != nil {
			return nil, err
		}
		stories = append(stories, Story{QR: maskQR(code), Advices: []*Advice{}, Trace: trace})
	}
	return stories, nil
}

func (e *Engine) story(ctx context.Context, p *Payment) (Story, error) {
	s := Story{Payment: maskPayment(p), Advices: []*Advice{}}
	var err error
	if s.Trace, err = e.store.Trace(ctx, p.Key()); err != nil {
		return s, err
	}
	if p.TranID != "" {
		code, err := e.store.QR(ctx, p.TranID)
		switch {
		case err == nil:
			s.QR = maskQR(code)
			qrTrace, err := e.store.Trace(ctx, qrTraceKey(p.TranID))
			if err != nil {
				return s, err
			}
			s.Trace = append(qrTrace, s.Trace...)
			sort.SliceStable(s.Trace, func(i, j int) bool { return s.Trace[i].At.Before(s.Trace[j].At) })
		case !errors.Is(err, ErrNotFound):
			return s, err
		}
	}
	advices, err := e.store.PaymentAdvices(ctx, p.Key())
	if err != nil {
		return s, err
	}
	s.Advices = advices
	return s, nil
}

// maskedToken replaces a partner payment token in records shown to people.
const maskedToken = "****"

func maskPayment(p *Payment) *Payment {
	if p.Scan != nil && p.Scan.PaymentToken != "" {
		s := *p.Scan
		s.PaymentToken = maskedToken
		p.Scan = &s
	}
	if p.Request != nil && p.Request.PartnerPaymentToken != "" {
		r := *p.Request
		r.PartnerPaymentToken = maskedToken
		p.Request = &r
	}
	return p
}

func maskQR(q *QRCode) *QRCode {
	if q.HeldScan != nil && q.HeldScan.PaymentToken != "" {
		s := *q.HeldScan
		s.PaymentToken = maskedToken
		q.HeldScan = &s
	}
	return q
}
