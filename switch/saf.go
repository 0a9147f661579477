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

// queue is one destination's advices in store-and-forward: a partner's
// (sent through its rail), or a retailer endpoint's (sent by its
// Deliverer). Each has its own loop, workers and controls.
type queue struct {
	id      string
	name    string
	timeout time.Duration
	partner *partners.Partner  // nil for a retailer endpoint
	deliver partners.Deliverer // the endpoint's, or the rail's when it has one
	wake    chan struct{}

	// slots holds a token per send in flight (SAF.Workers at most);
	// direct counts advices leased at enqueue and not yet sent.
	slots  chan struct{}
	direct atomic.Int64
	// paused mirrors the queue's QueueControl (see controlLoop): neither
	// the queue nor direct dispatch starts a send while it is set. control
	// is the last one read, for give_up_after's pause accounting.
	paused  atomic.Bool
	control atomic.Pointer[QueueControl]
	// failing says the destination's last answer was not final (down,
	// 500, timeout); hurry, set when a final answer follows, makes the
	// queue claim every retry now instead of waiting out each one's
	// backoff, so a backlog drains as soon as the destination is back.
	failing, hurry atomic.Bool
}

func (e *Engine) newQueue(id, name string, timeout time.Duration, p *partners.Partner, d partners.Deliverer) *queue {
	q := &queue{id: id, name: name, timeout: timeout, partner: p, deliver: d,
		wake: make(chan struct{}, 1), slots: make(chan struct{}, e.opts.SAF.Workers)}
	if p != nil {
		q.deliver, _ = p.Rail.(partners.Deliverer)
	}
	return q
}

// pausedBy is the time q has spent paused up to now (see QueueControl).
func (q *queue) pausedBy(now time.Time) time.Duration { return q.control.Load().PausedBy(now) }

