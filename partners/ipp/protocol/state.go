package protocol

import (
	"errors"
	"fmt"
)

// State is a payment's state (section 3).
type State string

// The states of section 3: an offer, pending a decision, decided
// (approved as-is, reset, voided), or ended by an error.
const (
	StateOffer    State = "offer"
	StatePending  State = "pending"
	StateApproved State = "approved"
	StateReset    State = "reset"
	StateVoided   State = "voided"
	StateError    State = "error"
)

// ErrIllegalTransition is a change of state section 3 does not allow.
var ErrIllegalTransition = errors.New("illegal IPP state transition")

// transitions are section 3's: an offer may become pending or decided; a
// pending payment may be decided; a decision is final. An offer may also
// end in an error (a final error code). Nothing leaves a decided or error
// state.
var transitions = map[State][]State{
	"":           {StateOffer},
	StateOffer:   {StatePending, StateApproved, StateReset, StateVoided, StateError},
	StatePending: {StateApproved, StateReset, StateVoided, StateError},
}

// Transition checks a change of state; staying in a state is allowed (a
// repeat).
func Transition(from, to State) error {
	if from == to && from != "" {
		return nil
	}
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: %q to %q", ErrIllegalTransition, from, to)
}

// Decided reports whether s is a decision.
func (s State) Decided() bool { return s == StateApproved || s == StateReset || s == StateVoided }

// Reportable reports whether a payment in s counts in audited reports:
// approved or reset (section 3: "should create a reportable transaction").
func (s State) Reportable() bool { return s == StateApproved || s == StateReset }

// StateOf is the state a code moves a payment to.
func StateOf(c Code) State {
	switch {
	case c == CodeOffer:
		return StateOffer
	case c == CodePending:
		return StatePending
	case c == CodeApproved:
		return StateApproved
	case c == CodeReset:
		return StateReset
	case c.Voided():
		return StateVoided
	}
	return StateError
}
