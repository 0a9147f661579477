package ipp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
	"github.com/qrswitch/qrswitch/qr"
)

// notify is the accountant endpoint: a counterpart's notification, parsed,
// verified against its brand and answered with a code of section 9.
// Nothing is recorded, and the engine is told nothing, before the
// notification verified.
func (r *Rail) notify(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 8<<10+1))
	if err != nil {
		writeReply(w, replyOf(protocol.CodeBadRequest, "reading the notification: %v", err))
		return
	}
	rep := r.Receive(req.Context(), body)
	if rep.Code == protocol.CodeServerError {
		partners.SetCause(w, errors.New(rep.Message))
	}
	writeReply(w, rep)
}

func replyOf(c protocol.Code, format string, a ...any) *protocol.Reply {
	return &protocol.Reply{Code: c, Status: c.Status(), Message: fmt.Sprintf(format, a...)}
}

func replyErr(err error) *protocol.Reply {
	var pe *protocol.ParamError
	if errors.As(err, &pe) {
		return &protocol.Reply{Code: pe.Code, Status: pe.Code.Status(), Message: pe.Error()}
	}
	return replyOf(protocol.CodeServerError, "%v", err)
}

func writeReply(w http.ResponseWriter, rep *protocol.Reply) {
	b, _ := json.Marshal(rep)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.HTTPStatus())
	w.Write(b)
}

// Receive takes one URL-encoded notification and returns the reply.
func (r *Rail) Receive(ctx context.Context, body []byte) *protocol.Reply {
	n, err := protocol.ParseNotification(body)
	if err != nil {
		return replyErr(err)
	}
	if _, ours := r.retailerOf(n.To); !ours {
		return replyOf(protocol.CodeInvalidRelay, "to: %s is not a brand this accountant serves", n.To)
	}
	// Verification fetches the notifier's manifest and asks its
	// accountant: only a notification that names something of the
	// switch's (a live relay of the brand it is sent to, or one of the
	// switch's offers) gets that far, so nobody can make the switch fetch
	// arbitrary URLs. Refusing the others before verification does
	// nothing for them.
	switch {
	case n.Code == protocol.CodeOffer && n.Reversal():
		return replyOf(protocol.CodeUserNotAuth, "a reversal offer comes from the payee: this accountant's brands accept none")
	case n.Code == protocol.CodeOffer:
		if rep := r.checkRelay(ctx, n); rep != nil {
			return rep
		}
	default:
		p, err := r.readPayment(ctx, n.OriginalKey())
		switch {
		case errors.Is(err, partners.ErrNotFound):
			return replyOf(protocol.CodeInvalidRelay, "no offer of this accountant is the decision's record")
		case err != nil:
			return replyOf(protocol.CodeServerError, "reading the payment record: %v", err)
		case p.Role != roleReversal:
			return replyOf(protocol.CodeConflictStatus, "the payment is the counterpart's offer, decided by this accountant")
		}
	}
	// The counterpart is the payer's brand: the offerer of a payment to
	// one of the switch's brands, and the decider on the switch's reversal
	// offers of such a payment.
	ev, err := protocol.Verifier{Dir: r.dir}.Verify(ctx, n, n.From)
	if err != nil {
		return replyErr(err)
	}
	if n.Code == protocol.CodeOffer {
		return r.receiveOffer(ctx, n, ev)
	}
	return r.receiveDecision(ctx, n, ev)
}

// checkRelay answers an offer that names no live relay of its brand.
func (r *Rail) checkRelay(ctx context.Context, n *protocol.Notification) *protocol.Reply {
	if n.Relay == "" {
		return replyOf(protocol.CodeInvalidRelay, "ipp_relay: an offer to %s names the relay of its QR code", n.To)
	}
	rl, _, err := r.readRelay(ctx, n.Relay)
	switch {
	case errors.Is(err, partners.ErrNotFound):
		return replyOf(protocol.CodeInvalidRelay, "ipp_relay: no QR code has this relay")
	case err != nil:
		return replyOf(protocol.CodeServerError, "reading the relay: %v", err)
	case rl.Brand != n.To:
		return replyOf(protocol.CodeInvalidCredentials, "the relay is not %s's", n.To)
	}
	return nil
}

