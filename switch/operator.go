package qrswitch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
)

// Operators act on the store-and-forward queues through the methods below.
// Each one is refused unless it makes sense in the records' present state,
// is committed with optimistic concurrency like every other decision, and
// is audited three ways: an entry in the trace it concerns (a payment's for
// an advice, the partner's audit trail "partner/ID" for a queue) naming
// the operator (peer "operator:NAME") and the reason, a log line, and the
// Observer's count.

// Operator is the support user behind an action, and the reason they give.
type Operator struct {
	Name   string
	Reason string
}

// MaxReason bounds an operator's reason, in characters.
const MaxReason = 500

// The names of the operator actions, as traced, logged and counted.
const (
	ActionPause    = "pausePartner"
	ActionResume   = "resumePartner"
	ActionRetryAll = "retryPartner"
	ActionRetry    = "retryAdvice"
	ActionReplay   = "replayAdvice"
	ActionFinal    = "finalizeAdvice"
)

// controlsKey is the wake-up key that tells every process to read the
// partner controls again.
const controlsKey = "controls"

// PartnerTraceKey is the trace key of a partner's audit trail: the operator
// actions on its queue.
func PartnerTraceKey(partnerID string) string { return "partner/" + partnerID }

// controlLoop keeps each sender's paused flag in step with the stored
// partner controls: on a wake-up (an operator acted here, or on another
// replica through the Notifier) and every ControlRefresh in case a wake-up
// was lost.
func (e *Engine) controlLoop(ctx context.Context) {
	t := time.NewTicker(e.opts.ControlRefresh)
	defer t.Stop()
	var lastErr time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.controlWake:
		}
		if err := e.refreshControls(ctx); err != nil && ctx.Err() == nil && time.Since(lastErr) > 10*time.Second {
			lastErr = time.Now()
			e.log.Error().Err(err).Msg("reading partner controls; queues keep their last known state")
		}
	}
}

// refreshControls reads every partner control and applies it. A queue that
// is resumed is woken and drained at once.
func (e *Engine) refreshControls(ctx context.Context) error {
	cs, err := e.store.QueueControls(ctx)
	if err != nil {
		return err
	}
	controls := make(map[string]*QueueControl, len(cs))
	for _, c := range cs {
		controls[c.Destination] = c
	}
	for id, q := range e.queues {
		c := controls[id]
		q.control.Store(c)
		paused := c != nil && c.Paused
		if was := q.paused.Swap(paused); was && !paused {
			q.hurry.Store(true)
			e.wakeSAF(id)
		}
	}
	return nil
}

// Paused reports whether this process holds the destination's queue paused.
func (e *Engine) Paused(destination string) bool {
	q, ok := e.queues[destination]
	return ok && q.paused.Load()
}

// Sending reports how many advices this process is sending to the
// destination right now.
func (e *Engine) Sending(destination string) int {
	q, ok := e.queues[destination]
	if !ok {
		return 0
	}
	return len(q.slots)
}

// checkOperator refuses an action without an operator or a reason.
func checkOperator(op Operator) *wire.Failure {
	switch reason := strings.TrimSpace(op.Reason); {
	case op.Name == "":
		return fail(400, wire.FormatError, "Operator unknown", "", "")
	case reason == "":
		f := fail(400, wire.FormatError, "Invalid field reason", "", "")
		f.Detail.DetailMessage = wire.Detail("every operator action needs a reason: it is kept in the audit trail")
		return f
	case utf8.RuneCountInString(reason) > MaxReason:
		f := fail(400, wire.FormatError, "Invalid field reason", "", "")
		f.Detail.DetailMessage = wire.Detail(fmt.Sprintf("a reason is at most %d characters", MaxReason))
		return f
	}
	return nil
}

// refuse is the answer to an action the records' state does not allow.
func refuse(msg, detail string) *wire.Failure {
	f := fail(409, wire.TransactionNotSupported, msg, "", "")
	f.Detail.DetailMessage = wire.Detail(detail)
	return f
}

