package qr

import (
	"strconv"
	"strings"
)

// exponents maps a numeric currency code to its minor unit exponent + 1, so
// that 0 means unknown; indexing an array keeps CurrencyExponent free of
// hashing and allocation on the Encode path.
var exponents = func() (t [1000]int8) {
	for _, c := range currencies {
		n := int(c.numeric[0]-'0')*100 + int(c.numeric[1]-'0')*10 + int(c.numeric[2]-'0')
		t[n] = c.exp + 1
	}
	return t
}()

// CurrencyExponent returns the ISO 4217 minor unit exponent of a numeric
// currency code ("710" ZAR → 2, "392" JPY → 0, "048" BHD → 3) and whether the
// code is known. Encode needs it to write an amount in minor units as a
// decimal; an amount in an unknown currency cannot be encoded.
func CurrencyExponent(numeric string) (int, bool) {
	if len(numeric) != 3 || !allDigits(numeric) {
		return 0, false
	}
	e := exponents[int(numeric[0]-'0')*100+int(numeric[1]-'0')*10+int(numeric[2]-'0')]
	if e == 0 {
		return 0, false
	}
	return int(e) - 1, true
}

// CurrencyNumeric returns the ISO 4217 numeric code of an alphabetic one
// ("ZAR" → "710"), case-insensitively, and whether it is known. It is for
// people typing codes; payloads and the interface carry numeric codes.
func CurrencyNumeric(alpha string) (string, bool) {
	for _, c := range currencies {
		if strings.EqualFold(c.alpha, alpha) {
			return c.numeric, true
		}
	}
	return "", false
}

// CurrencyAlpha returns the ISO 4217 alphabetic code of a numeric one
// ("710" → "ZAR") and whether it is known.
func CurrencyAlpha(numeric string) (string, bool) {
	for _, c := range currencies {
		if c.numeric == numeric {
			return c.alpha, true
		}
	}
	return "", false
}

// FormatMinor writes an amount in minor units as a decimal with exp
// decimals: FormatMinor(-1500, 2) is "-15.00", FormatMinor(7, 3) "0.007".
// The rails write amounts with it where their protocols want decimals.
func FormatMinor(minor int64, exp int) string {
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if exp > 0 {
		if len(s) <= exp {
			s = strings.Repeat("0", exp-len(s)+1) + s
		}
		s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
