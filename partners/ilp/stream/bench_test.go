package stream

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

// BenchmarkReceive measures one Prepare end to end as a rail handles it:
// decode the OER bytes, derive keys, decrypt, credit an in-memory account,
// fulfill, seal the STREAM reply and encode the Fulfill.
func BenchmarkReceive(b *testing.B) {
	sec := secret(1)
	keys, _ := NewKeys(sec)
	data, _ := keys.SealPacket(&Packet{Sequence: 1, ILPType: ilp.TypePrepare, Frames: []Frame{StreamMoney{StreamID: 1, Shares: 1}}})
	prep := &ilp.Prepare{Amount: 1, ExpiresAt: time.Now().Add(time.Hour), ExecutionCondition: keys.ConditionFor(data), Destination: "test.bench.receiver.abcdef", Data: data}
	raw, _ := prep.MarshalBinary()
	off := 2
	if raw[1]&0x80 != 0 {
		off += int(raw[1] & 0x7f)
	}
	acct := NewMemoryAccount(Unlimited, false)
	recv := &Receiver{Address: "test.bench"}
	d := Destination{SharedSecret: sec, AssetCode: "USD", AssetScale: 2, Account: acct}
	ctx := context.Background()
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A distinct amount makes each Prepare a new packet to credit.
		binary.BigEndian.PutUint64(raw[off:], uint64(i)+1)
		p, err := ilp.DecodePrepare(raw)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := recv.Receive(ctx, p, d)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := rep.(*ilp.Fulfill); !ok {
			b.Fatalf("reply %+v, want Fulfill", rep)
		}
		if out, err = rep.AppendBinary(out[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if acct.Credits() != b.N {
		b.Fatalf("credited %d packets, want %d", acct.Credits(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkPacketEncode(b *testing.B) {
	p := samplePackets()["reply frames"]
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = p.AppendBinary(buf[:0])
	}
}

func BenchmarkPacketDecode(b *testing.B) {
	raw, _ := samplePackets()["reply frames"].MarshalBinary()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodePacket(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen(b *testing.B) {
	keys, _ := NewKeys(secret(2))
	raw, _ := samplePackets()["reply frames"].MarshalBinary()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sealed, err := keys.Seal(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := keys.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}
