package stream

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

// FuzzDecodePacket: decrypted bytes from outside either fail to decode or
// decode to a packet that survives encoding and decoding unchanged.
func FuzzDecodePacket(f *testing.F) {
	for _, p := range samplePackets() {
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{1, 12, 1, 0, 1, 0, 1, 1, 0x99, 0})
	f.Add([]byte{1, 14, 1, 1, 1, 0, 1, 1, byte(TypeStreamMaxMoney), 14, 1, 1, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePacket(b)
		if err != nil {
			return
		}
		enc, _ := p.MarshalBinary()
		again, err := DecodePacket(enc)
		if err != nil {
			t.Fatalf("DecodePacket(MarshalBinary(DecodePacket(%x))) error = %v", b, err)
		}
		if !reflect.DeepEqual(describe(again), describe(p)) {
			t.Fatalf("round trip of %x: %v, want %v", b, describe(again), describe(p))
		}
	})
}

// FuzzReceive: any STREAM plaintext, sealed with the right key in a
// fulfillable or unfulfillable Prepare of any amount, gets an encodable
// reply; money is credited only by a Fulfill, and only the Prepare's
// amount.
func FuzzReceive(f *testing.F) {
	for _, p := range samplePackets() {
		b, _ := p.MarshalBinary()
		f.Add(b, uint64(100), true)
	}
	f.Add([]byte{1, 12, 1, 0, 1, 0, 1, 0}, uint64(0), false)
	sec := secret(42)
	keys, err := NewKeys(sec)
	if err != nil {
		f.Fatal(err)
	}
	recv := &Receiver{Address: "test.fuzz", Now: func() time.Time { return testNow }}
	f.Fuzz(func(t *testing.T, plaintext []byte, amount uint64, fulfillable bool) {
		data, err := keys.Seal(plaintext)
		if err != nil || len(data) > ilp.MaxDataLength {
			return
		}
		p := &ilp.Prepare{Amount: amount, ExpiresAt: testNow.Add(time.Minute), Destination: "test.fuzz.x", Data: data}
		if fulfillable {
			p.ExecutionCondition = keys.ConditionFor(data)
		}
		acct := NewMemoryAccount(Unlimited, false)
		rep, err := recv.Receive(context.Background(), p, Destination{SharedSecret: sec, AssetCode: "X", Account: acct})
		if err != nil {
			t.Fatalf("Receive error = %v", err)
		}
		if _, err := rep.MarshalBinary(); err != nil {
			t.Fatalf("reply %+v does not encode: %v", rep, err)
		}
		_, fulfilled := rep.(*ilp.Fulfill)
		if got := acct.Received(); (got != 0 && !fulfilled) || (got != 0 && got != amount) {
			t.Fatalf("credited %d for a %d Prepare answered with %T", got, amount, rep)
		}
		if fulfilled && !fulfillable {
			t.Fatalf("fulfilled an unfulfillable Prepare")
		}
	})
}

// FuzzResolve: any destination address either resolves to a token this
// server could have issued or is refused; it never panics.
func FuzzResolve(f *testing.F) {
	srv, err := NewServer("test.credentials", secret(33))
	if err != nil {
		f.Fatal(err)
	}
	c, _ := srv.Generate(ConnectionDetails{PaymentTag: "t", Asset: &AssetDetails{Code: "USD", Scale: 2}})
	f.Add(string(c.Address))
	f.Add("test.credentials.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, a string) {
		d, sec, err := srv.Resolve(ilp.Address(a))
		if err != nil {
			return
		}
		if len(sec) != 32 {
			t.Fatalf("Resolve(%q) secret of %d octets", a, len(sec))
		}
		d2, sec2, err := srv.Resolve(ilp.Address(a))
		if err != nil || !bytes.Equal(sec, sec2) || d2.PaymentTag != d.PaymentTag {
			t.Fatalf("Resolve(%q) is not deterministic: %v", a, err)
		}
	})
}
