package electrumsim

import (
	"sync"
	"sync/atomic"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// Operation names the partner endpoints a fault applies to.
type Operation string

// The operations of Fault.
const (
	OpPay     Operation = "pay"     // POST /qr/v1/payments
	OpConfirm Operation = "confirm" // POST /qr/v1/payments/confirmations
	OpReverse Operation = "reverse" // POST /qr/v1/payments/reversals
	OpAdvice  Operation = "advice"  // confirm and reverse
	OpAll     Operation = "all"     // pay, confirm and reverse
)

// FaultType is how a faulty partner endpoint misbehaves.
type FaultType string

// The fault types of Fault.
const (
	// FaultNone removes the fault set for the operation (for OpAll: every
	// fault).
	FaultNone FaultType = "none"
	// Fault500 answers 500 with an ErrorDetail GENERAL_ERROR.
	Fault500 FaultType = "500"
	// Fault503 answers 503 with an ErrorDetail UPSTREAM_UNAVAILABLE.
	Fault503 FaultType = "503"
	// Fault504 answers 504 without a body.
	Fault504 FaultType = "504"
	// FaultHang holds the request for LateAfter (or until the client gives
	// up or the sim closes), then closes the connection unanswered.
	FaultHang FaultType = "hang"
	// FaultDrop reads the request, then closes the connection unanswered.
	FaultDrop FaultType = "drop"
	// FaultRefuse closes the connection at once, unanswered, and records
	// nothing: the nearest an HTTP handler comes to a refused connection. A
	// real refusal (nothing listening) is done by stopping the listener.
	FaultRefuse FaultType = "refuse"
)

// Fault makes a partner endpoint misbehave, in place of the behaviour its
// request would get. Faults apply to requests that passed the Basic auth
// and format checks (which answer 401 and 400 whatever the faults), so
// Count counts only those. A request answered by a fault other than
// FaultRefuse is still recorded in the ledger, with no effect on funds: a
// faulted payment is declined, a faulted advice is not applied (a later
// delivery may be).
type Fault struct {
	Operation Operation `json:"operation"`
	Fault     FaultType `json:"fault"`
	// Count is how many requests the fault answers before it clears itself;
	// 0 means until cleared. Faults reads back the count still to go.
	Count int `json:"count"`
}

// status is the HTTP status a fault answers with; 0 for none.
func (f FaultType) status() int {
	switch f {
	case Fault500:
		return 500
	case Fault503:
		return 503
	case Fault504:
		return 504
	}
	return 0
}

// faultOrder lists the operations of rules, for lookups and listings.
var faultOrder = []Operation{OpPay, OpConfirm, OpReverse, OpAdvice, OpAll}

// lookup lists the rule keys that apply to an endpoint's operation, the most
// specific first.
func lookup(op Operation) []Operation {
	switch op {
	case OpPay:
		return []Operation{OpPay, OpAll}
	case OpConfirm:
		return []Operation{OpConfirm, OpAdvice, OpAll}
	default:
		return []Operation{OpReverse, OpAdvice, OpAll}
	}
}

type faultRule struct {
	fault FaultType
	left  int // requests still to answer; 0 means until cleared
}

// faults are the injected faults, one rule per operation key.
type faults struct {
	active atomic.Int32 // number of rules, so the hot path skips the lock when 0
	mu     sync.Mutex
	rules  map[Operation]*faultRule
}

// take returns the fault that answers the next request of op, counting it
// down, or "" when none applies.
func (f *faults) take(op Operation) FaultType {
	if f.active.Load() == 0 {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, key := range lookup(op) {
		r := f.rules[key]
		if r == nil {
			continue
		}
		if r.left > 0 {
			r.left--
			if r.left == 0 {
				f.remove(key)
			}
		}
		return r.fault
	}
	return ""
}

// remove deletes the rule for key; f.mu must be held.
func (f *faults) remove(key Operation) {
	if _, ok := f.rules[key]; ok {
		delete(f.rules, key)
		f.active.Add(-1)
	}
}

// Validate checks a fault, returning a *wire.FieldError naming the first
// wrong field.
func (ft Fault) Validate() error {
	switch ft.Operation {
	case OpPay, OpConfirm, OpReverse, OpAdvice, OpAll:
	case "":
		return &wire.FieldError{Field: "operation", Reason: "is required"}
	default:
		return &wire.FieldError{Field: "operation", Reason: "must be pay, confirm, reverse, advice or all"}
	}
	switch ft.Fault {
	case FaultNone, Fault500, Fault503, Fault504, FaultHang, FaultDrop, FaultRefuse:
	case "":
		return &wire.FieldError{Field: "fault", Reason: "is required"}
	default:
		return &wire.FieldError{Field: "fault", Reason: "must be none, 500, 503, 504, hang, drop or refuse"}
	}
	if ft.Count < 0 {
		return &wire.FieldError{Field: "count", Reason: "must not be negative"}
	}
	return nil
}

// SetFault makes the endpoints of f.Operation misbehave as f.Fault says,
// replacing the fault set before for that operation. Faults for a specific
// operation take precedence over OpAdvice, which takes precedence over
// OpAll. FaultNone removes the operation's fault; with OpAll it removes
// every fault. An invalid fault is refused with a *wire.FieldError.
func (s *Sim) SetFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f.Fault == FaultNone {
		if f.Operation == OpAll {
			for _, op := range faultOrder {
				fs.remove(op)
			}
		} else {
			fs.remove(f.Operation)
		}
		return nil
	}
	if _, ok := fs.rules[f.Operation]; !ok {
		fs.active.Add(1)
	}
	fs.rules[f.Operation] = &faultRule{fault: f.Fault, left: f.Count}
	return nil
}

// Faults returns the faults in force, with the count each has still to go.
func (s *Sim) Faults() []Fault {
	fs := &s.faults
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := []Fault{}
	for _, op := range faultOrder {
		if r := fs.rules[op]; r != nil {
			out = append(out, Fault{Operation: op, Fault: r.fault, Count: r.left})
		}
	}
	return out
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	_ = s.SetFault(Fault{Operation: OpAll, Fault: FaultNone})
}
