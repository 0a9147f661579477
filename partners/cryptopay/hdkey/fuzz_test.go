package hdkey_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
)

// FuzzParse feeds arbitrary strings to Parse: it must never panic, and a
// key it accepts must serialise back to the same string and derive.
func FuzzParse(f *testing.F) {
	for _, s := range append(vector1, vector2...) {
		f.Add(s.xpub)
	}
	f.Add("tpubD6NzVbkrYhZ4XgiXtGrdW5XDAPFCL9h7we1vwNCpn8tGbBcgfVYjXyhWo4E1xkh56hjod1RhGjxbaTLV3X4FyWuejifB9jusQ46QzG87VKp")
	f.Add("xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi")
	f.Add("")
	f.Add("1111111111")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := hdkey.Parse(s)
		if err != nil {
			return
		}
		if got := k.String(); got != strings.TrimSpace(s) {
			t.Fatalf("Parse(%q).String() = %q, want the input", s, got)
		}
		if _, err := k.Address(0); err != nil && !errors.Is(err, hdkey.ErrDepth) && !errors.Is(err, hdkey.ErrInvalidChild) {
			t.Fatalf("Address(0) of %s = %v, want an address", s, err)
		}
	})
}

// FuzzBase58 checks that decoding undoes encoding, and that decoding any
// string never panics.
func FuzzBase58(f *testing.F) {
	f.Add([]byte{}, "")
	f.Add([]byte{0, 0, 1, 2, 255}, "11Ldp")
	f.Add(bytes.Repeat([]byte{0xff}, 82), "zzzz")
	f.Fuzz(func(t *testing.T, b []byte, s string) {
		if len(b) <= 90 {
			enc := hdkey.EncodeBase58(b)
			dec, err := hdkey.DecodeBase58(enc)
			if err != nil || !bytes.Equal(dec, b) {
				t.Fatalf("DecodeBase58(EncodeBase58(%x)) = %x, %v, want the input", b, dec, err)
			}
		}
		if dec, err := hdkey.DecodeBase58(s); err == nil {
			if enc := hdkey.EncodeBase58(dec); enc != s {
				t.Fatalf("EncodeBase58(DecodeBase58(%q)) = %q, want the input", s, enc)
			}
		}
	})
}

// FuzzParseAddress: an accepted address prints as its EIP-55 form, which
// parses back to it.
func FuzzParseAddress(f *testing.F) {
	f.Add("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
	f.Add("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
	f.Add("0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED")
	f.Add("0x")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := hdkey.ParseAddress(s)
		if err != nil {
			return
		}
		b, err := hdkey.ParseAddress(a.String())
		if err != nil || b != a {
			t.Fatalf("ParseAddress(%s) = %s, %v, want %s", a.String(), b, err, a)
		}
		if !strings.EqualFold(a.String()[2:], s[2:]) {
			t.Fatalf("ParseAddress(%q) = %s, want the same hex", s, a)
		}
	})
}
