package qr_test

import (
	"testing"

	"github.com/qrswitch/qrswitch/qr"
)

// reportRate adds payloads per second on one core (benchmarks run on one
// goroutine) to the benchmark's output.
func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payloads/s")
}

func BenchmarkEncode(b *testing.B) {
	p := fullPayload()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := qr.Encode(p); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkAppendEncode(b *testing.B) {
	p := fullPayload()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = qr.AppendEncode(buf[:0], p); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkEncodeElectrumMinimal(b *testing.B) {
	p := &qr.Payload{Scheme: qr.SchemeElectrumMinimal, Accounts: []qr.MerchantAccount{qr.ElectrumAccount(electrumTranID)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := qr.Encode(p); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkDecode(b *testing.B) {
	s, err := qr.Encode(fullPayload())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := qr.Decode(s); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkTranID(b *testing.B) {
	s, err := qr.Encode(fullPayload())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := qr.TranID(s); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkCRC16(b *testing.B) {
	s, err := qr.Encode(fullPayload())
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(s[:len(s)-4])
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		qr.CRC16(in)
	}
	reportRate(b)
}

func BenchmarkPNG(b *testing.B) {
	s, err := qr.Encode(fullPayload())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := qr.PNG(s, 256); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}