// audit is the trace entry of an operator's action.
func audit(now time.Time, op Operator, action, messageID, did string) TraceEntry {
	return TraceEntry{
		At: now, Direction: Inbound, Peer: "operator:" + op.Name, Operation: action, Kind: KindEvent,
		MessageID: messageID, Note: did + "; reason: " + strings.TrimSpace(op.Reason),
	}
}

func (e *Engine) logAction(op Operator, action string, ev func(l *zerolog.Event)) {
	l := e.log.Info().Str("operator", op.Name).Str("action", action).Str("reason", strings.TrimSpace(op.Reason))
	ev(l)
	l.Msg("operator action")
	e.obs.OperatorAction(action)
}

// PausePartner stops sending a destination's advices (a partner's, or a
// retailer endpoint's), on every replica: they stay queued until
// ResumePartner, and their give_up_after stops counting meanwhile (a paused
// queue sends nothing, so it must not age its advices into dead letters).
// Sends already under way finish.
func (e *Engine) PausePartner(ctx context.Context, op Operator, partnerID string) (*QueueControl, *wire.Failure) {
	return e.setPaused(ctx, op, partnerID, true)
}

// ResumePartner sends the partner's advices again, starting at once with
// every one queued (as when a partner answers again after an outage).
func (e *Engine) ResumePartner(ctx context.Context, op Operator, partnerID string) (*QueueControl, *wire.Failure) {
	return e.setPaused(ctx, op, partnerID, false)
}

func (e *Engine) setPaused(ctx context.Context, op Operator, partnerID string, pause bool) (*QueueControl, *wire.Failure) {
	if f := checkOperator(op); f != nil {
		return nil, f
	}
	q, ok := e.queues[partnerID]
	if !ok {
		return nil, fail(404, wire.PartnerUnknown, "Partner not configured", "", "")
	}
	action, did := ActionResume, "queue resumed"
	if pause {
		action, did = ActionPause, "queue paused"
	}
	for range maxRetries {
		now := e.now()
		c, err := e.store.QueueControl(ctx, partnerID)
		switch {
		case errors.Is(err, ErrNotFound):
			c = &QueueControl{Destination: partnerID}
		case err != nil:
			return nil, storeFailure(err, "", "")
		}
		if c.Paused == pause {
			if pause {
				return nil, refuse("Partner queue already paused", fmt.Sprintf("paused by %s at %s: %s", c.By, c.At.Format(time.RFC3339), c.Reason))
			}
			return nil, refuse("Partner queue not paused", "the queue of "+partnerID+" is running")
		}
		if !pause {
			c.PausedFor = c.PausedBy(now) // the pause that ends now counts
		}
		c.Paused, c.By, c.At, c.Reason = pause, op.Name, now, strings.TrimSpace(op.Reason)
		err = e.store.Commit(ctx, &Change{Control: c, TraceKey: PartnerTraceKey(partnerID),
			Trace: []TraceEntry{audit(now, op, action, "", did)}})
		switch {
		case err == nil:
			q.control.Store(c.Clone())
			q.paused.Store(pause)
			if !pause {
				q.hurry.Store(true)
				e.wakeSAF(partnerID)
			}
			e.wake(ctx, controlsKey)
			e.logAction(op, action, func(l *zerolog.Event) { l.Str("partner", partnerID) })
			return c, nil
		case errors.Is(err, ErrConflict), errors.Is(err, ErrDuplicate):
			continue
		default:
			return nil, storeFailure(err, "", "")
		}
	}
	return nil, storeFailure(errContention, "", "")
}

