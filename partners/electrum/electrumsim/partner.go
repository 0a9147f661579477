package electrumsim

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// flakyAdviceFailures is how many advice deliveries of a behaviour-50
// payment are answered 500 before the advice is applied.
const flakyAdviceFailures = 3

// servePay answers POST /qr/v1/payments.
func (s *Sim) servePay(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req wire.PaymentRequest
	if !decode(w, body, &req) {
		return
	}
	fault := s.faults.take(OpPay)
	if fault == FaultRefuse {
		drop(w)
		return
	}
	amount := req.Amounts.RequestAmount
	b := BehaviourFor(amount.Amount)
	now := s.cfg.Now()

	sh := s.payments.of(req.ID)
	sh.mu.Lock()
	if p := sh.m[req.ID]; p != nil {
		p.entry.Deliveries++
		sh.mu.Unlock()
		writeError(w, http.StatusBadRequest,
			wire.NewErrorDetail(wire.DuplicateRecord, "Duplicate payment request id", req.ID, req.TranID))
		return
	}
	p := &payment{kind: b.kind, entry: PaymentEntry{
		ID:                  req.ID,
		TranID:              req.TranID,
		Amount:              amount.Amount,
		Currency:            amount.Currency,
		Behaviour:           b.Name,
		State:               StateDeclined,
		PartnerPaymentToken: maskToken(req.PartnerPaymentToken),
		Deliveries:          1,
		ReceivedAt:          now,
	}}
	switch {
	case fault != "":
		p.kind = kindDecline // a faulted payment was never processed
		p.entry.Fault = string(fault)
		p.entry.Status = fault.status()
	case b.kind.approves():
		p.entry.State = StateReserved
		p.entry.Reference = newReference()
		if b.kind != kindLate && b.kind != kindSlow && b.kind != kindDrop {
			p.entry.Status = b.Status
		}
	default:
		p.entry.Status = b.Status
	}
	switch {
	case p.entry.Status != 0:
		p.entry.AnsweredAt = now
	case fault != "":
		p.entry.Note = "fault " + string(fault) + ": no answer"
	case b.kind == kindDrop:
		p.entry.Note = "connection dropped without an answer"
	default:
		p.entry.Note = "answer held"
	}
	sh.m[req.ID] = p
	ref := p.entry.Reference
	sh.mu.Unlock()

	if fault != "" {
		s.answerFault(w, r, fault, req.ID, req.TranID)
		return
	}
	switch b.kind {
	case kindDecline:
		if b.Body == BodyNone {
			w.WriteHeader(b.Status)
			return
		}
		writeError(w, b.Status, wire.NewErrorDetail(b.ErrorType, b.message, req.ID, req.TranID))
		return
	case kindDrop:
		drop(w)
		return
	case kindMalformed:
		writeJSON(w, http.StatusCreated, []byte(`{"id":"`+req.ID+`","amounts":{"requestAmount":{"amount":`))
		return
	case kindLate, kindSlow:
		wait := s.cfg.SlowAfter
		if b.kind == kindLate {
			wait = s.cfg.LateAfter
		}
		if !s.hold(r.Context(), wait) {
			s.settle(sh, p, 0, s.holdNote(r.Context()))
			drop(w)
			return
		}
		s.settle(sh, p, http.StatusCreated, "")
	}
	resp, err := json.Marshal(s.approval(&req, ref))
	if err != nil {
		writeError(w, http.StatusInternalServerError,
			wire.NewErrorDetail(wire.GeneralError, "Partner system error", req.ID, req.TranID))
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// settle records the end of a held answer.
func (s *Sim) settle(sh *shard[payment], p *payment, status int, note string) {
	now := s.cfg.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p.entry.Status = status
	p.entry.Note = note
	if status != 0 {
		p.entry.AnsweredAt = now
	}
}

// approval is the sim's PaymentResponse to req: the request echoed, the sim
// as partner, the whole amount approved and paid from the customer's wallet.
func (s *Sim) approval(req *wire.PaymentRequest, ref string) *wire.PaymentResponse {
	amounts := *req.Amounts
	approved := *amounts.RequestAmount
	amounts.ApprovedAmount = &approved
	partner := s.identity
	return &wire.PaymentResponse{
		Transaction:         req.Transaction,
		Partner:             &partner,
		Amounts:             &amounts,
		TranID:              req.TranID,
		PartnerPaymentToken: req.PartnerPaymentToken,
		Tenders: []wire.Tender{{
			TenderType: "WALLET",
			Amount:     &approved,
			Reference:  ref,
		}},
	}
}

// newReference returns a fresh partner reference for a tender.
func newReference() string {
	return "SIM" + strings.ToUpper(strings.ReplaceAll(wire.NewID(), "-", "")[:16])
}

// answerFault answers a request with an injected fault.
func (s *Sim) answerFault(w http.ResponseWriter, r *http.Request, f FaultType, originalID, tranID string) {
	switch f {
	case Fault500:
		writeError(w, f.status(), wire.NewErrorDetail(wire.GeneralError, "Partner system error", originalID, tranID))
	case Fault503:
		writeError(w, f.status(), wire.NewErrorDetail(wire.UpstreamUnavailable, "Partner system unavailable", originalID, tranID))
	case Fault504:
		w.WriteHeader(f.status())
	case FaultHang:
		s.hold(r.Context(), s.cfg.LateAfter)
		drop(w)
	default: // FaultDrop
		drop(w)
	}
}

// serveAdvice answers POST /qr/v1/payments/confirmations (op OpConfirm) and
// /qr/v1/payments/reversals (op OpReverse).
func (s *Sim) serveAdvice(w http.ResponseWriter, r *http.Request, op Operation) {
	if !s.authorized(w, r) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var (
		adv    *wire.BasicAdvice
		kind   = KindConfirmation
		reason string
	)
	if op == OpConfirm {
		var c wire.PaymentConfirmation
		if !decode(w, body, &c) {
			return
		}
		adv = &c.BasicAdvice
	} else {
		var rev wire.PaymentReversal
		if !decode(w, body, &rev) {
			return
		}
		adv, kind, reason = &rev.BasicAdvice, KindReversal, rev.ReversalReason
	}
	fault := s.faults.take(op)
	if fault == FaultRefuse {
		drop(w)
		return
	}
	now := s.cfg.Now()

	sh := s.advices.of(adv.ID)
	sh.mu.Lock()
	a := sh.m[adv.ID]
	switch {
	case a == nil:
		a = &advice{entry: AdviceEntry{
			ID:             adv.ID,
			Kind:           kind,
			RequestID:      adv.RequestID,
			TranID:         adv.TranID,
			ReversalReason: reason,
			FirstReceived:  now,
		}}
		sh.m[adv.ID] = a
	case a.entry.Kind != kind || a.entry.RequestID != adv.RequestID:
		// Not a repeat: another message under an id the sim holds.
		sh.mu.Unlock()
		writeError(w, http.StatusBadRequest,
			wire.NewErrorDetail(wire.DuplicateRecord, "Advice id already used", adv.ID, adv.TranID))
		return
	}
	a.entry.Deliveries++
	a.entry.LastReceived = now
	if fault != "" {
		a.entry.FailedDeliveries++
		a.entry.LastStatus = fault.status()
		sh.mu.Unlock()
		s.answerFault(w, r, fault, adv.ID, adv.TranID)
		return
	}
	if a.answered && s.quirks.has(QuirkRepeatIsDuplicate) {
		sh.mu.Unlock()
		repeatAsDuplicate(w, adv)
		return
	}
	status, out := a.entry.Status, a.body
	if a.answered {
		s.countAdvice(adv.RequestID)
	} else {
		var final bool
		status, out, final = s.apply(a, op, adv, body)
		if final {
			a.answered, a.entry.Status, a.body = true, status, out
		} else {
			a.entry.FailedDeliveries++
		}
	}
	a.entry.LastStatus = status
	sh.mu.Unlock()
	if out == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, out)
}

// countAdvice counts a repeated advice delivery on its payment, if the sim
// holds it. The advice's shard lock is held, as for apply.
func (s *Sim) countAdvice(requestID string) {
	ps := s.payments.of(requestID)
	ps.mu.Lock()
	if p := ps.m[requestID]; p != nil {
		p.entry.AdviceDeliveries++
	}
	ps.mu.Unlock()
}

// apply works out an advice's answer and applies its effect on the
// payment's funds. It reports whether the answer is the advice's own (final)
// rather than a transient failure. The advice's shard lock is held; apply
// takes the payment's, always in that order.
func (s *Sim) apply(a *advice, op Operation, adv *wire.BasicAdvice, body []byte) (status int, out []byte, final bool) {
	fail := func(status int, errorType, message, note string) (int, []byte, bool) {
		a.entry.Note = note
		d := wire.NewErrorDetail(errorType, message, adv.ID, a.entry.TranID)
		d.DetailMessage = wire.Detail(note)
		b, _ := json.Marshal(d) // an ErrorDetail of strings always marshals
		return status, b, true
	}
	accept := func(effect State, note string) (int, []byte, bool) {
		if effect != "" {
			a.entry.EffectApplied, a.entry.Effect = true, effect
		}
		a.entry.Note = note
		return http.StatusAccepted, body, true
	}

	ps := s.payments.of(adv.RequestID)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.m[adv.RequestID]
	if p == nil {
		note := "no such payment"
		if op == OpReverse {
			note = "no such payment: nothing to reverse"
		}
		return fail(http.StatusNotFound, wire.UnableToLocateRecord, "Payment not found", note)
	}
	if a.entry.TranID == "" {
		a.entry.TranID = p.entry.TranID
	}
	p.entry.AdviceDeliveries++
	switch p.kind {
	case kindFlakyAdvice:
		if p.entry.AdviceDeliveries <= flakyAdviceFailures {
			status, out, _ = fail(http.StatusInternalServerError, wire.GeneralError, "Partner system error",
				"behaviour 50: the payment's first advice deliveries fail")
			return status, out, false
		}
	case kindFailedAdvice:
		return fail(http.StatusServiceUnavailable, wire.UpstreamUnavailable, "Partner system unavailable",
			"behaviour 74: every advice of the payment fails")
	}
	if op == OpConfirm {
		switch p.entry.State {
		case StateReserved:
			p.entry.State = StateCaptured
			return accept(StateCaptured, "")
		case StateCaptured:
			return accept("", "payment already captured by another confirmation")
		case StateReleased:
			return fail(http.StatusBadRequest, wire.TransactionNotSupported, "Payment already reversed",
				"confirmation after reversal refused")
		default:
			return fail(http.StatusBadRequest, wire.TransactionNotSupported, "Payment was declined",
				"confirmation of a declined payment refused")
		}
	}
	switch p.entry.State {
	case StateReserved:
		p.entry.State = StateReleased
		return accept(StateReleased, "")
	case StateReleased:
		return accept("", "payment already released by another reversal")
	case StateCaptured:
		return fail(http.StatusBadRequest, wire.TransactionNotSupported, "Payment already confirmed",
			"reversal after confirmation refused")
	default:
		return accept("", "payment was declined: nothing to release")
	}
}
