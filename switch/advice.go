package qrswitch

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// AdviceAnswer is the switch's answer to a confirmation or reversal: a
// status and an encoded body. An accepted advice's answer is stored with it
// and repeated verbatim when the same advice id arrives again.
type AdviceAnswer struct {
	Status int
	Body   []byte
	// Cause is the private reason of a failure (a store error behind a
	// 503), for the log; it is never sent.
	Cause error
}

// Confirm handles a payment confirmation (confirmPayment). It answers 202
// once the confirmation is durably queued for the partner.
func (e *Engine) Confirm(ctx context.Context, r Retailer, c *wire.PaymentConfirmation, raw []byte) AdviceAnswer {
	if err := c.Validate(); err != nil {
		return failureAnswer(wire.FormatFailure(err, c.RequestID))
	}
	return e.advise(ctx, r, Confirmation, &c.BasicAdvice, "", raw)
}

// Reverse handles a payment reversal (reversePayment). It answers 202 once
// the reversal is durably recorded: queued for the partner, held until the
// payment's outcome is known, merged with a reversal already under way, or
// completed locally when nothing reached a partner. A reversal for a request
// id the switch never saw answers 404 and bars that id from later use.
func (e *Engine) Reverse(ctx context.Context, r Retailer, rev *wire.PaymentReversal, raw []byte) AdviceAnswer {
	if err := rev.Validate(); err != nil {
		return failureAnswer(wire.FormatFailure(err, rev.RequestID))
	}
	return e.advise(ctx, r, Reversal, &rev.BasicAdvice, rev.ReversalReason, raw)
}

func failureAnswer(f *wire.Failure) AdviceAnswer {
	b, _ := json.Marshal(f.Detail)
	return AdviceAnswer{Status: f.Status, Body: b, Cause: f.Cause}
}

func (e *Engine) advise(ctx context.Context, r Retailer, kind AdviceKind, adv *wire.BasicAdvice, reason string, raw []byte) AdviceAnswer {
	akey := AdviceKey(r.ID, adv.ID)
	pkey := PaymentKey(r.ID, adv.RequestID)
	peer := "retailer:" + r.ID
	op := operationName(kind)
	// An advice id used before is answered as it was the first time (or
	// refused when it was used for another advice). It is looked up only
	// where a repeat would be decided differently from a new advice: a
	// refusal, an unknown payment, and a commit that found the id taken.
	// A repeat that would be accepted fails its commit with ErrDuplicate,
	// which writes nothing; so a new advice, the common case, costs no
	// read of an advice that is not there.
	replay := func() (AdviceAnswer, bool) {
		prev, err := e.store.Advice(ctx, akey)
		switch {
		case errors.Is(err, ErrNotFound):
			return AdviceAnswer{}, false
		case err != nil:
			return failureAnswer(adviceStoreFailure(err, adv.RequestID, "")), true
		case prev.Kind == kind && prev.PaymentKey == pkey:
			return AdviceAnswer{Status: prev.AnswerStatus, Body: prev.AnswerBody}, true
		default:
			return failureAnswer(fail(400, wire.DuplicateRecord, "Advice id already used", adv.RequestID, "")), true
		}
	}
	for range maxRetries {
		now := e.now()
		a := &Advice{
			Sender: r.ID, ID: adv.ID, Kind: kind, PaymentKey: pkey,
			CreatedAt: now, UpdatedAt: now,
			AnswerStatus: 202, AnswerBody: raw,
		}
		p, err := e.store.Payment(ctx, pkey)
		if errors.Is(err, ErrNotFound) {
			if ans, ok := replay(); ok {
				return ans
			}
			if kind == Confirmation {
				return failureAnswer(fail(404, wire.UnableToLocateRecord, "Unknown payment request", adv.RequestID, adv.TranID))
			}
			change := e.tombstone(r, adv, a, raw, now)
			switch err := e.store.Commit(ctx, change); {
			case err == nil:
				return AdviceAnswer{Status: a.AnswerStatus, Body: a.AnswerBody}
			case errors.Is(err, ErrDuplicate):
				if ans, ok := replay(); ok {
					return ans
				}
				continue // the payment appeared meanwhile: decide again
			default:
				return failureAnswer(adviceStoreFailure(err, adv.RequestID, adv.TranID))
			}
		}
		if err != nil {
			return failureAnswer(adviceStoreFailure(err, adv.RequestID, ""))
		}
		a.TranID, a.Destination = p.TranID, p.PartnerID()
		up := *adv
		up.TranID = p.TranID
		if partner, ok := e.partners[p.PartnerID()]; ok {
			up.Partner = partner.Institution()
		}
		if kind == Confirmation {
			a.Confirmation = &wire.PaymentConfirmation{BasicAdvice: up}
		} else {
			a.Reversal = &wire.PaymentReversal{BasicAdvice: up, ReversalReason: reason}
		}
		decide := e.decideReverse
		if kind == Confirmation {
			decide = e.decideConfirm
		}
		q, f, notes := decide(p, a, now)
		trace := []TraceEntry{inbound(now, peer, op, adv.ID, raw)}
		if f != nil {
			if ans, ok := replay(); ok {
				return ans
			}
			// Refused: only the trace remembers it.
			trace = append(trace, answered(now, peer, op, adv.ID, f.Status, f.Detail, 0))
			if err := e.store.Commit(ctx, &Change{TraceKey: pkey, Trace: trace}); err != nil {
				e.logger(ctx).Warn().Err(err).Str("payment", pkey).Msg("tracing a refused advice")
			}
			return failureAnswer(f)
		}
		trace = append(trace, notes...)
		trace = append(trace, answeredRaw(now, peer, op, adv.ID, 202, raw))
		// The payment is written even when only the advice changed, so
		// that two advices of one payment decided at once conflict and
		// the second is decided again in the light of the first.
		change := &Change{Payment: q, Advices: []*Advice{a}, Trace: trace}
		switch err := e.commit(ctx, change); {
		case err == nil:
			if p.State == outcome.AwaitingScan && q.State != p.State {
				e.wake(ctx, pkey) // the held request ends now
			}
			return AdviceAnswer{Status: a.AnswerStatus, Body: a.AnswerBody}
		case errors.Is(err, ErrDuplicate):
			if ans, ok := replay(); ok {
				return ans
			}
			continue
		case errors.Is(err, ErrConflict):
			continue
		default:
			return failureAnswer(adviceStoreFailure(err, adv.RequestID, p.TranID))
		}
	}
	return failureAnswer(adviceStoreFailure(errContention, adv.RequestID, ""))
}

