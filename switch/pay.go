package qrswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// holdMargin is added to a hold's natural end (scan wait, partner timeout)
// before recovery may treat the holder as dead.
const holdMargin = 10 * time.Second

// storeOutage bounds how long a held request keeps trying to store its
// outcome while the store does not answer: longer than a Redis failover.
const storeOutage = 10 * time.Second

// outage paces the writes of a held request's outcome that the store failed
// (not conflicts): maxRetries of them StorePause apart at least, and more
// until giveUp, so that a store away for a few seconds (Redis failing over)
// still gets the outcome and the retailer a definite answer, a little late.
type outage struct {
	e        *Engine
	attempts int
	giveUp   time.Time
}

// outage starts the pacing of p's outcome: give up after at most limit,
// and never past half of p's hold margin, after which recovery on another
// replica may take p over.
func (e *Engine) outage(p *Payment, limit time.Duration) *outage {
	giveUp := p.HoldUntil.Add(-holdMargin / 2)
	if l := e.now().Add(limit); l.Before(giveUp) {
		giveUp = l
	}
	return &outage{e: e, giveUp: giveUp}
}

// wait is told of a failed write: it logs the first and the last, and
// pauses before the next unless it is time to give up (false).
func (o *outage) wait(ctx context.Context, err error, key, doing string) bool {
	o.attempts++
	last := o.attempts > maxRetries && !o.e.now().Before(o.giveUp)
	if o.attempts == 1 || last {
		o.e.logger(ctx).Error().Err(err).Str("payment", key).Bool("giving_up", last).Msg(doing)
	}
	if !last {
		sleep(ctx, o.e.opts.StorePause)
	}
	return !last
}

// Pay handles a payment request (pay): it stores the request, holds it until
// the partner's scan is linked or scan_wait passes, forwards it to the
// partner that scanned, and returns the partner's answer. raw is the body as
// received, for the trace. It is Admit, then Await.
//
// Once the request is stored, the retailer hanging up does not stop the
// flow: the payment runs to a stored outcome, which a later reversal or a
// support lookup will find.
func (e *Engine) Pay(ctx context.Context, r Retailer, req *wire.PaymentRequest, raw []byte) (*wire.PaymentResponse, *wire.Failure) {
	h, f := e.Admit(ctx, r, req, raw)
	if f != nil {
		return nil, f
	}
	return h.Await(ctx)
}

// Held is a payment request admitted by Admit, whose answer Await waits
// for. Every Held must be awaited.
type Held struct {
	e       *Engine
	p       *Payment
	woken   <-chan struct{}
	unwatch func()
}

// Admit checks and stores a payment request, linking a scan that is
// already held for its QR code: the first half of Pay. Nothing is stored
// when it fails.
//
// The two halves let a caller keep the long wait apart from the deep work
// before it (see retailers' pay handler): Admit's JSON and store work
// grows a goroutine's stack past 8 KiB, and a goroutine waiting out
// scan_wait keeps the stack it grew.
func (e *Engine) Admit(ctx context.Context, r Retailer, req *wire.PaymentRequest, raw []byte) (*Held, *wire.Failure) {
	if f := e.intake(r, req, req.ID, req.Originator); f != nil {
		return nil, f
	}
	woken, unwatch := e.watch(PaymentKey(r.ID, req.ID))
	held := false
	defer func() {
		if !held { // failed, or panicked: nothing will wait
			unwatch()
		}
	}()
	p, f := e.admit(ctx, r, req, raw)
	if f != nil {
		return nil, f
	}
	held = true
	return &Held{e: e, p: p, woken: woken, unwatch: unwatch}, nil
}

