package outcome

// State is where a payment stands in the switch. The machine:
//
//	AWAITING_SCAN ──scan──▶ FORWARDED ──▶ APPROVED | DECLINED | REVERSING (unknown: timeout reversal)
//	     │ │                                 │
//	     │ └──paid (pull rail)──▶ APPROVED   ├──confirm──▶ CONFIRMING ──▶ CONFIRMED | CONFIRM_FAILED
//	     ▼ no scan in time                   ├──reverse──▶ REVERSING  ──▶ REVERSED  | REVERSAL_FAILED
//	  NO_SCAN                                └──no advice within advice_deadline──▶ UNSETTLED
//
// A retailer reversal before the scan ends the payment locally (REVERSED,
// nothing sent upstream). The *_FAILED states are final answers from the
// partner that refused the advice; support staff must look at them, as at
// UNSETTLED: approved by the partner, never confirmed nor reversed by the
// retailer.
type State string

// The payment states.
const (
	AwaitingScan   State = "AWAITING_SCAN"
	Forwarded      State = "FORWARDED"
	Approved       State = "APPROVED"
	Declined       State = "DECLINED"
	NoScan         State = "NO_SCAN"
	Confirming     State = "CONFIRMING"
	Confirmed      State = "CONFIRMED"
	ConfirmFailed  State = "CONFIRM_FAILED"
	Reversing      State = "REVERSING"
	Reversed       State = "REVERSED"
	ReversalFailed State = "REVERSAL_FAILED"
	Unsettled      State = "UNSETTLED"
)

// States lists every state, in the order of the machine.
var States = []State{
	AwaitingScan, Forwarded, Approved, Declined, NoScan,
	Confirming, Confirmed, ConfirmFailed, Reversing, Reversed, ReversalFailed, Unsettled,
}

var transitions = map[State][]State{
	AwaitingScan: {Forwarded, Approved, NoScan, Reversed},
	Forwarded:    {Approved, Declined, Reversing},
	Approved:     {Confirming, Reversing, Unsettled},
	Confirming:   {Confirmed, ConfirmFailed},
	Reversing:    {Reversed, ReversalFailed},
}

// Valid reports whether s is one of the states.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// Final reports whether nothing more can happen to a payment in state s.
func (s State) Final() bool { return s.Valid() && len(transitions[s]) == 0 }

// CanMove reports whether the machine allows a payment to go from s to next.
func (s State) CanMove(next State) bool {
	for _, t := range transitions[s] {
		if t == next {
			return true
		}
	}
	return false
}