// tombstone records a reversal for a payment request the switch never saw:
// it answers 404 (which the retailer counts as reversed) and keeps the
// request id so that the request, should it arrive late, is refused instead
// of charging a customer whose sale was voided.
func (e *Engine) tombstone(r Retailer, adv *wire.BasicAdvice, a *Advice, raw []byte, now time.Time) *Change {
	f := fail(404, wire.UnableToLocateRecord, "Unknown payment request", adv.RequestID, adv.TranID)
	a.AnswerStatus, a.AnswerBody = failureAnswer(f).Status, failureAnswer(f).Body
	a.Reversal = &wire.PaymentReversal{BasicAdvice: *adv}
	e.finishLocally(a, now, "no such payment request: nothing to reverse")
	p := &Payment{
		RetailerID: r.ID, RequestID: adv.RequestID, TranID: adv.TranID,
		State: outcome.Reversed, Tombstone: true, AdviceKey: a.Key(),
		CreatedAt: now, UpdatedAt: now,
	}
	peer := "retailer:" + r.ID
	return &Change{Payment: p, Advices: []*Advice{a}, Trace: []TraceEntry{
		inbound(now, peer, "reversePayment", adv.ID, raw),
		event(now, "tombstone", "reversal of a request never seen: the request id is barred from later use"),
		answeredRaw(now, peer, "reversePayment", adv.ID, a.AnswerStatus, a.AnswerBody),
	}}
}

// decideConfirm decides a confirmation of p: the payment to write (a copy
// of p, changed or not), or the refusal, and notes for the trace.
func (e *Engine) decideConfirm(p *Payment, a *Advice, now time.Time) (*Payment, *wire.Failure, []TraceEntry) {
	refuse := func(msg string) (*Payment, *wire.Failure, []TraceEntry) {
		return nil, fail(400, wire.TransactionNotSupported, msg, p.RequestID, p.TranID), nil
	}
	q := p.Clone()
	q.UpdatedAt = now
	switch p.State {
	case outcome.Approved:
		q, err := move(p, outcome.Confirming, now)
		if err != nil {
			return nil, adviceStoreFailure(err, p.RequestID, p.TranID), nil
		}
		q.AdviceKey = a.Key()
		e.queue(a, now)
		return q, nil, nil
	case outcome.Confirming, outcome.Confirmed:
		merge(a, p.AdviceKey, now, "payment already confirmed by advice "+p.AdviceKey+"; not sent again")
		return q, nil, []TraceEntry{event(now, "adviceMerged", a.Note)}
	case outcome.ConfirmFailed:
		return refuse("Confirmation already refused")
	case outcome.Reversing, outcome.Reversed, outcome.ReversalFailed:
		return refuse("Payment already reversed")
	case outcome.Declined:
		return refuse("Payment was declined")
	case outcome.NoScan:
		return refuse("Payment was not completed")
	case outcome.Unsettled:
		return refuse("Payment expired unsettled")
	default:
		return refuse("Payment not answered yet")
	}
}