// Await holds an admitted payment request until its answer: the scan
// linked and the partner's answer, or NO_SCAN once scan_wait passes.
// ctx ending does not stop it (see Pay).
func (h *Held) Await(ctx context.Context) (*wire.PaymentResponse, *wire.Failure) {
	defer h.unwatch()
	e, p := h.e, h.p
	ctx = context.WithoutCancel(ctx)
	if p.State == outcome.AwaitingScan {
		p = e.awaitScan(ctx, p, h.woken)
	}
	if p.State == outcome.Forwarded && p.Owner == e.node {
		p = e.forward(ctx, p)
	}
	return payAnswer(p)
}

// admit stores a new payment request, linking a scan that is already held
// for its QR code. Nothing is stored when it fails.
func (e *Engine) admit(ctx context.Context, r Retailer, req *wire.PaymentRequest, raw []byte) (*Payment, *wire.Failure) {
	key := PaymentKey(r.ID, req.ID)
	for range maxRetries {
		now := e.now()
		code, err := e.store.QR(ctx, req.TranID)
		switch {
		case errors.Is(err, ErrNotFound) || err == nil && code.RetailerID != r.ID:
			return nil, fail(400, wire.InvalidTranID, "Unknown tranId", req.ID, req.TranID)
		case err != nil:
			return nil, storeFailure(err, req.ID, req.TranID)
		case code.Expired(now):
			return nil, fail(400, wire.InvalidTranID, "QR code expired", req.ID, req.TranID)
		}
		if f := checkAmount(code, req); f != nil {
			return nil, f
		}
		if f := e.checkInUse(ctx, code, key, req); f != nil {
			return nil, f
		}
		p := &Payment{
			RetailerID: r.ID,
			RequestID:  req.ID,
			TranID:     req.TranID,
			State:      outcome.AwaitingScan,
			Request:    req,
			Owner:      e.node,
			HoldUntil:  now.Add(e.opts.ScanWait + holdMargin),
			CreatedAt:  now,
			UpdatedAt:  now,
		}
		trace := []TraceEntry{inbound(now, "retailer:"+r.ID, "pay", req.ID, raw)}
		held := code.HeldScan
		code.HeldScan = nil
		code.PaymentKey = key
		linked := false
		if held != nil && now.Before(held.Until) {
			if partner, ok := e.partners[held.PartnerID]; ok {
				if p, err = e.link(p, held, partner, now); err != nil {
					return nil, storeFailure(err, req.ID, req.TranID)
				}
				linked = true
				// The held scan is answered 202 once it sees this link
				// (awaitLink); its answer is traced here, in the same
				// commit, rather than in a commit of its own.
				trace = append(trace, event(now, "scanLinked", fmt.Sprintf(
					"scan %s from partner %s arrived %s before the payment request and was held; linked",
					held.ID, held.PartnerID, now.Sub(held.ReceivedAt).Round(time.Millisecond))),
					answered(now, "partner:"+held.PartnerID, "notifyScan", held.ID, 202, nil, now.Sub(held.ReceivedAt)))
			}
		}
		err = e.store.Commit(ctx, &Change{QR: code, Payment: p, Trace: trace})
		switch {
		case err == nil:
			if linked {
				e.wake(ctx, scanKey(req.TranID))
				e.obs.ScanLinked(true, now.Sub(held.ReceivedAt))
			}
			return p, nil
		case errors.Is(err, ErrConflict):
			continue // the QR code changed under us (a scan arrived): decide again
		case errors.Is(err, ErrDuplicate):
			return nil, fail(400, wire.DuplicateRecord, "Duplicate request id", req.ID, req.TranID)
		default:
			return nil, storeFailure(err, req.ID, req.TranID)
		}
	}
	return nil, storeFailure(errContention, req.ID, req.TranID)
}

