package cond

import (
	"bytes"
	"testing"
)

// FuzzParseCondition: an accepted URI re-serializes to a URI that parses to
// the same condition, and its DER form round-trips.
func FuzzParseCondition(f *testing.F) {
	f.Add(seedCondition)
	for _, s := range seedOtherConditions {
		f.Add(s)
	}
	f.Add("ni:///sha-256;sbawjV8idAMItrwviBMq4zMOkuo_lRLNMm1KPPVFM2A?cost=0&fpt=preimage-sha-256")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCondition(s)
		if err != nil {
			return
		}
		again, err := ParseCondition(c.String())
		if err != nil || again != c {
			t.Fatalf("ParseCondition(%q).String() = %s reparses to %+v, %v", s, c, again, err)
		}
		b, _ := c.MarshalBinary()
		cb, err := ParseConditionBinary(b)
		if err != nil || cb != c {
			t.Fatalf("ParseConditionBinary(MarshalBinary(%+v)) = %+v, %v", c, cb, err)
		}
	})
}

// FuzzParseConditionBinary: accepted DER is canonical (re-encodes to the
// input).
func FuzzParseConditionBinary(f *testing.F) {
	c, _ := ParseCondition(seedCondition)
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Add([]byte{0xa0, 0x25, 0x80, 0x20})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConditionBinary(b)
		if err != nil {
			return
		}
		again, _ := c.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("MarshalBinary(ParseConditionBinary(%x)) = %x", b, again)
		}
	})
}

// FuzzParseFulfillmentBinary: accepted DER is canonical, and the
// fulfillment verifies against its own condition.
func FuzzParseFulfillmentBinary(f *testing.F) {
	seed, _ := ParseFulfillment(seedFulfillment)
	b, _ := seed.MarshalBinary()
	f.Add(b)
	long, _ := Fulfillment{Preimage: make([]byte, 300)}.MarshalBinary()
	f.Add(long)
	f.Add([]byte{0xa0, 0x02, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ff, err := ParseFulfillmentBinary(b)
		if err != nil {
			return
		}
		again, err := ff.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("MarshalBinary(ParseFulfillmentBinary(%x)) = %x, %v", b, again, err)
		}
		if err := ff.Condition().Verify(ff); err != nil {
			t.Fatalf("Verify own condition = %v", err)
		}
	})
}

// FuzzParseFulfillment: the base64url text form.
func FuzzParseFulfillment(f *testing.F) {
	f.Add(seedFulfillment)
	f.Add(seedPreimage)
	f.Fuzz(func(t *testing.T, s string) {
		ff, err := ParseFulfillment(s)
		if err != nil {
			return
		}
		again, err := ParseFulfillment(ff.String())
		if err != nil || !bytes.Equal(again.Preimage, ff.Preimage) {
			t.Fatalf("ParseFulfillment(%q) does not round-trip: %v", s, err)
		}
	})
}