// decideReverse decides a reversal of p, as decideConfirm.
func (e *Engine) decideReverse(p *Payment, a *Advice, now time.Time) (*Payment, *wire.Failure, []TraceEntry) {
	q := p.Clone()
	q.UpdatedAt = now
	switch p.State {
	case outcome.AwaitingScan:
		q, err := move(p, outcome.Reversed, now)
		if err != nil {
			return nil, adviceStoreFailure(err, p.RequestID, p.TranID), nil
		}
		q.PayOutcome = outcome.Failed
		q.Status = 400
		q.Error = wire.NewErrorDetail(wire.NoScanReceived, "Payment reversed before a scan", p.RequestID, p.TranID)
		q.HoldUntil = time.Time{}
		q.AdviceKey = a.Key()
		e.finishLocally(a, now, "reversed before any scan: nothing was sent upstream")
		return q, nil, []TraceEntry{event(now, "reversedLocally", a.Note)}
	case outcome.Forwarded:
		if p.HeldReversal != "" {
			merge(a, p.HeldReversal, now, "a reversal is already held for this payment; one reversal is sent")
			return q, nil, []TraceEntry{event(now, "adviceMerged", a.Note)}
		}
		a.State = AdviceHeld
		q.HeldReversal = a.Key()
		return q, nil, []TraceEntry{event(now, "reversalHeld", "payment still with the partner: the reversal is applied once its outcome is known")}
	case outcome.Approved:
		q, err := move(p, outcome.Reversing, now)
		if err != nil {
			return nil, adviceStoreFailure(err, p.RequestID, p.TranID), nil
		}
		q.AdviceKey = a.Key()
		e.queue(a, now)
		return q, nil, e.holdUnrefundable(p, a, now)
	case outcome.Reversing, outcome.Reversed, outcome.ReversalFailed:
		merge(a, p.AdviceKey, now, "payment already reversing or reversed; not sent again")
		return q, nil, []TraceEntry{event(now, "adviceMerged", a.Note)}
	case outcome.Declined, outcome.NoScan:
		e.finishLocally(a, now, "payment was not approved: nothing to reverse upstream")
		return q, nil, []TraceEntry{event(now, "reversedLocally", a.Note)}
	case outcome.Unsettled:
		return nil, fail(400, wire.TransactionNotSupported, "Payment expired unsettled", p.RequestID, p.TranID), nil
	default: // Confirming, Confirmed, ConfirmFailed
		return nil, fail(400, wire.TransactionNotSupported, "Payment already confirmed", p.RequestID, p.TranID), nil
	}
}

// holdUnrefundable leaves a reversal of money a pull rail received for an
// operator when the rail cannot refund it: nothing the switch could send
// would undo the payment, and a pretend success would lose the customer's
// money. The payment stays REVERSING, visible, until an operator settles
// it (FinalizeAdvice).
func (e *Engine) holdUnrefundable(p *Payment, a *Advice, now time.Time) []TraceEntry {
	if p.Paid == nil {
		return nil
	}
	if partner, ok := e.partners[a.Destination]; ok {
		if _, ok := partner.Rail.(partners.Refunder); ok {
			return nil
		}
	}
	a.State = AdviceOperator
	a.Note = "the money arrived on a rail that cannot refund it: an operator must return it and mark this reversal final"
	return []TraceEntry{event(now, "reversalForOperator", a.Note)}
}

// queue makes an advice due for sending now.
func (e *Engine) queue(a *Advice, now time.Time) {
	a.State = AdvicePending
	a.NextAt = now
	a.QueuedAt = now
	a.UpdatedAt = now
	if q, ok := e.queues[a.Destination]; ok {
		a.PauseBase = q.pausedBy(now)
	}
}

// finishLocally ends an advice that needs nothing sent upstream.
func (e *Engine) finishLocally(a *Advice, now time.Time, note string) {
	a.State = AdviceDone
	a.Outcome = outcome.Successful
	a.Note = note
	a.DoneAt = now
	a.UpdatedAt = now
}

// merge ends an advice whose effect another advice of the payment carries.
func merge(a *Advice, into string, now time.Time, note string) {
	a.State = AdviceMerged
	a.MergedInto = into
	a.Note = note
	a.DoneAt = now
	a.UpdatedAt = now
}

// timeoutReversal builds the switch's own reversal of a payment whose
// outcome is unknown.
func (e *Engine) timeoutReversal(p *Payment, now time.Time) *Advice {
	req := p.Request
	rev := &wire.PaymentReversal{
		BasicAdvice: wire.BasicAdvice{
			ID:                    wire.NewID(),
			RequestID:             req.ID, // the request as the partner knew it (a checkout's is not its id)
			Time:                  now.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			ThirdPartyIdentifiers: req.ThirdPartyIdentifiers,
			Stan:                  req.Stan,
			Rrn:                   req.Rrn,
			Amounts:               req.Amounts,
			TranID:                p.TranID,
		},
		ReversalReason: wire.ReasonTimeout,
	}
	if partner, ok := e.partners[p.PartnerID()]; ok {
		rev.Partner = partner.Institution()
	}
	return &Advice{
		Sender: SwitchSender, ID: rev.ID, Kind: Reversal, PaymentKey: p.Key(),
		TranID: p.TranID, Destination: p.PartnerID(), Reversal: rev,
		CreatedAt: now, UpdatedAt: now,
	}
}