// checkAmount refuses a payment whose amount the QR code does not allow.
func checkAmount(code *QRCode, req *wire.PaymentRequest) *wire.Failure {
	amt := req.Amounts.RequestAmount
	if amt.Amount <= 0 {
		return fail(400, wire.InvalidAmount, "Amount must be positive", req.ID, req.TranID)
	}
	if code.Request == nil {
		return nil
	}
	var fixed *wire.LedgerAmount
	if qp := code.Request.QrProperties; qp != nil && qp.Value != nil {
		fixed = qp.Value
	}
	if fixed == nil || fixed.Amount == 0 {
		return nil
	}
	qp := code.Request.QrProperties
	switch {
	case amt.Currency != fixed.Currency:
		return fail(400, wire.InvalidAmount, "Currency differs from the QR code", req.ID, req.TranID)
	case amt.Amount > fixed.Amount && (qp.OverPaymentAllowed == nil || !*qp.OverPaymentAllowed):
		return fail(400, wire.InvalidAmount, "Amount above the QR code's value", req.ID, req.TranID)
	case amt.Amount < fixed.Amount && (qp.PartPaymentAllowed == nil || !*qp.PartPaymentAllowed):
		return fail(400, wire.InvalidAmount, "Amount below the QR code's value", req.ID, req.TranID)
	}
	return nil
}

// checkInUse refuses a payment for a QR code another payment is using.
func (e *Engine) checkInUse(ctx context.Context, code *QRCode, key string, req *wire.PaymentRequest) *wire.Failure {
	switch {
	case code.PaymentKey == "":
		return nil
	case code.PaymentKey == key:
		return fail(400, wire.DuplicateRecord, "Duplicate request id", req.ID, req.TranID)
	case code.SingleUse:
		return fail(400, wire.InvalidTranID, "QR code already used", req.ID, req.TranID)
	}
	prev, err := e.store.Payment(ctx, code.PaymentKey)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return storeFailure(err, req.ID, req.TranID)
	}
	if err == nil && !prev.State.Final() {
		return fail(400, wire.InvalidTranID, "QR code in use by another payment", req.ID, req.TranID)
	}
	return nil
}

// link attaches a scan to a waiting payment: a copy of p, FORWARDED to the
// partner that scanned.
func (e *Engine) link(p *Payment, s *Scan, partner *partners.Partner, now time.Time) (*Payment, error) {
	q, err := move(p, outcome.Forwarded, now)
	if err != nil {
		return nil, err
	}
	q.Scan = s
	q.HoldUntil = now.Add(e.callTimeout(q, partner, now) + holdMargin)
	return q, nil
}

// answerMargin is kept back from the retailer's timeout for the switch's
// own work and the network, so that the answer reaches the POS in time.
const answerMargin = 2 * time.Second

// callTimeout is how long the partner may take to answer p's payment: its
// agreed timeout, or what is left of the retailer's when that is less
// (a scan late in the scan wait), so that the POS always has its answer
// within RetailerTimeout.
func (e *Engine) callTimeout(p *Payment, partner *partners.Partner, now time.Time) time.Duration {
	if p.Checkout != nil {
		return partner.Timeout // no POS is waiting
	}
	left := p.CreatedAt.Add(e.opts.RetailerTimeout - answerMargin).Sub(now)
	return max(min(partner.Timeout, left), minCallTimeout)
}

// minCallTimeout is the least time a partner is given: a configuration
// whose scan wait leaves less is refused (see cmd/qrswitch/internal/config),
// so this only bounds a clock gone wrong.
const minCallTimeout = time.Second

// scanKey is the wake-up key of scans held for a QR code.
func scanKey(tranID string) string { return "scan/" + tranID }

// awaitScan waits until the payment leaves AWAITING_SCAN: a scan linked it,
// a retailer reversal ended it, or scan_wait passed and it becomes NO_SCAN.
func (e *Engine) awaitScan(ctx context.Context, p *Payment, woken <-chan struct{}) *Payment {
	timer := time.NewTimer(p.CreatedAt.Add(e.opts.ScanWait).Sub(e.now()))
	defer timer.Stop()
	var recheck <-chan time.Time
	if e.opts.Recheck > 0 {
		t := time.NewTicker(e.opts.Recheck)
		defer t.Stop()
		recheck = t.C
	}
	key := p.Key()
	for p.State == outcome.AwaitingScan {
		select {
		case <-woken:
		case <-recheck:
		case <-timer.C:
			return e.endNoScan(ctx, p)
		}
		cur, err := e.store.Payment(ctx, key)
		if err != nil {
			// Keep waiting: the store may be back before the scan window
			// closes, and endNoScan will retry it then.
			e.logger(ctx).Warn().Err(err).Str("payment", key).Msg("re-reading a held payment")
			continue
		}
		p = cur
	}
	return p
}

