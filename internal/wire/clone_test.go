package wire

import (
	"reflect"
	"testing"

	"github.com/qrswitch/qrswitch/internal/alias"
)

// TestClonesAreDeep fills every field of every message and checks that its
// Clone is equal and shares nothing: a field added to a message and
// forgotten in its Clone fails here.
func TestClonesAreDeep(t *testing.T) {
	for _, tt := range []struct {
		orig  any
		clone func(any) any
	}{
		{&PaymentRequest{}, func(v any) any { return v.(*PaymentRequest).Clone() }},
		{&PaymentResponse{}, func(v any) any { return v.(*PaymentResponse).Clone() }},
		{&CreateQrCodeRequest{}, func(v any) any { return v.(*CreateQrCodeRequest).Clone() }},
		{&PaymentConfirmation{}, func(v any) any { return v.(*PaymentConfirmation).Clone() }},
		{&PaymentReversal{}, func(v any) any { return v.(*PaymentReversal).Clone() }},
		{&ErrorDetail{}, func(v any) any { return v.(*ErrorDetail).Clone() }},
	} {
		name := reflect.TypeOf(tt.orig).Elem().Name()
		alias.Fill(reflect.ValueOf(tt.orig).Elem(), 0)
		c := tt.clone(tt.orig)
		if !reflect.DeepEqual(tt.orig, c) {
			t.Errorf("%s.Clone() = %+v, want %+v", name, c, tt.orig)
		}
		if a := alias.Shared(reflect.ValueOf(tt.orig), reflect.ValueOf(c), name); len(a) > 0 {
			t.Errorf("%s.Clone() shares memory with the original at %v", name, a)
		}
	}
	var nilReq *PaymentRequest
	if nilReq.Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
}
