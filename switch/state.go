package qrswitch

import (
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// ErrIllegalMove says a decision would move a payment where the state
// machine (outcome.State.CanMove) does not go. It is a bug, never an
// answer: the decision is not committed.
var ErrIllegalMove = errors.New("illegal state move")

// move returns a copy of p in state next, stamped at now. Every change of a
// payment's state goes through it, so that the machine of package outcome
// is the only place that says where a payment may go.
func move(p *Payment, next outcome.State, now time.Time) (*Payment, error) {
	if !p.State.CanMove(next) {
		return nil, fmt.Errorf("%w: payment %s from %s to %s", ErrIllegalMove, p.Key(), p.State, next)
	}
	q := *p
	q.State = next
	q.UpdatedAt = now
	return &q, nil
}

// operationName is the name of an advice's exchange in traces, logs and
// metrics: the interface's nickname for its own messages, the kind for
// the others.
func operationName(kind AdviceKind) string {
	switch kind {
	case Confirmation:
		return outcome.Confirm.String()
	case Reversal:
		return outcome.Reverse.String()
	default:
		return string(kind)
	}
}

// notice is m as a rail reported it, for the rail that must undo it.
func (m *PaidMoney) notice(partnerID, tranID string) *partners.Paid {
	return &partners.Paid{PartnerID: partnerID, TranID: tranID, Reference: m.Reference,
		Amount: m.Amount.Clone(), Payer: m.Payer.Clone(), At: m.At}
}