// endNoScan closes the scan window of a payment still AWAITING_SCAN.
//
// A store that does not answer is tried again (see outage): a NO_SCAN a
// little late beats "outcome unknown", which is all that can be answered
// while the store is away (another replica may have linked a scan).
func (e *Engine) endNoScan(ctx context.Context, p *Payment) *Payment {
	away := e.outage(p, holdMargin)
	for conflicts := 0; conflicts < maxRetries; {
		if p.State != outcome.AwaitingScan {
			return p
		}
		now := e.now()
		q := noScanPayment(p, now)
		trace := []TraceEntry{
			event(now, "noScan", fmt.Sprintf("no scan within %s; nothing sent upstream", e.opts.ScanWait)),
			answered(now, "retailer:"+p.RetailerID, "pay", p.RequestID, q.Status, q.Error, now.Sub(p.CreatedAt)),
		}
		err := e.store.Commit(ctx, &Change{Payment: q, Trace: trace})
		if err == nil {
			return q
		}
		if errors.Is(err, ErrConflict) {
			conflicts++
		} else if !away.wait(ctx, err, p.Key(), "recording no scan") {
			return p
		}
		if cur, rerr := e.store.Payment(ctx, p.Key()); rerr == nil {
			p = cur
		}
	}
	return p
}

// noScanPayment is p failed for want of a scan.
func noScanPayment(p *Payment, now time.Time) *Payment {
	q, err := move(p, outcome.NoScan, now)
	if err != nil {
		panic(err) // callers check the state first
	}
	q.PayOutcome = outcome.Failed
	q.Status = 400
	q.Error = wire.NewErrorDetail(wire.NoScanReceived, "No scan received", p.RequestID, p.TranID)
	if p.Checkout != nil {
		q.Error = wire.NewErrorDetail(wire.NoScanReceived, "Checkout expired unpaid", p.RequestID, p.TranID)
	}
	q.HoldUntil = time.Time{}
	return q
}

// forward sends a linked payment to its partner and stores the outcome.
func (e *Engine) forward(ctx context.Context, p *Payment) *Payment {
	partner, ok := e.partners[p.PartnerID()]
	if !ok {
		// The partner left the configuration while a scan of its was
		// linked: nothing can be sent, so nothing happened upstream.
		d := fail(503, wire.UpstreamUnavailable, "Partner unavailable", p.RequestID, p.TranID)
		d.Detail.DetailMessage = wire.Detail("partner " + p.PartnerID() + " is not configured: the payment was not sent")
		a := &partners.Answer{Outcome: outcome.Failed, Decline: d, Err: fmt.Errorf("partner %s is not configured: %w", p.PartnerID(), outcome.ErrNotSent)}
		return e.settlePay(ctx, p, &partners.Partner{ID: p.PartnerID()}, a, nil)
	}
	q := e.queues[partner.ID]
	msg := &partners.Payment{Key: p.Key(), TranID: p.TranID, Request: p.Request, Partner: partner.Institution(), Token: p.Scan.PaymentToken}
	sentAt := e.now()
	timeout := e.callTimeout(p, partner, sentAt)
	a, ended := e.call(q, outcome.Pay.String(), timeout, p.Key(), p.RequestID, func(ctx context.Context) *partners.Answer {
		return partner.Rail.Pay(ctx, msg)
	})
	trace := exchange(sentAt, q.id, outcome.Pay.String(), p.RequestID, a)
	if a.Outcome == outcome.Unknown {
		if inq, ok := partner.Rail.(partners.Inquirer); ok {
			if left := e.callTimeout(p, partner, e.now()); left > minCallTimeout {
				// Ask before reversing: a final answer settles the payment
				// as if the partner had given it in time.
				askedAt := e.now()
				ia, _ := e.call(q, "inquire", left, p.Key(), p.RequestID, func(ctx context.Context) *partners.Answer {
					return inq.Inquire(ctx, msg)
				})
				trace = append(trace, exchange(askedAt, q.id, "inquire", p.RequestID, ia)...)
				if ia.Outcome.Final() {
					a = ia
				}
			}
		}
	}
	p = e.settlePay(ctx, p, partner, a, trace)
	if errors.Is(a.Err, errTimeout) {
		// The timed-out call may still deliver the payment; its reversal
		// waits for the call to end, then goes at once.
		e.late.Go(func() {
			select {
			case <-ended:
				e.releaseDeferred(p.Key())
			case <-e.base.Done():
			}
		})
	}
	return p
}