// receiveOffer decides a verified offer for one of the switch's codes.
func (r *Rail) receiveOffer(ctx context.Context, n *protocol.Notification, ev *protocol.Evidence) *protocol.Reply {
	key, sum := n.OriginalKey(), n.SHA1()
	for attempt := 0; ; attempt++ {
		p, err := r.readPayment(ctx, key)
		switch {
		case err == nil:
			if rep := p.Replies[sum]; rep != nil {
				return rep // a repeat: the same answer, nothing done again
			}
			return replyOf(protocol.CodeConflictStatus, "the payment is %s; this offer differs from the one recorded", p.State)
		case !errors.Is(err, partners.ErrNotFound):
			return replyOf(protocol.CodeServerError, "reading the payment record: %v", err)
		}
		if d := r.now().Sub(time.Unix(n.XTime, 0)); d > r.opts.MaxSkew || d < -r.opts.MaxSkew {
			return replyOf(protocol.CodeVerification, "xtime is %s from this accountant's clock, beyond %s: stale or replayed", d.Round(time.Second), r.opts.MaxSkew)
		}
		rl, version, err := r.readRelay(ctx, n.Relay) // checked before verification; read again at its version
		switch {
		case err != nil:
			return replyOf(protocol.CodeServerError, "reading the relay: %v", err)
		case n.Unit != r.unit:
			return replyOf(protocol.CodeConflictUnits, "unit %s: %s keeps its ledger in %s", n.Unit, n.To, r.unit)
		}
		p = &payment{Key: key, Role: rolePayee, State: protocol.StateOffer, Offer: n.Encode(), Counterpart: n.From,
			TranID: rl.TranID, Relay: rl.Relay, Retailer: rl.Retailer, Evidence: ev, Created: r.now().UTC(), Replies: map[string]*protocol.Reply{}}
		amount, ok := protocol.ToMinor(n.Amount, r.exp)
		var decide protocol.Code
		var why string
		switch {
		case r.blocked[n.From]:
			decide, why = protocol.CodeBlocked, n.From+" is on the blocked list"
		case rl.Payment != "":
			decide, why = protocol.CodeUnexpected, "the relay was used by another offer"
		case !r.now().Before(rl.ExpiresAt):
			decide, why = protocol.CodeUnexpected, "the QR code expired"
		case !ok || amount != rl.Amount:
			decide, why = protocol.CodeVoided, fmt.Sprintf("amount %s is not the code's %s", n.Amount, qr.FormatMinor(rl.Amount, r.exp))
		}
		if decide != 0 {
			// A voided offer leaves the relay as it was: one-time means one
			// approved offer.
			rep, recs, err := r.decide(p, n, decide, why)
			if err == nil {
				err = r.records.Commit(ctx, recs...)
			}
			if retry(err, attempt) {
				continue
			}
			if err != nil {
				return replyOf(protocol.CodeServerError, "recording the decision: %v", err)
			}
			return rep
		}
		rl.Payment = key
		relayRec := r.relayRecord(rl, version)
		rep, recs, err := r.decide(p, n, protocol.CodeApproved, "")
		if err != nil {
			return replyOf(protocol.CodeServerError, "%v", err)
		}
		err = r.host.Paid(ctx, &partners.Paid{
			PartnerID: r.id, TranID: rl.TranID, Reference: key,
			Amount:  &wire.LedgerAmount{Amount: amount, Currency: rl.Currency},
			Payer:   &wire.Institution{ID: n.From, Name: n.From},
			Note:    fmt.Sprintf("IPP offer from %s for %s %s verified by %s", n.From, n.Amount, n.Unit, ev.Scheme),
			Records: append(recs, relayRec), At: r.now(),
		})
		switch {
		case err == nil:
			return rep
		case errors.Is(err, partners.ErrNotWaiting), errors.Is(err, partners.ErrAmount):
			code := protocol.CodeUnexpected
			if errors.Is(err, partners.ErrAmount) {
				code = protocol.CodeVoided
			}
			p.State, p.Replies = protocol.StateOffer, map[string]*protocol.Reply{}
			rep, recs, derr := r.decide(p, n, code, err.Error())
			if derr == nil {
				derr = r.records.Commit(ctx, recs...)
			}
			if retry(derr, attempt) {
				continue
			}
			if derr != nil {
				return replyOf(protocol.CodeServerError, "recording the voidance: %v", derr)
			}
			return rep
		case errors.Is(err, partners.ErrNoRequestYet) && attempt < 5:
			select {
			case <-ctx.Done():
				return replyOf(protocol.CodeServerError, "%v", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case errors.Is(err, partners.ErrNoRequestYet):
			// Pending (610): the relay is held for this offer, and the
			// decision is notified once the POS's request is there.
			p.State, p.Replies = protocol.StatePending, map[string]*protocol.Reply{}
			p.Decision, p.DecisionRecord, p.DecisionScheme, p.DecisionData, p.Decided = 0, "", "", "", time.Time{}
			rep := replyOf(protocol.CodePending, "the payment request has not reached the payee yet: the decision will be notified")
			p.Replies[sum] = rep
			p.Due = r.now().Add(r.opts.PendingInterval)
			err := r.records.Commit(ctx, r.paymentRecord(p), relayRec)
			if retry(err, attempt) {
				continue
			}
			if err != nil {
				return replyOf(protocol.CodeServerError, "recording the pending offer: %v", err)
			}
			return rep
		case retry(err, attempt):
			continue
		}
		return replyOf(protocol.CodeServerError, "approving the payment: %v", err)
	}
}

func retry(err error, attempt int) bool {
	return attempt < 16 && (errors.Is(err, partners.ErrConflict) || errors.Is(err, partners.ErrDuplicate))
}

// decide puts p in the state code decides, signs the decision's record and
// returns the reply and the records to commit (the payment and the
// switch's own record of its decision, for verification queries).
func (r *Rail) decide(p *payment, n *protocol.Notification, code protocol.Code, why string) (*protocol.Reply, []*partners.Record, error) {
	if err := protocol.Transition(p.State, protocol.StateOf(code)); err != nil {
		return nil, nil, err
	}
	d := *n
	d.Code, d.Status = code, code.Status()
	if err := r.signer.Sign(&d); err != nil {
		return nil, nil, err
	}
	p.State, p.Decision, p.DecisionRecord, p.DecisionScheme, p.DecisionData = protocol.StateOf(code), code, d.Canonical(), d.Scheme, d.VerData
	p.Decided, p.Note = r.now().UTC(), why
	rep := &protocol.Reply{Code: code, Status: code.Status(), Message: why, Scheme: d.Scheme, VerData: d.VerData, Data: d.Canonical()}
	p.Replies[n.SHA1()] = rep
	return rep, []*partners.Record{r.paymentRecord(p), r.ownRecord(&d, p.Retailer)}, nil
}

// receiveDecision records a counterpart's verified decision on one of the
// switch's reversal offers. A reset is not acceptable (806): the POS
// reversed an exact amount.
func (r *Rail) receiveDecision(ctx context.Context, n *protocol.Notification, ev *protocol.Evidence) *protocol.Reply {
	for attempt := 0; ; attempt++ {
		p, err := r.readPayment(ctx, n.OriginalKey())
		switch {
		case errors.Is(err, partners.ErrNotFound):
			return replyOf(protocol.CodeInvalidRelay, "no offer of this accountant is the decision's record")
		case err != nil:
			return replyOf(protocol.CodeServerError, "reading the payment record: %v", err)
		case p.Role != roleReversal:
			return replyOf(protocol.CodeConflictStatus, "the payment is the counterpart's offer, decided by this accountant")
		}
		if rep := p.Replies[n.SHA1()]; rep != nil {
			return rep
		}
		var rep *protocol.Reply
		if n.Code == protocol.CodeReset {
			rep = replyOf(protocol.CodeResetRefused, "the reversal offer was for %s exactly", p.offerAmount())
		} else if err := protocol.Transition(p.State, protocol.StateOf(n.Code)); err != nil {
			return replyOf(protocol.CodeConflictStatus, "the payment is %s, which does not allow %d", p.State, n.Code)
		} else {
			p.State, p.Decision, p.DecisionRecord, p.DecisionScheme, p.DecisionData = protocol.StateOf(n.Code), n.Code, n.Canonical(), n.Scheme, n.VerData
			p.Evidence, p.Decided = ev, r.now().UTC()
			rep = &protocol.Reply{Code: n.Code, Status: n.Code.Status(), Message: "recorded"}
		}
		if p.Replies == nil {
			p.Replies = map[string]*protocol.Reply{}
		}
		p.Replies[n.SHA1()] = rep
		err = r.records.Commit(ctx, r.paymentRecord(p))
		if retry(err, attempt) {
			continue
		}
		if err != nil {
			return replyOf(protocol.CodeServerError, "recording the decision: %v", err)
		}
		return rep
	}
}

func (p *payment) offerAmount() string {
	if n, err := parseStored(p.Offer); err == nil {
		return n.Amount
	}
	return "?"
}
