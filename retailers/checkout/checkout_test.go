package checkout

import (
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestAmounts(t *testing.T) {
	for _, tt := range []struct {
		in    string
		exp   int
		minor string // "" when refused
		out   string
	}{
		{"222.333", 8, "22233300000", "222.333"},
		{"5", 8, "500000000", "5.0"},
		{"5.50", 2, "550", "5.5"},
		{"0.01", 2, "1", "0.01"},
		{"1.005", 2, "", ""},
		{"1.000", 2, "100", "1.0"},
		{"12345678", 0, "12345678", "12345678.0"},
		{"0.00000001", 8, "1", "0.00000001"},
	} {
		n, ok := parseAmount(tt.in, tt.exp)
		if tt.minor == "" {
			if ok {
				t.Errorf("parseAmount(%q, %d) = %s, want refused", tt.in, tt.exp, n)
			}
			continue
		}
		if !ok || n.String() != tt.minor {
			t.Errorf("parseAmount(%q, %d) = %v, %v; want %s", tt.in, tt.exp, n, ok, tt.minor)
			continue
		}
		if got := formatAmount(n, tt.exp); got != tt.out {
			t.Errorf("formatAmount(%s, %d) = %q, want %q (0xbtcpay's BigDecimal#to_s(\"F\"))", n, tt.exp, got, tt.out)
		}
	}
}

// FuzzAmount: whatever a shop sends that matches 0xbtcpay's pattern parses
// to minor units that format back to the same number.
func FuzzAmount(f *testing.F) {
	for _, s := range []string{"1", "222.333", "0.00000001", "99999999.99999999", "007.10"} {
		f.Add(s, uint8(8))
	}
	f.Fuzz(func(t *testing.T, s string, e uint8) {
		exp := int(e % 19)
		if !amountPattern.MatchString(s) {
			return
		}
		n, ok := parseAmount(s, exp)
		if !ok {
			return
		}
		back, ok2 := parseAmount(formatAmount(n, exp), exp)
		if !ok2 || back.Cmp(n) != 0 {
			t.Fatalf("%q → %s → %q → %v: not a round trip", s, n, formatAmount(n, exp), back)
		}
		want, _ := new(big.Rat).SetString(s)
		got := new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil))
		if got.Cmp(want) != 0 {
			t.Fatalf("%q parsed to %s minor units of %d decimals: %s", s, n, exp, got)
		}
	})
}

func TestSignatures(t *testing.T) {
	secret, body := []byte("0123456789abcdef-secret"), []byte(`{"id":"0c3fa5c9e5394cc9","data":"null","tx_hash":"0xab"}`)
	at := time.Unix(1_800_000_000, 0)
	h := Sign(secret, body, at)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("Sign = %q, want t=UNIX,v1=64 hex digits", h)
	}
	if err := Verify(secret, body, h, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("Verify(own signature) = %v", err)
	}
	for _, tt := range []struct {
		name, header string
		body         []byte
		now          time.Time
	}{
		{"tampered body", h, append([]byte(nil), append(body[:len(body)-1], ' ', '}')...), at},
		{"replayed later", h, body, at.Add(time.Hour)},
		{"no v1", "t=1800000000", body, at},
		{"garbage", "x", body, at},
		{"forged", "t=1800000000,v1=" + strings.Repeat("0", 64), body, at},
	} {
		if err := Verify(secret, tt.body, tt.header, tt.now, 5*time.Minute); err == nil {
			t.Errorf("Verify(%s) succeeded", tt.name)
		}
	}
}
