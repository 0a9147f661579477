package ipp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
)

// Start runs the sweeper: offers answered 610 are decided once the POS's
// request reached the switch (or its code ended), and the decision is
// notified to the payer's accountant, repeated while its answer is
// recoverable.
func (r *Rail) Start(ctx context.Context) error {
	ctx, r.stop = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		partners.Every(ctx, r.opts.PendingInterval, r.log, "deciding pending IPP offers", r.Sweep)
	}()
	return nil
}

// Close stops the sweeper.
func (r *Rail) Close() error {
	if r.stop != nil {
		r.stop()
		<-r.done
	}
	return nil
}

// Sweep takes up every payment record that is due: pending offers to
// decide, decisions to notify.
func (r *Rail) Sweep(ctx context.Context) error {
	recs, err := r.records.List(ctx, partners.RecordQuery{Kind: kindPayment, DueBy: r.now(), Limit: 100})
	if err != nil {
		return fmt.Errorf("listing due payments: %w", err)
	}
	var errs []error
	for _, rec := range recs {
		var p payment
		if err := json.Unmarshal(rec.Data, &p); err != nil {
			errs = append(errs, fmt.Errorf("decoding payment %s: %w", rec.Key, err))
			continue
		}
		p.Version = rec.Version
		if err := r.settle(ctx, &p); err != nil && !errors.Is(err, partners.ErrConflict) {
			errs = append(errs, fmt.Errorf("payment %s: %w", p.Key, err))
		}
	}
	return errors.Join(errs...)
}

// settle decides a pending offer or notifies a decision.
func (r *Rail) settle(ctx context.Context, p *payment) error {
	if p.State == protocol.StatePending && p.Role == rolePayee {
		return r.decidePending(ctx, p)
	}
	if p.Notify {
		return r.notifyDecision(ctx, p)
	}
	p.Due = time.Time{}
	return r.records.Commit(ctx, r.paymentRecord(p))
}

func (r *Rail) decidePending(ctx context.Context, p *payment) error {
	n, err := parseStored(p.Offer)
	if err != nil {
		return err
	}
	rl, _, err := r.readRelay(ctx, p.Relay)
	if err != nil {
		return err
	}
	amount, _ := protocol.ToMinor(n.Amount, r.exp)
	pending := *p
	_, recs, err := r.decide(p, n, protocol.CodeApproved, "")
	if err != nil {
		return err
	}
	p.Notify, p.Due = true, r.now()
	recs[0] = r.paymentRecord(p)
	err = r.host.Paid(ctx, &partners.Paid{
		PartnerID: r.id, TranID: rl.TranID, Reference: p.Key,
		Amount:  &wire.LedgerAmount{Amount: amount, Currency: rl.Currency},
		Payer:   &wire.Institution{ID: n.From, Name: n.From},
		Note:    fmt.Sprintf("IPP offer from %s for %s %s, pending until the payment request came", n.From, n.Amount, n.Unit),
		Records: recs, At: r.now(),
	})
	switch {
	case err == nil:
		return r.notifyDecision(ctx, p)
	case errors.Is(err, partners.ErrNoRequestYet):
		if r.now().Before(rl.ExpiresAt) {
			return nil // still due: the next sweep asks again
		}
		err = partners.ErrNotWaiting
	case !errors.Is(err, partners.ErrNotWaiting) && !errors.Is(err, partners.ErrAmount):
		return err
	}
	code := protocol.CodeUnexpected
	if errors.Is(err, partners.ErrAmount) {
		code = protocol.CodeVoided
	}
	*p = pending
	if _, recs, err = r.decide(p, n, code, err.Error()); err != nil {
		return err
	}
	p.Notify, p.Due = true, r.now()
	recs[0] = r.paymentRecord(p)
	if err := r.records.Commit(ctx, recs...); err != nil {
		return err
	}
	return r.notifyDecision(ctx, p)
}

// notifyDecision sends the switch's decision on a pending offer to the
// payer's accountant: any decision or final error ends it; a recoverable
// error or no answer is tried again later, backing off to 5 minutes.
//
// The attempt is claimed first: the record's next due time moves past it
// in a versioned commit, so a second replica's sweep finds it not due, or
// loses the commit (ErrConflict), and one notification is in flight. A
// send that outlasts the claim (many slow accountants) may meet a repeat
// from another replica; the payer's accountant answers a repeated
// decision the same.
func (r *Rail) notifyDecision(ctx context.Context, p *payment) error {
	claimed, err := r.readPayment(ctx, p.Key)
	if err != nil {
		return err
	}
	if !claimed.Notify || claimed.Due.After(r.now()) {
		return nil // notified, or claimed by another sweep, meanwhile
	}
	claimed.Due = r.now().Add(2*r.client.Timeout + 30*time.Second)
	if err := r.records.Commit(ctx, r.paymentRecord(claimed)); err != nil {
		return err
	}
	d, err := (&protocol.Reply{Scheme: claimed.DecisionScheme, VerData: claimed.DecisionData, Data: claimed.DecisionRecord}).Decision()
	if err != nil {
		return err
	}
	rep, _, err := r.send(ctx, claimed.Counterpart, d.Encode())
	cur, rerr := r.readPayment(ctx, p.Key)
	if rerr != nil {
		return rerr
	}
	if err == nil && !rep.Code.Recoverable() {
		cur.Notify, cur.Due, cur.Note = false, time.Time{}, fmt.Sprintf("decision notified: %d %s %s", rep.Code, rep.Status, rep.Message)
	} else {
		cur.NotifyAttempts++
		backoff := min(time.Duration(1<<min(cur.NotifyAttempts, 9))*time.Second, 5*time.Minute)
		cur.Due = r.now().Add(backoff)
		if err != nil {
			cur.Note = "notifying the decision: " + err.Error()
		} else {
			cur.Note = fmt.Sprintf("notifying the decision: %d %s", rep.Code, rep.Message)
		}
	}
	return r.records.Commit(ctx, r.paymentRecord(cur))
}