// RetryPartner sends every retry of the partner's queue now rather than
// when its backoff ends: this process claims every advice due within the
// longest backoff (as after a partner's outage). A timeout reversal still
// inside its deferral (see applyPay) keeps waiting: sending it early could
// overtake the payment it reverses.
func (e *Engine) RetryPartner(ctx context.Context, op Operator, partnerID string) *wire.Failure {
	if f := checkOperator(op); f != nil {
		return f
	}
	s, ok := e.queues[partnerID]
	if !ok {
		return fail(404, wire.PartnerUnknown, "Partner not configured", "", "")
	}
	if s.paused.Load() {
		return refuse("Partner queue paused", "resume the queue of "+partnerID+" first")
	}
	now := e.now()
	err := e.store.Commit(ctx, &Change{TraceKey: PartnerTraceKey(partnerID),
		Trace: []TraceEntry{audit(now, op, ActionRetryAll, "", "every queued retry sent now")}})
	if err != nil {
		return storeFailure(err, "", "")
	}
	s.hurry.Store(true)
	e.wakeSAF(partnerID)
	e.logAction(op, ActionRetryAll, func(l *zerolog.Event) { l.Str("partner", partnerID) })
	return nil
}

// PartnerAudit returns the partner's audit trail: the operator actions on
// its queue, oldest first.
func (e *Engine) PartnerAudit(ctx context.Context, partnerID string) ([]TraceEntry, error) {
	return e.store.Trace(ctx, PartnerTraceKey(partnerID))
}

// RetryAdvice sends one queued advice now rather than when its backoff
// ends.
func (e *Engine) RetryAdvice(ctx context.Context, op Operator, adviceKey string) (*Advice, *wire.Failure) {
	return e.adviceAction(ctx, op, adviceKey, ActionRetry, func(a *Advice, _ *Payment, now time.Time) (*Payment, string, *wire.Failure) {
		switch {
		case a.State != AdvicePending:
			return nil, "", refuse("Advice not queued", "only a PENDING advice can be retried now; this one is "+string(a.State))
		case e.Paused(a.Destination):
			return nil, "", refuse("Partner queue paused", "resume the queue of "+a.Destination+" first")
		case a.Attempts == 0 && a.NextAt.After(now):
			return nil, "", refuse("Reversal deferred", fmt.Sprintf(
				"this timeout reversal waits until %s, when the timed-out payment can no longer reach the partner", a.NextAt.Format(time.RFC3339)))
		}
		a.NextAt = now
		return nil, "retry sent now", nil
	})
}

// ReplayAdvice queues a dead-lettered advice again: PENDING, due now, its
// give_up_after counted afresh from now; its attempts are kept. The partner
// gets it with the same id, so a partner that did apply it answers the
// same way again.
func (e *Engine) ReplayAdvice(ctx context.Context, op Operator, adviceKey string) (*Advice, *wire.Failure) {
	return e.adviceAction(ctx, op, adviceKey, ActionReplay, func(a *Advice, _ *Payment, now time.Time) (*Payment, string, *wire.Failure) {
		if a.State != AdviceDead {
			return nil, "", refuse("Advice not dead-lettered", "only a DEAD advice can be replayed; this one is "+string(a.State))
		}
		a.State, a.QueuedAt, a.NextAt, a.Note = AdvicePending, now, now, ""
		if q, ok := e.queues[a.Destination]; ok {
			a.PauseBase = q.pausedBy(now)
		}
		did := fmt.Sprintf("dead letter queued again after %d attempt(s)", a.Attempts)
		if e.Paused(a.Destination) {
			did += " (the partner's queue is paused: sent when it resumes)"
		}
		return nil, did, nil
	})
}