// releaseDeferred sends a payment's deferred timeout reversal now: the
// timed-out call it waited for is over (answered late, failed, or its late
// window passed), so nothing can overtake the reversal any more, and the
// customer's funds are not held longer than needed.
func (e *Engine) releaseDeferred(paymentKey string) {
	ctx := context.WithoutCancel(e.base)
	for range maxRetries {
		p, err := e.store.Payment(ctx, paymentKey)
		if err != nil || p.AdviceKey == "" {
			return
		}
		a, err := e.store.Advice(ctx, p.AdviceKey)
		now := e.now()
		if err != nil || a.State != AdvicePending || a.Attempts > 0 || !a.NextAt.After(now) || a.LeaseOwner != "" {
			return // sent, leased, or not deferred
		}
		a.NextAt = now
		err = e.commit(ctx, &Change{Advices: []*Advice{a}, TraceKey: paymentKey, Trace: []TraceEntry{
			event(now, "reversalReleased", "the timed-out call is over: reversal "+a.ID+" sent now")}})
		if !errors.Is(err, ErrConflict) {
			if err != nil {
				e.log.Warn().Err(err).Str("payment", paymentKey).Msg("releasing a deferred reversal; it goes when its deferral ends")
			}
			return
		}
	}
}

// settlePay applies the payment leg's answer to a FORWARDED payment and
// stores it, with the answer the retailer gets. If the payment is no longer
// FORWARDED (recovery decided first), the answer is recorded as ignored.
func (e *Engine) settlePay(ctx context.Context, p *Payment, partner *partners.Partner, a *partners.Answer, trace []TraceEntry) *Payment {
	// An approval stored a few seconds late beats one reversed.
	away := e.outage(p, storeOutage)
	for conflicts := 0; conflicts < maxRetries; {
		if p.State != outcome.Forwarded {
			note := event(e.now(), "answerIgnored", "payment already "+string(p.State)+"; this answer changes nothing")
			if err := e.store.Commit(ctx, &Change{TraceKey: p.Key(), Trace: append(trace, note)}); err != nil {
				e.logger(ctx).Error().Err(err).Str("payment", p.Key()).Msg("tracing an ignored answer")
			}
			return p
		}
		change, err := e.applyPay(ctx, p, partner, a)
		if err == nil {
			change.Trace = append(trace, change.Trace...)
			if err = e.commit(ctx, change); err == nil {
				return change.Payment
			}
		}
		if errors.Is(err, ErrConflict) {
			conflicts++
		} else if !away.wait(ctx, err, p.Key(), "storing a payment's outcome") {
			break
		}
		if cur, rerr := e.store.Payment(ctx, p.Key()); rerr == nil {
			p = cur
		}
	}
	// The outcome could not be stored. The payment stays FORWARDED and
	// recovery will reverse it once its hold expires; the retailer is told
	// the outcome is unknown, which is the truth.
	q := *p
	q.PayOutcome = outcome.Unknown
	q.Status = 504
	q.Error = wire.NewErrorDetail(wire.UpstreamUnavailable, "Outcome unknown", p.RequestID, p.TranID)
	return &q
}

