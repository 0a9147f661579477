package ilp

import (
	"bytes"
	"testing"
)

// FuzzDecode: any bytes either fail to decode or decode to a packet whose
// encoding is exactly the input (the codec accepts only canonical OER).
func FuzzDecode(f *testing.F) {
	for _, p := range samplePackets() {
		b, err := p.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte{14, 6, 'F', '0', '0', 0, 0, 0})
	f.Add([]byte{13, 0x81, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(Decode(%x)) error = %v", b, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("MarshalBinary(Decode(%x)) = %x, want the input", b, again)
		}
	})
}

// FuzzParseAddress: ParseAddress and Valid agree, and accepted addresses
// obey the length limit.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"g.a", "test3.x~y", "g..a", "peer.config", "levelone.dfsp2.bob", "g.a."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if (err == nil) != Address(s).Valid() {
			t.Fatalf("ParseAddress(%q) error = %v but Valid() = %v", s, err, Address(s).Valid())
		}
		if err == nil && (len(a) > MaxAddressLength || string(a) != s) {
			t.Fatalf("ParseAddress(%q) = %q", s, a)
		}
	})
}
