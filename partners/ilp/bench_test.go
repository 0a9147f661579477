package ilp

import (
	"bytes"
	"testing"
	"time"
)

func benchPrepare() *Prepare {
	return &Prepare{Amount: 1000, ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), ExecutionCondition: cond(3),
		Destination: "g.qrswitch.incoming.0f1e2d3c4b5a69788796a5b4c3d2e1f0", Data: bytes.Repeat([]byte{7}, 120)}
}

func BenchmarkPrepareEncode(b *testing.B) {
	p := benchPrepare()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = p.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrepareDecode(b *testing.B) {
	raw, _ := benchPrepare().MarshalBinary()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodePrepare(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFulfillEncodeDecode(b *testing.B) {
	f := &Fulfill{Fulfillment: cond(9), Data: bytes.Repeat([]byte{1}, 60)}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = f.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeReply(buf); err != nil {
			b.Fatal(err)
		}
	}
}
