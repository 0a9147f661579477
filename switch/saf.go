package qrswitch

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

func (e *Engine) wakeSAF(partnerID string) {
	if ch, ok := e.safWake[partnerID]; ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// safLoop sends one partner's due advices, at most SAF.Workers at once.
func (e *Engine) safLoop(ctx context.Context, partnerID string) {
	partner := e.partners[partnerID]
	slots := e.senders[partnerID].slots
	poll := time.NewTicker(e.opts.SAF.Poll)
	defer poll.Stop()
	lease := e.lease(partner)
	var lastErr time.Time
	s := e.senders[partnerID]
	for {
		// A paused queue claims nothing: its advices wait in the store,
		// and a resume (here or, through the control loop, on another
		// replica) wakes this loop.
		if free := cap(slots) - len(slots); free > 0 && !s.paused.Load() {
			now := e.now()
			c := Claim{Destination: partnerID, Owner: e.node, Now: now, Lease: lease, Max: free}
			hurry := s.hurry.Load()
			if hurry {
				// Retries wait at most 1.5 × MaxInterval (jitter included).
				c.DueBy = now.Add(2 * e.opts.SAF.MaxInterval)
			}
			advices, err := e.store.ClaimAdvices(ctx, c)
			if err != nil && ctx.Err() == nil && time.Since(lastErr) > 10*time.Second {
				lastErr = time.Now()
				e.log.Error().Err(err).Str("partner", partnerID).Msg("claiming advices")
			}
			sent := 0
			for _, a := range advices {
				if a.Attempts == 0 && a.NextAt.After(now) {
					// Deferred on purpose (a timeout reversal waiting for its
					// payment's call to end), not backing off: not yet.
					e.sends.Go(func() { e.unlease(a) })
					continue
				}
				sent++
				slots <- struct{}{}
				e.sends.Go(func() {
					defer func() { <-slots; e.wakeSAF(partnerID) }()
					e.send(partner, a)
				})
			}
			if err == nil && hurry && sent == 0 {
				s.hurry.Store(false) // the backlog is out (what is left is deferred)
			}
			if sent > 0 && len(advices) == free {
				continue // a full batch: there may be more due right now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.safWake[partnerID]:
		case <-poll.C:
		}
	}
}

// sender bounds one partner's sends: slots holds a token per send in
// flight (SAF.Workers at most), direct counts advices leased at enqueue
// and not yet sent.
type sender struct {
	slots  chan struct{}
	direct atomic.Int64
	// paused mirrors the partner's PartnerControl (see controlLoop):
	// neither the queue nor direct dispatch starts a send while it is set.
	paused atomic.Bool
	// failing says the partner's last answer was not final (down, 500,
	// timeout); hurry, set when a final answer follows, makes the queue
	// claim every retry now instead of waiting out each one's backoff, so
	// a backlog drains as soon as the partner is back.
	failing, hurry atomic.Bool
}

// lease is how long one send of an advice to p may take, with its
// bookkeeping.
func (e *Engine) lease(p *partners.Partner) time.Duration {
	return p.Timeout + e.opts.LateWindow + e.opts.SAF.LeaseMargin
}

// commit commits c and wakes whoever it concerns. An advice c queues for
// sending now is leased to this process in the same commit, when its
// partner has room, and sent at once: it skips a round through the queue
// (a claim, and the wait for the next poll). One that finds no room waits
// for a claim like any other.
func (e *Engine) commit(ctx context.Context, c *Change) error {
	now := e.now()
	var direct []*Advice
	for _, a := range c.Advices {
		s, ok := e.senders[a.Destination]
		if !ok || a.State != AdvicePending || a.LeaseOwner != "" || a.NextAt.After(now) ||
			s.paused.Load() || s.direct.Load() >= int64(4*e.opts.SAF.Workers) {
			continue
		}
		a.LeaseOwner, a.LeaseUntil = e.node, now.Add(e.lease(e.partners[a.Destination]))
		direct = append(direct, a)
	}
	if err := e.store.Commit(ctx, c); err != nil {
		for _, a := range direct {
			a.LeaseOwner, a.LeaseUntil = "", time.Time{} // the caller may decide again with it
		}
		return err
	}
	for _, a := range c.Advices {
		if a.State == AdvicePending && a.LeaseOwner == "" {
			e.wakeSAF(a.Destination)
		}
	}
	for _, a := range direct {
		e.dispatch(a)
	}
	return nil
}

// dispatch sends an advice leased at enqueue as soon as its partner has a
// free slot.
func (e *Engine) dispatch(a *Advice) {
	s, partner := e.senders[a.Destination], e.partners[a.Destination]
	s.direct.Add(1)
	e.sends.Go(func() {
		s.slots <- struct{}{}
		defer func() {
			<-s.slots
			s.direct.Add(-1)
			e.wakeSAF(a.Destination)
		}()
		e.send(partner, a)
	})
}

// send delivers one leased advice and records what came of it. A send is
// never cut short by shutdown: it ends with its partner's timeout.
func (e *Engine) send(partner *partners.Partner, a *Advice) {
	ctx := context.WithoutCancel(e.base)
	op := outcome.Reverse
	if a.Kind == Confirmation {
		op = outcome.Confirm
	}
	sentAt := e.now()
	ans := e.call(partner, op, a.PaymentKey, a.ID, func(ctx context.Context) *partners.Answer {
		if a.Kind == Confirmation {
			return partner.Rail.Confirm(ctx, a.Confirmation)
		}
		return partner.Rail.Reverse(ctx, a.Reversal)
	})
	if s := e.senders[partner.ID]; ans.Outcome.Final() {
		if s.failing.Swap(false) {
			s.hurry.Store(true)
			e.wakeSAF(partner.ID)
			e.log.Info().Str("partner", partner.ID).Msg("partner answering again: sending its queued advices now")
		}
	} else {
		s.failing.Store(true)
	}
	trace := exchange(sentAt, partner, op, a.ID, ans)
	for range maxRetries {
		change, err := e.applyAdvice(ctx, a, ans)
		if err == nil {
			change.Trace = append(trace, change.Trace...)
			if err = e.store.Commit(ctx, change); err == nil {
				return
			}
		}
		if !errors.Is(err, ErrConflict) {
			e.log.Error().Err(err).Str("advice", a.Key()).Str("tranId", a.TranID).Msg("recording an advice attempt")
			// The lease will expire and the advice will be sent again with
			// the same id, which the partner answers the same way.
			return
		}
		cur, err := e.store.Advice(ctx, a.Key())
		if err != nil || cur.State != AdvicePending || cur.LeaseOwner != e.node {
			// Someone else holds it now (our lease expired): their send
			// decides. The partner saw the same id twice, which the
			// interface allows.
			return
		}
		a = cur
	}
}

// unlease gives back an advice claimed before its time.
func (e *Engine) unlease(a *Advice) {
	a.LeaseOwner, a.LeaseUntil = "", time.Time{}
	if err := e.store.Commit(context.WithoutCancel(e.base), &Change{Advices: []*Advice{a}}); err != nil && !errors.Is(err, ErrConflict) {
		e.log.Warn().Err(err).Str("advice", a.Key()).Msg("giving back an advice claimed early; its lease will expire")
	}
}

// applyAdvice decides what one attempt's answer does to the advice and its
// payment.
func (e *Engine) applyAdvice(ctx context.Context, a *Advice, ans *partners.Answer) (*Change, error) {
	now := e.now()
	b := *a
	b.Attempts++
	b.LastStatus = ans.Status
	b.LastError = ""
	if ans.Err != nil {
		b.LastError = ans.Err.Error()
	}
	b.LeaseOwner, b.LeaseUntil = "", time.Time{}
	b.UpdatedAt = now
	change := &Change{Advices: []*Advice{&b}, TraceKey: a.PaymentKey}
	switch {
	case ans.Outcome.Final():
		b.State = AdviceDone
		b.Outcome = ans.Outcome
		b.DoneAt = now
		b.Note = fmt.Sprintf("final after %d attempt(s): %s", b.Attempts, ans.Outcome)
		p, err := e.store.Payment(ctx, a.PaymentKey)
		if err != nil {
			return nil, err
		}
		if next, ok := settledState(p.State, a.Kind, ans.Outcome); ok {
			q := *p
			q.State = next
			q.UpdatedAt = now
			change.Payment = &q
			change.TraceKey = ""
			change.Trace = append(change.Trace, event(now, "adviceFinal", string(a.Kind)+" "+a.ID+" "+ans.Outcome.String()+": payment "+string(next)))
		}
	case now.Sub(a.QueuedAt) >= e.opts.SAF.GiveUpAfter:
		b.State = AdviceDead
		b.Note = fmt.Sprintf("dead-lettered after %d attempts over %s without a final answer", b.Attempts, now.Sub(a.QueuedAt).Round(time.Second))
		change.Trace = append(change.Trace, event(now, "deadLetter", b.Note))
		e.log.Error().Str("advice", a.Key()).Str("tranId", a.TranID).Str("partner", a.Destination).Int("attempts", b.Attempts).Msg("advice dead-lettered")
	default:
		b.NextAt = now.Add(e.retryDelay(b.Attempts))
	}
	return change, nil
}

// settledState is the payment state a final advice outcome leads to, if the
// payment is still waiting for that advice.
func settledState(s outcome.State, kind AdviceKind, o outcome.Outcome) (outcome.State, bool) {
	switch {
	case s == outcome.Confirming && kind == Confirmation && o == outcome.Successful:
		return outcome.Confirmed, true
	case s == outcome.Confirming && kind == Confirmation:
		return outcome.ConfirmFailed, true
	case s == outcome.Reversing && kind == Reversal && o == outcome.Successful:
		return outcome.Reversed, true
	case s == outcome.Reversing && kind == Reversal:
		return outcome.ReversalFailed, true
	}
	return s, false
}

// retryDelay is the wait before attempt n+1: exponential from
// InitialInterval, doubling, capped at MaxInterval, with ±50 % jitter so that
// advices queued together during an outage do not return together.
func (e *Engine) retryDelay(attempts int) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     e.opts.SAF.InitialInterval,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         e.opts.SAF.MaxInterval,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	// After ~log2(max/initial) steps the interval is at its cap; more calls
	// change nothing but the jitter.
	for i := 1; i < min(attempts, 64); i++ {
		d = b.NextBackOff()
	}
	return d
}
