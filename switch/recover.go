package qrswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// recoveryInterval is how often payments orphaned by a dead holder are
// looked for.
const recoveryInterval = 2 * time.Second

// unsettledInterval is how often approved payments past their advice
// deadline are looked for.
const unsettledInterval = time.Minute

func (e *Engine) recoveryLoop(ctx context.Context) {
	t := time.NewTicker(recoveryInterval)
	defer t.Stop()
	lastUnsettled := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.recoverOrphans(ctx, false); err != nil && ctx.Err() == nil {
				e.log.Error().Err(err).Msg("recovering orphaned payments")
			}
			if time.Since(lastUnsettled) >= unsettledInterval {
				lastUnsettled = time.Now()
				if err := e.SettleAbandoned(ctx); err != nil && ctx.Err() == nil {
					e.log.Error().Err(err).Msg("ending approved payments past their advice deadline")
				}
			}
		}
	}
}

// SettleAbandoned ends the approved payments whose retailer sent neither a
// confirmation nor a reversal within AdviceDeadline: they become
// UNSETTLED, a final state that support staff search for and settle with
// the partner by other means, and that the store's retention then applies
// to. Nothing is sent upstream: after so long, only a person can know
// whether the customer left with the goods.
// The engine runs it every minute; it is exported for tests with a clock of
// their own.
func (e *Engine) SettleAbandoned(ctx context.Context) error {
	for {
		now := e.now()
		ps, err := e.store.Search(ctx, Query{State: outcome.Approved, To: now.Add(-e.opts.AdviceDeadline), Limit: 100})
		if err != nil {
			return err
		}
		moved := 0
		for _, p := range ps {
			q, err := move(p, outcome.Unsettled, now)
			if err != nil {
				return err
			}
			err = e.store.Commit(ctx, &Change{Payment: q, Trace: []TraceEntry{event(now, "unsettled", fmt.Sprintf(
				"no confirmation or reversal within %s of the payment: UNSETTLED; settle it with partner %s by other means", e.opts.AdviceDeadline, p.PartnerID()))}})
			switch {
			case err == nil:
				moved++
				e.log.Warn().Str("payment", p.Key()).Str("partner", p.PartnerID()).Msg("approved payment never confirmed nor reversed: UNSETTLED")
			case errors.Is(err, ErrConflict):
				// An advice arrived meanwhile: it decides.
			default:
				return err
			}
		}
		if len(ps) < 100 || moved == 0 {
			return nil
		}
	}
}

// recoverOrphans finishes payments whose holder died: a payment still
// waiting for its scan failed with NO_SCAN (nothing was sent upstream); a
// payment forwarded without a recorded answer has an unknown outcome and is
// reversed, exactly as if the partner had timed out. With all set, every
// payment an earlier process held counts as orphaned (the caller knows no
// other process holds any: a restart of the only switch) — but not those
// this process took since it started, nor a checkout still open (nobody
// holds it: it waits for its own expiry).
func (e *Engine) recoverOrphans(ctx context.Context, all bool) error {
	now := e.now()
	before := now
	if all {
		before = before.Add(100 * 365 * 24 * time.Hour)
	}
	for {
		ps, err := e.store.Orphans(ctx, before, 100)
		if err != nil {
			return err
		}
		recovered := 0
		for _, p := range ps {
			if all && (p.Owner == e.node || p.Owner == "" && p.HoldUntil.After(now)) {
				continue
			}
			if err := e.recoverOne(ctx, p, all); err != nil {
				return err
			}
			recovered++
		}
		if len(ps) < 100 || recovered == 0 {
			return nil
		}
	}
}

// recoverOne finishes one orphaned payment. all says the previous process
// is known to be dead (a sole owner's restart), so nothing it sent can
// still be on its way.
func (e *Engine) recoverOne(ctx context.Context, p *Payment, all bool) error {
	now := e.now()
	var change *Change
	switch p.State {
	case outcome.AwaitingScan:
		change = &Change{Payment: noScanPayment(p, now), Trace: []TraceEntry{
			event(now, "recovered", "holder "+p.Owner+" gone before any scan: nothing was sent upstream")}}
	case outcome.Forwarded:
		partner, ok := e.partners[p.PartnerID()]
		if !ok {
			partner = &partners.Partner{ID: p.PartnerID()}
		}
		c, err := e.applyPay(ctx, p, partner, &partners.Answer{Outcome: outcome.Unknown, Err: errors.New("holder stopped before the partner's answer was recorded")})
		if err != nil {
			return err
		}
		change = c
		change.Trace = append([]TraceEntry{event(now, "recovered", "holder "+p.Owner+" gone after forwarding: outcome unknown")}, change.Trace...)
		if !all {
			// The holder may be alive but cut off from the store, its call
			// still under way: the reversal waits until that call is over
			// (see applyPay), so it cannot overtake the payment.
			callEnd := p.HoldUntil.Add(-holdMargin + e.opts.LateWindow)
			for _, a := range change.Advices {
				if a.State == AdvicePending && a.NextAt.Before(callEnd) {
					a.NextAt = callEnd
				}
			}
		}
	default:
		return nil
	}
	err := e.commit(ctx, change)
	switch {
	case err == nil:
		e.log.Warn().Str("payment", p.Key()).Str("state", string(change.Payment.State)).Msg("recovered an orphaned payment")
		return nil
	case errors.Is(err, ErrConflict):
		return nil // its holder (or another replica) got there first
	default:
		return err
	}
}

// releaseLeases frees the leases an earlier process of a sole owner held
// when it died, so its advices are sent now rather than when the leases
// expire. Only a sole owner may: with a shared store, another live process
// may hold them.
func (e *Engine) releaseLeases(ctx context.Context) error {
	for id := range e.queues {
		advices, err := e.store.ListAdvices(ctx, AdviceQuery{Destination: id, State: AdvicePending, Leased: true, Limit: 500})
		if err != nil {
			return err
		}
		for _, a := range advices {
			if a.LeaseOwner == e.node {
				continue
			}
			a.LeaseOwner, a.LeaseUntil = "", time.Time{}
			err := e.store.Commit(ctx, &Change{Advices: []*Advice{a}, TraceKey: a.PaymentKey, Trace: []TraceEntry{
				event(e.now(), "leaseReleased", "the switch restarted while sending this advice: it is sent again, with the same id")}})
			if err != nil && !errors.Is(err, ErrConflict) {
				return err
			}
		}
	}
	return nil
}
