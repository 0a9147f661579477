package outcome

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestClassifyStatuses walks every status code from 100 to 599 for every
// operation and checks it against the interface's table.
func TestClassifyStatuses(t *testing.T) {
	want := func(op Operation, status int) Outcome {
		switch {
		case status == 200 || status == 201 || status == 202:
			return Successful
		case status == 404 && op == Reverse:
			return Successful
		case status == 500 || status == 504:
			return Unknown
		case (status == 429 || status == 408) && op != Pay:
			return Unknown
		case status >= 200 && status < 300:
			return Unknown
		default:
			return Failed
		}
	}
	for _, op := range []Operation{Pay, Confirm, Reverse} {
		for status := 100; status < 600; status++ {
			if got, w := Classify(op, status, nil), want(op, status); got != w {
				t.Errorf("Classify(%s, %d) = %s, want %s", op, status, got, w)
			}
		}
	}
}

func TestClassifyNamedRows(t *testing.T) {
	tests := []struct {
		op     Operation
		status int
		err    error
		want   Outcome
	}{
		{Reverse, 404, nil, Successful},
		{Confirm, 404, nil, Failed},
		{Pay, 404, nil, Failed},
		{Pay, 501, nil, Failed},
		{Pay, 503, nil, Failed},
		{Confirm, 503, nil, Failed},
		{Pay, 400, nil, Failed},
		{Pay, 429, nil, Failed},
		{Confirm, 429, nil, Unknown},
		{Reverse, 429, nil, Unknown},
		{Confirm, 408, nil, Unknown},
		{Pay, 408, nil, Failed},
		{Pay, 203, nil, Unknown},
		{Confirm, 204, nil, Unknown},
		{Pay, 0, nil, Unknown},
		{Pay, 0, context.DeadlineExceeded, Unknown},
		{Confirm, 0, context.DeadlineExceeded, Unknown},
		{Pay, 0, io.ErrUnexpectedEOF, Unknown},
		{Pay, 201, fmt.Errorf("decoding answer: %w", ErrMalformedAnswer), Unknown},
		{Pay, 0, fmt.Errorf("dialing: %w", ErrNotSent), Failed},
		{Confirm, 0, fmt.Errorf("dialing: %w", ErrNotSent), Unknown},
		{Reverse, 0, fmt.Errorf("dialing: %w", ErrNotSent), Unknown},
		{Reverse, 0, errors.New("connection reset by peer"), Unknown},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%v", tt.op, tt.status, tt.err), func(t *testing.T) {
			if got := Classify(tt.op, tt.status, tt.err); got != tt.want {
				t.Errorf("Classify(%s, %d, %v) = %s, want %s", tt.op, tt.status, tt.err, got, tt.want)
			}
		})
	}
}

func TestOutcomeText(t *testing.T) {
	for _, o := range []Outcome{Successful, Unknown, Failed} {
		b, err := o.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Outcome
		if err := back.UnmarshalText(b); err != nil || back != o {
			t.Errorf("round trip of %s gave %s, %v", o, back, err)
		}
	}
	var o Outcome
	if err := o.UnmarshalText([]byte("maybe")); err == nil {
		t.Error("UnmarshalText(maybe) succeeded, want an error")
	}
	if Unknown.Final() || !Successful.Final() || !Failed.Final() {
		t.Error("only successful and failed are final")
	}
}

func TestStateMachine(t *testing.T) {
	final := map[State]bool{Declined: true, NoScan: true, Confirmed: true, ConfirmFailed: true, Reversed: true, ReversalFailed: true, Unsettled: true}
	for _, s := range States {
		if s.Final() != final[s] {
			t.Errorf("%s.Final() = %v, want %v", s, s.Final(), final[s])
		}
		if s.CanMove(s) {
			t.Errorf("%s.CanMove(%s) = true, want false", s, s)
		}
	}
	allowed := []struct{ from, to State }{
		{AwaitingScan, Forwarded}, {AwaitingScan, Approved}, {AwaitingScan, NoScan}, {AwaitingScan, Reversed},
		{Forwarded, Approved}, {Forwarded, Declined}, {Forwarded, Reversing},
		{Approved, Confirming}, {Approved, Reversing}, {Approved, Unsettled},
		{Confirming, Confirmed}, {Confirming, ConfirmFailed},
		{Reversing, Reversed}, {Reversing, ReversalFailed},
	}
	n := 0
	for _, from := range States {
		for _, to := range States {
			if from.CanMove(to) {
				n++
			}
		}
	}
	if n != len(allowed) {
		t.Errorf("machine allows %d transitions, want %d", n, len(allowed))
	}
	for _, a := range allowed {
		if !a.from.CanMove(a.to) {
			t.Errorf("%s.CanMove(%s) = false, want true", a.from, a.to)
		}
	}
	for _, forbidden := range []struct{ from, to State }{
		{Confirmed, Reversing}, {Reversed, Confirming}, {Confirming, Reversing}, {Reversing, Confirming}, {NoScan, Forwarded}, {Unsettled, Confirming}, {Unsettled, Reversing},
	} {
		if forbidden.from.CanMove(forbidden.to) {
			t.Errorf("%s.CanMove(%s) = true, want false", forbidden.from, forbidden.to)
		}
	}
	if State("BOGUS").Valid() || State("BOGUS").Final() {
		t.Error("an unknown state is neither valid nor final")
	}
}

func BenchmarkClassify(b *testing.B) {
	statuses := []int{200, 201, 404, 500, 503, 504}
	ops := []Operation{Pay, Confirm, Reverse}
	var n int
	for i := 0; b.Loop(); i++ {
		if Classify(ops[i%3], statuses[i%len(statuses)], nil) == Successful {
			n++
		}
	}
	if n == 0 {
		b.Fatal("no successful outcome classified")
	}
}