// applyPay decides what the answer to the payment leg does to p: the new
// payment state, the retailer's answer, and the advice to queue, if any.
func (e *Engine) applyPay(ctx context.Context, p *Payment, partner *partners.Partner, a *partners.Answer) (*Change, error) {
	now := e.now()
	var held *Advice
	if p.HeldReversal != "" {
		h, err := e.store.Advice(ctx, p.HeldReversal)
		if err != nil {
			return nil, err
		}
		held = h
	}
	next := outcome.Reversing
	switch {
	case a.Outcome == outcome.Successful && held == nil:
		next = outcome.Approved
	case a.Outcome == outcome.Failed:
		next = outcome.Declined
	}
	q, err := move(p, next, now)
	if err != nil {
		return nil, err
	}
	q.PayOutcome = a.Outcome
	q.HoldUntil = time.Time{}
	if q.Scan != nil && q.Scan.PaymentToken != "" {
		// The payment token was for this one payment request, which is
		// now answered; advices do not carry it. A secret not kept cannot
		// leak from the store.
		s := *q.Scan
		s.PaymentToken = ""
		q.Scan = &s
	}
	change := &Change{Payment: q}
	switch a.Outcome {
	case outcome.Successful:
		q.Status = 201
		q.Response = retailerResponse(q, partner, a.Response)
		q.Error = nil
		if held == nil && q.Checkout != nil {
			if err := e.settleCheckout(q, change, now, tenderReference(q.Response)); err != nil {
				return nil, err
			}
		}
		if held != nil {
			e.queue(held, now)
			q.AdviceKey = held.Key()
			change.Advices = append(change.Advices, held)
			change.Trace = append(change.Trace, event(now, "reversalReleased", "approved while a retailer reversal was held: reversal queued"))
		}
	case outcome.Failed:
		q.Status, q.Error = declined(p, a)
		if held != nil {
			e.finishLocally(held, now, "payment declined: nothing to reverse upstream")
			change.Advices = append(change.Advices, held)
		}
	default:
		q.Status = 504
		q.Error = wire.NewErrorDetail(wire.UpstreamUnavailable, "No final answer from partner", p.RequestID, p.TranID)
		q.Error.DetailMessage = wire.Detail("the outcome is unknown; the switch is reversing the payment with the partner")
		adv := held
		if adv == nil {
			adv = e.timeoutReversal(p, now)
			change.Trace = append(change.Trace, event(now, "timeoutReversal", "outcome unknown: timeout reversal "+adv.ID+" queued"))
		} else {
			change.Trace = append(change.Trace, event(now, "reversalReleased", "outcome unknown and a retailer reversal was held: it is the one reversal sent"))
		}
		e.queue(adv, now)
		if errors.Is(a.Err, errTimeout) {
			// The timed-out request may still be on its way: its call goes
			// on for LateWindow after the timeout. A reversal sent now
			// could overtake it and be answered 404 (nothing to reverse)
			// before the payment lands, leaving the customer's funds held.
			// It goes once the call is over (releaseDeferred), at the
			// latest when the late window ends.
			adv.NextAt = now.Add(e.opts.LateWindow)
			change.Trace = append(change.Trace, event(now, "reversalDeferred",
				"reversal sent once the timed-out request can no longer reach the partner (at most "+e.opts.LateWindow.String()+")"))
		}
		q.AdviceKey = adv.Key()
		change.Advices = append(change.Advices, adv)
	}
	q.HeldReversal = ""
	if q.State == outcome.Approved || q.State == outcome.Reversing && q.PayOutcome == outcome.Successful {
		change.Trace = append(change.Trace, answered(now, "retailer:"+p.RetailerID, "pay", p.RequestID, q.Status, q.Response, now.Sub(p.CreatedAt)))
	} else {
		change.Trace = append(change.Trace, answered(now, "retailer:"+p.RetailerID, "pay", p.RequestID, q.Status, q.Error, now.Sub(p.CreatedAt)))
	}
	return change, nil
}