func (e *Engine) wakeSAF(id string) {
	if q, ok := e.queues[id]; ok {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// safLoop sends one destination's due advices, at most SAF.Workers at once.
func (e *Engine) safLoop(ctx context.Context, q *queue) {
	poll := time.NewTicker(e.opts.SAF.Poll)
	defer poll.Stop()
	lease := e.lease(q)
	var lastErr time.Time
	for {
		// A paused queue claims nothing: its advices wait in the store,
		// and a resume (here or, through the control loop, on another
		// replica) wakes this loop.
		if free := cap(q.slots) - len(q.slots); free > 0 && !q.paused.Load() {
			now := e.now()
			c := Claim{Destination: q.id, Owner: e.node, Now: now, Lease: lease, Max: free}
			hurry := q.hurry.Load()
			if hurry {
				// Retries wait at most 1.5 × MaxInterval (jitter included).
				c.DueBy = now.Add(2 * e.opts.SAF.MaxInterval)
			}
			advices, err := e.store.ClaimAdvices(ctx, c)
			if err != nil && ctx.Err() == nil && time.Since(lastErr) > 10*time.Second {
				lastErr = time.Now()
				e.log.Error().Err(err).Str("destination", q.id).Msg("claiming advices")
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
				q.slots <- struct{}{}
				e.sends.Go(func() {
					defer func() { <-q.slots; e.wakeSAF(q.id) }()
					e.send(q, a)
				})
			}
			if err == nil && hurry && sent == 0 {
				q.hurry.Store(false) // the backlog is out (what is left is deferred)
			}
			if sent > 0 && len(advices) == free {
				continue // a full batch: there may be more due right now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-poll.C:
		}
	}
}

// lease is how long one send of an advice to q may take, with its
// bookkeeping.
func (e *Engine) lease(q *queue) time.Duration {
	return q.timeout + e.opts.LateWindow + e.opts.SAF.LeaseMargin
}

// commit commits c and wakes whoever it concerns. An advice c queues for
// sending now is leased to this process in the same commit, when its queue
// has room, and sent at once: it skips a round through the queue (a claim,
// and the wait for the next poll). One that finds no room waits for a claim
// like any other.
func (e *Engine) commit(ctx context.Context, c *Change) error {
	now := e.now()
	var direct []*Advice
	for _, a := range c.Advices {
		q, ok := e.queues[a.Destination]
		if !ok || a.State != AdvicePending || a.LeaseOwner != "" || a.NextAt.After(now) ||
			q.paused.Load() || q.direct.Load() >= int64(4*e.opts.SAF.Workers) {
			continue
		}
		a.LeaseOwner, a.LeaseUntil = e.node, now.Add(e.lease(q))
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

// dispatch sends an advice leased at enqueue as soon as its queue has a
// free slot.
func (e *Engine) dispatch(a *Advice) {
	q := e.queues[a.Destination]
	q.direct.Add(1)
	e.sends.Go(func() {
		q.slots <- struct{}{}
		defer func() {
			<-q.slots
			q.direct.Add(-1)
			e.wakeSAF(q.id)
		}()
		e.send(q, a)
	})
}

// deliveries says how each kind of advice reaches a destination: the
// interface's confirmations and reversals through a partner's rail (a
// reversal of money a pull rail received is that rail's refund), every
// other kind through the destination's Deliverer.
func (e *Engine) delivery(ctx context.Context, q *queue, a *Advice) (func(context.Context) *partners.Answer, error) {
	msg := &partners.Advice{
		Kind: string(a.Kind), ID: a.ID, Sender: a.Sender, Key: a.Key(),
		PaymentKey: a.PaymentKey, TranID: a.TranID, Attempt: a.Attempts + 1,
		Confirmation: a.Confirmation, Reversal: a.Reversal, Payload: a.Payload,
	}
	if q.partner != nil && (a.Kind == Confirmation || a.Kind == Reversal) {
		rail := q.partner.Rail
		if a.Kind == Confirmation {
			return func(ctx context.Context) *partners.Answer { return rail.Confirm(ctx, msg) }, nil
		}
		p, err := e.store.Payment(ctx, a.PaymentKey)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if p != nil && p.Paid != nil {
			msg.Paid = p.Paid.notice(q.id, p.TranID)
			if r, ok := rail.(partners.Refunder); ok {
				return func(ctx context.Context) *partners.Answer { return r.Refund(ctx, msg) }, nil
			}
		}
		return func(ctx context.Context) *partners.Answer { return rail.Reverse(ctx, msg) }, nil
	}
	if q.deliver == nil {
		return nil, fmt.Errorf("destination %s delivers no %s advice", q.id, a.Kind)
	}
	return func(ctx context.Context) *partners.Answer { return q.deliver.Deliver(ctx, msg) }, nil
}

// send delivers one leased advice and records what came of it. A send is
// never cut short by shutdown: it ends with its destination's timeout.
func (e *Engine) send(q *queue, a *Advice) {
	ctx := context.WithoutCancel(e.base)
	op := operationName(a.Kind)
	sentAt := e.now()
	var ans *partners.Answer
	do, err := e.delivery(ctx, q, a)
	if err != nil {
		// Nothing was sent: the store could not be read, or nothing here
		// can deliver this kind (a configuration that lost a deliverer).
		ans = &partners.Answer{Outcome: outcome.Unknown, Err: fmt.Errorf("%w: %w", err, outcome.ErrNotSent)}
	} else {
		ans, _ = e.call(q, op, q.timeout, a.PaymentKey, a.ID, do)
	}
	if ans.Outcome.Final() {
		if q.failing.Swap(false) {
			q.hurry.Store(true)
			e.wakeSAF(q.id)
			e.log.Info().Str("destination", q.id).Msg("destination answering again: sending its queued advices now")
		}
	} else {
		q.failing.Store(true)
	}
	trace := exchange(sentAt, q.id, op, a.ID, ans)
	for range maxRetries {
		change, err := e.applyAdvice(ctx, q, a, ans)
		if err == nil {
			change.Trace = append(trace, change.Trace...)
			if err = e.store.Commit(ctx, change); err == nil {
				return
			}
		}
		if !errors.Is(err, ErrConflict) {
			e.log.Error().Err(err).Str("advice", a.Key()).Str("tranId", a.TranID).Msg("recording an advice attempt")
			// The lease will expire and the advice will be sent again with
			// the same id, which the destination answers the same way.
			return
		}
		cur, err := e.store.Advice(ctx, a.Key())
		if err != nil || cur.State != AdvicePending || cur.LeaseOwner != e.node {
			// Someone else holds it now (our lease expired): their send
			// decides. The destination saw the same id twice, which the
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
func (e *Engine) applyAdvice(ctx context.Context, q *queue, a *Advice, ans *partners.Answer) (*Change, error) {
	now := e.now()
	b := *a
	b.Attempts++
	b.LastCode = ans.Code
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
		if errors.Is(err, ErrNotFound) && a.Kind != Confirmation && a.Kind != Reversal {
			return change, nil // a rail's or shop's advice about a payment gone by retention
		}
		if err != nil {
			return nil, err
		}
		if p.AdviceKey != a.Key() {
			break // not the advice carrying the payment's upstream effect
		}
		if next, ok := settledState(p.State, a.Kind, ans.Outcome); ok {
			np, err := move(p, next, now)
			if err != nil {
				return nil, err
			}
			change.Payment = np
			change.TraceKey = ""
			change.Trace = append(change.Trace, event(now, "adviceFinal", string(a.Kind)+" "+a.ID+" "+ans.Outcome.String()+": payment "+string(next)))
		}
	case e.aged(q, a, now):
		b.State = AdviceDead
		b.Note = fmt.Sprintf("dead-lettered after %d attempts over %s without a final answer", b.Attempts, now.Sub(a.QueuedAt).Round(time.Second))
		change.Trace = append(change.Trace, event(now, "deadLetter", b.Note))
		e.log.Error().Str("advice", a.Key()).Str("tranId", a.TranID).Str("destination", a.Destination).Int("attempts", b.Attempts).Msg("advice dead-lettered")
	default:
		b.NextAt = now.Add(e.retryDelay(b.Attempts))
	}
	return change, nil
}

// aged reports whether an advice without a final answer has spent
// give_up_after in its queue, leaving out the time an operator held the
// queue paused: a paused queue sends nothing, so it must not age its
// advices into dead letters.
func (e *Engine) aged(q *queue, a *Advice, now time.Time) bool {
	paused := q.pausedBy(now) - a.PauseBase
	return now.Sub(a.QueuedAt)-max(paused, 0) >= e.opts.SAF.GiveUpAfter
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
