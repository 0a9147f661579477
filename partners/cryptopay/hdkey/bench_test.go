package hdkey_test

import (
	"testing"

	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
)

// BenchmarkAddress measures deriving payment addresses from an account
// xpub: one child derivation, Keccak-256 and EIP-55 per address.
func BenchmarkAddress(b *testing.B) {
	k, err := hdkey.Parse(vector2[1].xpub)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		a, err := k.Address(i)
		if err != nil {
			b.Fatal(err)
		}
		_ = a.String()
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "addresses/s")
}

// BenchmarkParse measures decoding an xpub.
func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hdkey.Parse(vector1[5].xpub); err != nil {
			b.Fatal(err)
		}
	}
}
