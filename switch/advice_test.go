package qrswitch_test

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// adviceReads counts the engine's reads of advices by key from a real store.
type adviceReads struct {
	qrswitch.Store
	n atomic.Int64
}

func (s *adviceReads) Advice(ctx context.Context, key string) (*qrswitch.Advice, error) {
	s.n.Add(1)
	return s.Store.Advice(ctx, key)
}

// TestAdviceIDsUsedAgain: a new advice is decided without looking up its id
// (its commit would find the id taken); a repeat gets the first answer, an
// id used for another advice is refused, and a refused advice sent again is
// refused again — on each path the engine decides in (accepted, refused,
// unknown payment, tombstone).
func TestAdviceIDsUsedAgain(t *testing.T) {
	reads := new(adviceReads)
	h := newEngine(t, func(o *qrswitch.Options) { reads.Store = o.Store; o.Store = reads })
	code := h.qrCode(t, 1000)
	req, answer := h.payAsync(t, code.TranID, 1000)
	h.scan(t, code.TranID)
	<-answer
	h.waitState(t, req.ID, outcome.Approved)

	conf := &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req.ID, Time: stamp()}}
	first := h.e.Confirm(t.Context(), h.r, conf, []byte(`{"first":true}`))
	if first.Status != http.StatusAccepted {
		t.Fatalf("confirm = %d %s", first.Status, first.Body)
	}
	if n := reads.n.Load(); n != 0 {
		t.Errorf("a new confirmation read advices %d times, want 0", n)
	}
	h.waitState(t, req.ID, outcome.Confirmed)

	again := h.e.Confirm(t.Context(), h.r, conf, []byte(`{"again":true}`))
	if again.Status != first.Status || string(again.Body) != string(first.Body) {
		t.Errorf("the same confirmation again = %d %s, want the first answer %d %s", again.Status, again.Body, first.Status, first.Body)
	}
	rev := &wire.PaymentReversal{BasicAdvice: conf.BasicAdvice, ReversalReason: wire.ReasonCancelled}
	wantDuplicate(t, "a reversal with the confirmation's id", h.e.Reverse(t.Context(), h.r, rev, nil))
	other := &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{ID: conf.ID, RequestID: wire.NewID(), Time: stamp()}}
	wantDuplicate(t, "the confirmation's id for an unknown payment", h.e.Confirm(t.Context(), h.r, other, nil))
	if got := len(h.push.Calls("confirm")); got != 1 {
		t.Errorf("the partner got %d confirmations, want 1", got)
	}

	// Refused (the payment is confirmed), not stored: refused again.
	late := &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: req.ID, Time: stamp()}, ReversalReason: wire.ReasonCancelled}
	for i := range 2 {
		if a := h.e.Reverse(t.Context(), h.r, late, nil); a.Status != http.StatusBadRequest {
			t.Fatalf("reversal of a confirmed payment (%d) = %d %s, want 400", i+1, a.Status, a.Body)
		}
	}

	// A reversal of a request never seen leaves a tombstone; the same
	// reversal again gets the same 404.
	ghost := &wire.PaymentReversal{BasicAdvice: wire.BasicAdvice{ID: wire.NewID(), RequestID: wire.NewID(), Time: stamp()}, ReversalReason: wire.ReasonTimeout}
	tomb := h.e.Reverse(t.Context(), h.r, ghost, []byte(`{}`))
	if tomb.Status != http.StatusNotFound {
		t.Fatalf("reversal of an unknown request = %d %s, want 404", tomb.Status, tomb.Body)
	}
	if a := h.e.Reverse(t.Context(), h.r, ghost, []byte(`{}`)); a.Status != tomb.Status || string(a.Body) != string(tomb.Body) {
		t.Errorf("the same reversal again = %d %s, want %d %s", a.Status, a.Body, tomb.Status, tomb.Body)
	}
}

func wantDuplicate(t *testing.T, what string, a qrswitch.AdviceAnswer) {
	t.Helper()
	if a.Status != http.StatusBadRequest || !bytes.Contains(a.Body, []byte(wire.DuplicateRecord)) {
		t.Errorf("%s = %d %s, want 400 %s", what, a.Status, a.Body, wire.DuplicateRecord)
	}
}
