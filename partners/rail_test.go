package partners

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
)

type nopRail struct{}

func (nopRail) Pay(context.Context, *Payment) *Answer    { return &Answer{} }
func (nopRail) Confirm(context.Context, *Advice) *Answer { return &Answer{} }
func (nopRail) Reverse(context.Context, *Advice) *Answer { return &Answer{} }

func TestRegistry(t *testing.T) {
	var got Config
	RegisterForTest(t, "test-nop", func(c Config) (Rail, error) { got = c; return nopRail{}, nil })
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

func TestDecodeOptions(t *testing.T) {
	type opts struct {
		RPCURL        string `yaml:"rpc_url"`
		Confirmations int    `yaml:"confirmations"`
	}
	node := func(t *testing.T, text string) *yaml.Node {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Content[0]
	}
	var o opts
	if err := DecodeOptions(node(t, "rpc_url: http://x\nconfirmations: 3\n"), &o); err != nil || o.RPCURL != "http://x" || o.Confirmations != 3 {
		t.Fatalf("DecodeOptions = %+v, %v; want both keys", o, err)
	}
	err := DecodeOptions(node(t, "rpc_url: http://x\nconfirmation: 3\n"), &o)
	if err == nil || !strings.Contains(err.Error(), "confirmation") {
		t.Fatalf("DecodeOptions(a misspelt key) = %v, want an error naming it", err)
	}
	if err := DecodeOptions(node(t, "confirmations: many\n"), &o); err == nil {
		t.Fatal("DecodeOptions(a word for a number) succeeded")
	}
	if err := DecodeOptions(nil, &o); err != nil {
		t.Fatalf("DecodeOptions(no options) = %v", err)
	}
}

func TestRegisterForTest(t *testing.T) {
	t.Run("registered", func(t *testing.T) {
		RegisterForTest(t, "test-for-one-test", func(Config) (Rail, error) { return nopRail{}, nil })
		if _, err := New("test-for-one-test", Config{PartnerID: "p"}); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := New("test-for-one-test", Config{PartnerID: "p"}); err == nil {
		t.Fatal("a rail registered for a test outlived it")
	}
}

// TestEverySweepsAtOnce: the first sweep runs when Every starts, not an
// interval later (a restart finishes at once what is due), a failed one
// does not stop the loop, and Every returns when ctx ends.
func TestEverySweepsAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	swept := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		Every(ctx, time.Hour, zerolog.Nop(), "testing", func(context.Context) error {
			swept <- struct{}{}
			return errors.New("store away")
		})
	}()
	<-swept // an hour's interval: only the sweep at start can send this
	cancel()
	<-ended
}
