package chain

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// PaymentURI returns the EIP-681 URI asking a wallet to pay amount base
// units of token to to on chain chainID:
//
//	ethereum:<token>@<chainID>/transfer?address=<to>&uint256=<amount>
//
// The amount is an integer in base units (never a decimal fraction, which
// EIP-681 only allows with an exponent); addresses are EIP-55 checksummed.
func PaymentURI(token Address, chainID uint64, to Address, amount *big.Int) string {
	return fmt.Sprintf("ethereum:%s@%d/transfer?address=%s&uint256=%s", token, chainID, to, amount.String())
}

// ErrAmount is returned for a decimal amount that is not a non-negative
// number with at most the token's decimals of fraction.
var ErrAmount = errors.New("chain: malformed amount")

// maxAmountDigits bounds the decimal strings ParseAmount reads: a uint256
// has 78 digits.
const maxAmountDigits = 80

// ParseAmount converts a decimal amount of tokens such as "222.333" to
// base units for a token with decimals decimals (222333000 with 6). It
// refuses signs, exponents, more fraction digits than decimals (they
// cannot be paid exactly) and values beyond 256 bits.
func ParseAmount(s string, decimals uint8) (*big.Int, error) {
	if s == "" || len(s) > maxAmountDigits {
		return nil, fmt.Errorf("%w: %q: want 1 to %d characters", ErrAmount, truncate(s), maxAmountDigits)
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") {
		return nil, fmt.Errorf("%w: %q: want digits on both sides of a decimal point", ErrAmount, s)
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return nil, fmt.Errorf("%w: %q: only digits and one decimal point", ErrAmount, s)
			}
		}
	}
	if len(frac) > int(decimals) {
		return nil, fmt.Errorf("%w: %q has %d decimals, the token has %d", ErrAmount, s, len(frac), decimals)
	}
	digits := whole + frac + strings.Repeat("0", int(decimals)-len(frac))
	v, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrAmount, s)
	}
	if v.BitLen() > 256 {
		return nil, fmt.Errorf("%w: %q exceeds 256 bits", ErrAmount, s)
	}
	return v, nil
}

// FormatAmount writes base units as a decimal amount of tokens, without
// trailing fraction zeros: FormatAmount(222333000, 6) = "222.333".
func FormatAmount(v *big.Int, decimals uint8) string {
	neg := v.Sign() < 0
	digits := new(big.Int).Abs(v).String()
	if d := int(decimals); d > 0 {
		if len(digits) <= d {
			digits = strings.Repeat("0", d-len(digits)+1) + digits
		}
		whole, frac := digits[:len(digits)-d], strings.TrimRight(digits[len(digits)-d:], "0")
		digits = whole
		if frac != "" {
			digits += "." + frac
		}
	}
	if neg {
		return "-" + digits
	}
	return digits
}