// FinalizeAdvice ends a queued or dead-lettered advice with the outcome an
// operator established with the partner by other means, without sending it
// again. The advice must be the one carrying its payment's upstream effect
// and the payment still waiting for it: a confirmation of a CONFIRMING
// payment (successful: CONFIRMED, failed: CONFIRM_FAILED) or a reversal of
// a REVERSING one (REVERSED or REVERSAL_FAILED). Anything else — an advice
// in flight, a held reversal whose payment has no outcome yet, a payment
// already settled — is refused.
func (e *Engine) FinalizeAdvice(ctx context.Context, op Operator, adviceKey string, o outcome.Outcome) (*Advice, *wire.Failure) {
	if !o.Final() {
		f := fail(400, wire.FormatError, "Invalid field outcome", "", "")
		f.Detail.DetailMessage = wire.Detail("an advice is marked final with outcome successful or failed")
		return nil, f
	}
	return e.adviceAction(ctx, op, adviceKey, ActionFinal, func(a *Advice, p *Payment, now time.Time) (*Payment, string, *wire.Failure) {
		if a.State != AdvicePending && a.State != AdviceDead && a.State != AdviceOperator {
			return nil, "", refuse("Advice not queued", "only a PENDING, DEAD or OPERATOR advice can be marked final; this one is "+string(a.State))
		}
		if p == nil || p.AdviceKey != a.Key() {
			return nil, "", refuse("Advice carries no payment effect", "the payment's upstream advice is another one")
		}
		next, ok := settledState(p.State, a.Kind, o)
		if !ok {
			return nil, "", refuse("Payment not waiting for it", fmt.Sprintf("a %s cannot settle a payment that is %s", a.Kind, p.State))
		}
		q, err := move(p, next, now)
		if err != nil {
			return nil, "", refuse("Payment not waiting for it", err.Error())
		}
		a.State, a.Outcome, a.DoneAt = AdviceDone, o, now
		a.Note = fmt.Sprintf("marked %s by operator %s after %d attempt(s)", o, op.Name, a.Attempts)
		return q, fmt.Sprintf("marked %s without sending it again: payment %s", o, next), nil
	})
}

// adviceAction reads an advice and its payment, lets decide change them
// (or refuse), and commits the result with the audit entry in the
// payment's trace, again on a conflict. decide changes the advice in place
// and returns the payment to write, if it changes it.
func (e *Engine) adviceAction(ctx context.Context, op Operator, adviceKey, action string,
	decide func(a *Advice, p *Payment, now time.Time) (*Payment, string, *wire.Failure)) (*Advice, *wire.Failure) {
	if f := checkOperator(op); f != nil {
		return nil, f
	}
	for range maxRetries {
		now := e.now()
		a, err := e.store.Advice(ctx, adviceKey)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, fail(404, wire.UnableToLocateRecord, "No advice has this key", "", "")
		case err != nil:
			return nil, storeFailure(err, "", "")
		}
		if a.State == AdvicePending && a.LeaseUntil.After(now) {
			return nil, refuse("Advice being sent now", fmt.Sprintf(
				"%s holds it until %s at the latest; try again once its attempt is recorded", a.LeaseOwner, a.LeaseUntil.Format(time.RFC3339)))
		}
		p, err := e.store.Payment(ctx, a.PaymentKey)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, storeFailure(err, "", a.TranID)
		}
		if err != nil {
			p = nil
		}
		b := *a
		b.LeaseOwner, b.LeaseUntil = "", time.Time{}
		q, did, f := decide(&b, p, now)
		if f != nil {
			f.Detail.TranID = a.TranID
			return nil, f
		}
		b.UpdatedAt = now
		change := &Change{Payment: q, Advices: []*Advice{&b}, TraceKey: a.PaymentKey,
			Trace: []TraceEntry{audit(now, op, action, a.ID, string(a.Kind)+" "+a.ID+": "+did)}}
		if q != nil {
			change.TraceKey = ""
			change.Trace = append(change.Trace, event(now, "adviceFinal", string(a.Kind)+" "+a.ID+" "+b.Outcome.String()+": payment "+string(q.State)))
		}
		switch err := e.commit(ctx, change); {
		case err == nil:
			e.logAction(op, action, func(l *zerolog.Event) {
				l.Str("advice", a.Key()).Str("tranId", a.TranID).Str("partner", a.Destination).Str("did", did)
			})
			return &b, nil
		case errors.Is(err, ErrConflict):
			continue
		default:
			return nil, storeFailure(err, "", a.TranID)
		}
	}
	return nil, storeFailure(errContention, "", "")
}
