package qrswitch

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"
)

// Story is everything the switch knows about one payment, for support staff:
// the record, its QR code, its advices, every attempt to send them, and its
// trace, secrets masked.
type Story struct {
	Payment  *Payment        `json:"payment,omitempty"`
	QR       *QRCode         `json:"qr,omitempty"`
	Advices  []*Advice       `json:"advices"`
	Attempts []AdviceAttempt `json:"attempts"`
	Trace    []TraceEntry    `json:"trace"`
}

// AdviceAttempt is one delivery of an advice to its partner, read from the
// trace: when it was sent, and what came back (or did not).
type AdviceAttempt struct {
	AdviceKey string    `json:"adviceKey"`
	N         int       `json:"n"` // 1 for the first attempt
	At        time.Time `json:"at"`
	Code      string    `json:"code,omitempty"` // the destination's code of its answer ("HTTP 500")
	Outcome   string    `json:"outcome"`
	LatencyMS float64   `json:"latencyMs"`
	Note      string    `json:"note,omitempty"`
}

// attempts pairs each advice's upstream requests in the trace with their
// answers. A late answer (after the timeout) is not an attempt of its own.
func attempts(advices []*Advice, trace []TraceEntry) []AdviceAttempt {
	out := []AdviceAttempt{}
	for _, a := range advices {
		peer := peerOf(a.Destination)
		n := 0
		for i, t := range trace {
			if t.MessageID != a.ID || t.Peer != peer || t.Kind != KindRequest || t.Direction != Outbound {
				continue
			}
			n++
			at := AdviceAttempt{AdviceKey: a.Key(), N: n, At: t.At, Outcome: "unknown"}
			for _, r := range trace[i+1:] {
				if r.MessageID == a.ID && r.Peer == peer && r.Kind == KindAnswer && r.Outcome != "" {
					at.Code, at.Outcome, at.LatencyMS, at.Note = r.Code, r.Outcome, r.LatencyMS, r.Note
					break
				}
			}
			out = append(out, at)
		}
	}
	return out
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
	s.Attempts = attempts(advices, s.Trace)
	return s, nil
}

// PaymentSummary is one line of a search's results.
type PaymentSummary struct {
	Key        string    `json:"key"`
	RetailerID string    `json:"retailerId"`
	RequestID  string    `json:"requestId"`
	TranID     string    `json:"tranId,omitempty"`
	State      string    `json:"state"`
	Outcome    string    `json:"outcome,omitempty"` // LegOutcome
	PartnerID  string    `json:"partnerId,omitempty"`
	MerchantID string    `json:"merchantId,omitempty"`
	TerminalID string    `json:"terminalId,omitempty"`
	Amount     int64     `json:"amount,omitempty"` // minor units of the request amount
	Currency   string    `json:"currency,omitempty"`
	Rrn        string    `json:"rrn,omitempty"`
	Stan       string    `json:"stan,omitempty"`
	Status     int       `json:"status,omitempty"` // what the retailer was answered
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// Summarize returns the summary of p.
func Summarize(p *Payment) PaymentSummary {
	s := PaymentSummary{
		Key: p.Key(), RetailerID: p.RetailerID, RequestID: p.RequestID, TranID: p.TranID,
		State: string(p.State), Outcome: p.LegOutcome(), PartnerID: p.PartnerID(), Status: p.Status,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if r := p.Request; r != nil {
		s.Rrn, s.Stan = r.Rrn, r.Stan
		if o := r.Originator; o != nil {
			s.MerchantID, s.TerminalID = o.Merchant.MerchantID, o.TerminalID
		}
		if a := r.Amounts; a != nil && a.RequestAmount != nil {
			s.Amount, s.Currency = a.RequestAmount.Amount, a.RequestAmount.Currency
		}
	}
	return s
}

// Search returns the summaries of the payments q selects, newest first
// (see Query for the order and paging). adviceID, when set, keeps only
// payments with an advice of that id (from any sender); such a search
// reads the few payments the id names and pages like any other.
func (e *Engine) Search(ctx context.Context, q Query, adviceID string) ([]PaymentSummary, error) {
	var ps []*Payment
	if adviceID == "" {
		found, err := e.store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		ps = found
	} else {
		found, err := e.searchByAdvice(ctx, q, adviceID)
		if err != nil {
			return nil, err
		}
		ps = found
	}
	out := make([]PaymentSummary, len(ps))
	for i, p := range ps {
		out[i] = Summarize(p)
	}
	return out, nil
}

// searchByAdvice runs q on each payment that has an advice adviceID: the
// store's own filters, narrowed to that payment's retailer and request id,
// so every filter means what it means in any search.
func (e *Engine) searchByAdvice(ctx context.Context, q Query, adviceID string) ([]*Payment, error) {
	named, err := e.store.Lookup(ctx, adviceID)
	if err != nil {
		return nil, err
	}
	var out []*Payment
	for _, p := range named {
		advices, err := e.store.PaymentAdvices(ctx, p.Key())
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(advices, func(a *Advice) bool { return a.ID == adviceID }) ||
			q.RetailerID != "" && q.RetailerID != p.RetailerID || q.RequestID != "" && q.RequestID != p.RequestID {
			continue
		}
		one := q
		one.RetailerID, one.RequestID = p.RetailerID, p.RequestID
		found, err := e.store.Search(ctx, one)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	slices.SortFunc(out, func(a, b *Payment) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.Key(), a.Key()))
	})
	if n := q.Limit; n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// PartnerQueue is the state of one destination's advice queue (a
// partner's, or a retailer endpoint's), for support staff and metrics.
type PartnerQueue struct {
	*QueueStats
	Name string `json:"name"`
	// Paused and Control say whether operators paused the queue, who,
	// when and why (Control is nil when no operator ever acted on it).
	Paused  bool          `json:"paused"`
	Control *QueueControl `json:"control,omitempty"`
	// Sending counts the advices this process is sending right now.
	Sending int `json:"sending"`
}

// Queues returns every advice queue: each partner's and each retailer
// endpoint's, by destination.
func (e *Engine) Queues(ctx context.Context) ([]PartnerQueue, error) {
	controls, err := e.store.QueueControls(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(e.queues))
	for id := range e.queues {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]PartnerQueue, 0, len(ids))
	for _, id := range ids {
		st, err := e.store.QueueStats(ctx, id)
		if err != nil {
			return nil, err
		}
		q := PartnerQueue{QueueStats: st, Name: e.queues[id].name, Sending: e.Sending(id)}
		for _, c := range controls {
			if c.Destination == id {
				q.Control, q.Paused = c, c.Paused
			}
		}
		out = append(out, q)
	}
	return out, nil
}

// Advices lists a partner's advices in a state, oldest first.
func (e *Engine) Advices(ctx context.Context, partnerID string, state AdviceState, limit int) ([]*Advice, error) {
	return e.store.ListAdvices(ctx, AdviceQuery{Destination: partnerID, State: state, Limit: limit})
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
