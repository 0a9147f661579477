package qrswitch

import (
	"reflect"
	"testing"

	"github.com/qrswitch/qrswitch/internal/alias"
)

func TestRecordClonesAreDeep(t *testing.T) {
	for _, tt := range []struct {
		orig  any
		clone func(any) any
	}{
		{&QRCode{}, func(v any) any { return v.(*QRCode).Clone() }},
		{&Payment{}, func(v any) any { return v.(*Payment).Clone() }},
		{&Advice{}, func(v any) any { return v.(*Advice).Clone() }},
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
}
