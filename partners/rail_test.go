package partners

import (
	"context"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/internal/wire"
)

type nopRail struct{}

func (nopRail) Pay(context.Context, *wire.PaymentRequest) *Answer          { return &Answer{} }
func (nopRail) Confirm(context.Context, *wire.PaymentConfirmation) *Answer { return &Answer{} }
func (nopRail) Reverse(context.Context, *wire.PaymentReversal) *Answer     { return &Answer{} }

func TestRegistry(t *testing.T) {
	var got Config
	Register("test-nop", func(c Config) (Rail, error) { got = c; return nopRail{}, nil })
	if _, err := New("test-nop", Config{PartnerID: "p"}); err != nil {
		t.Fatal(err)
	}
	if got.Timeout != DefaultTimeout {
		t.Errorf("New filled timeout %s, want the default %s", got.Timeout, DefaultTimeout)
	}
	if _, err := New("no-such-rail", Config{PartnerID: "p"}); err == nil || !strings.Contains(err.Error(), "test-nop") {
		t.Errorf("New(unknown rail) = %v, want an error listing the rails", err)
	}
	for _, tt := range []struct {
		name string
		f    Factory
	}{
		{"", func(Config) (Rail, error) { return nopRail{}, nil }},
		{"nil-factory", nil},
		{"test-nop", func(Config) (Rail, error) { return nopRail{}, nil }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", tt.name)
				}
			}()
			Register(tt.name, tt.f)
		}()
	}
}