// retailerResponse is the partner's approval as the retailer sees it: the
// retailer's own ids, the partner named, and no partner payment token (the
// retailer has no use for it, and it is a secret).
func retailerResponse(p *Payment, partner *partners.Partner, resp *wire.PaymentResponse) *wire.PaymentResponse {
	var out wire.PaymentResponse
	if resp != nil {
		out = *resp
	} else {
		out.Transaction = p.Request.Transaction
	}
	out.ID = p.RequestID
	out.TranID = p.TranID
	if out.Time == "" {
		out.Time = p.Request.Time
	}
	if out.Originator == nil {
		out.Originator = p.Request.Originator
	}
	if out.Client == nil {
		out.Client = p.Request.Client
	}
	if out.ThirdPartyIdentifiers == nil {
		out.ThirdPartyIdentifiers = p.Request.ThirdPartyIdentifiers
	}
	if out.Partner == nil || out.Partner.ID == "" {
		out.Partner = partner.Institution()
	}
	if out.Amounts == nil {
		out.Amounts = p.Request.Amounts
	}
	out.PartnerPaymentToken = ""
	if len(out.Tenders) > 0 {
		// A card number never goes further than the partner's answer: the
		// switch keeps (and the retailer needs) what may be printed on a
		// slip, the first six and last four digits.
		tenders := make([]wire.Tender, len(out.Tenders))
		for i, t := range out.Tenders {
			if t.CardNumber != "" {
				t.CardNumber = wire.MaskPAN(t.CardNumber)
			}
			tenders[i] = t
		}
		out.Tenders = tenders
	}
	return &out
}

// declined is the retailer's answer to a failed payment leg: the decline
// its rail built, with the retailer's own ids. A rail that built none (a
// bug in the rail) still gets the payment declined, never approved.
func declined(p *Payment, a *partners.Answer) (int, *wire.ErrorDetail) {
	if a.Decline == nil || a.Decline.Detail == nil {
		d := wire.NewErrorDetail(wire.DeclinedByPartner, "Declined by partner", p.RequestID, p.TranID)
		d.DetailMessage = wire.Detail("the partner declined the payment (" + a.Code + ")")
		return 400, d
	}
	d := *a.Decline.Detail
	d.ID = wire.NewErrorID()
	d.OriginalID = p.RequestID
	d.TranID = p.TranID
	d.ErrorMessage = wire.ShortMessage(d.ErrorMessage)
	status := a.Decline.Status
	if status != 400 && status != 503 {
		// The interface's failed statuses for pay are 400 and 503; a
		// 500 or 504 would tell the POS the outcome is unknown.
		status = 400
	}
	return status, &d
}

// payAnswer is the retailer's answer to a payment in its stored state.
func payAnswer(p *Payment) (*wire.PaymentResponse, *wire.Failure) {
	if p.PayOutcome == outcome.Successful && p.Response != nil {
		return p.Response, nil
	}
	if p.Error == nil {
		return nil, fail(504, wire.UpstreamUnavailable, "Outcome unknown", p.RequestID, p.TranID)
	}
	status := p.Status
	if status == 0 {
		status = 400
	}
	return nil, &wire.Failure{Status: status, Detail: p.Error}
}

// tenderReference is the partner's reference of an approval: its first
// tender's, else the empty string.
func tenderReference(r *wire.PaymentResponse) string {
	for _, t := range r.Tenders {
		if t.Reference != "" {
			return t.Reference
		}
	}
	return ""
}
