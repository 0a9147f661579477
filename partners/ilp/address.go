// Package ilp owns the Interledger protocol's core wire types: ILP
// addresses (IL-RFC 15), the ILPv4 Prepare, Fulfill and Reject packets and
// their OER encoding (IL-RFC 27), and the ILP error codes. The transport
// protocols built on them live in sub-packages: cond (crypto-conditions
// PREIMAGE-SHA-256 for two-phase ledgers), stream (STREAM, IL-RFC 29),
// ilphttp (ILP over HTTP, IL-RFC 35) and ildcp (IL-DCP, IL-RFC 31, kept apart
// from ilphttp because it is a packet protocol any link can carry).
//
// Nothing here keeps state or does I/O; rails build on these types.
package ilp

import (
	"errors"
	"fmt"
	"strings"
)

// MaxAddressLength is the longest ILP address IL-RFC 15 allows.
const MaxAddressLength = 1023

// ErrInvalidAddress is returned for a string that is not an ILP address.
var ErrInvalidAddress = errors.New("ilp: invalid address")

// Address is an ILP address such as "g.acme.bob". Construct one with
// ParseAddress; the zero value is the empty (invalid) address, which IL-RFC
// 27 tolerates only as a Reject's triggeredBy.
type Address string

// schemes are the allocation schemes of IL-RFC 15.
var schemes = map[string]bool{
	"g": true, "private": true, "example": true, "peer": true, "self": true,
	"test": true, "test1": true, "test2": true, "test3": true, "local": true,
}

// ParseAddress checks s against IL-RFC 15: a known allocation scheme, at
// least one further segment, segments of [A-Za-z0-9_~-]+ separated by
// single periods, at most 1023 characters.
func ParseAddress(s string) (Address, error) {
	if err := checkAddress(s); err != nil {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidAddress, truncate(s), err.Error())
	}
	return Address(s), nil
}

func checkAddress(s string) error {
	if len(s) > MaxAddressLength {
		return errors.New("longer than 1023 characters")
	}
	scheme, rest, ok := strings.Cut(s, ".")
	if !schemes[scheme] {
		return errors.New("unknown allocation scheme")
	}
	if !ok {
		return errors.New("no segment after the allocation scheme")
	}
	segLen := 0
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c == '.':
			if segLen == 0 {
				return errors.New("empty segment")
			}
			segLen = 0
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '~', c == '-':
			segLen++
		default:
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	if segLen == 0 {
		return errors.New("empty segment")
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Valid reports whether a is a well-formed ILP address.
func (a Address) Valid() bool { return checkAddress(string(a)) == nil }

// Scheme returns the allocation scheme, the first segment ("g", "test", …).
func (a Address) Scheme() string {
	s, _, _ := strings.Cut(string(a), ".")
	return s
}

// HasPrefix reports whether a is prefix itself or lies under it
// ("g.a.b" is under "g.a", "g.ab" is not).
func (a Address) HasPrefix(prefix Address) bool {
	return a == prefix || strings.HasPrefix(string(a), string(prefix)+".")
}

// Append returns a with one more segment; the result is checked.
func (a Address) Append(segment string) (Address, error) {
	if strings.Contains(segment, ".") {
		return "", fmt.Errorf("%w: segment %q contains a period", ErrInvalidAddress, truncate(segment))
	}
	return ParseAddress(string(a) + "." + segment)
}

// String returns the address as text.
func (a Address) String() string { return string(a) }
