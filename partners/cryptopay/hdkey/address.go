package hdkey

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"golang.org/x/crypto/sha3"
)

// ErrAddress is returned for a string that is not an Ethereum address.
var ErrAddress = errors.New("hdkey: malformed address")

// ErrAddressChecksum is returned for a mixed-case address whose case does
// not match its EIP-55 checksum: a typo, caught before money is sent to it.
var ErrAddressChecksum = errors.New("hdkey: address fails its EIP-55 checksum")

// Address is an Ethereum account or contract address: the last 20 bytes of
// the Keccak-256 hash of the account's uncompressed public key.
type Address [20]byte

// PublicKeyAddress returns the address of an account whose key is pub.
func PublicKeyAddress(pub *secp256k1.PublicKey) Address {
	uncompressed := pub.SerializeUncompressed() // 0x04 || X || Y
	h := keccak256(uncompressed[1:])
	return Address(h[12:])
}

// ParseAddress parses "0x" followed by 40 hex digits. An all-lower or
// all-upper case address is taken as it is; a mixed-case one must match its
// EIP-55 checksum.
func ParseAddress(s string) (Address, error) {
	var a Address
	if len(s) != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return a, fmt.Errorf("%w: %q is not 0x and 40 hex digits", ErrAddress, truncate(s))
	}
	digits := s[2:]
	if _, err := hex.Decode(a[:], []byte(digits)); err != nil {
		return a, fmt.Errorf("%w: %q: %v", ErrAddress, truncate(s), err)
	}
	lower, upper := false, false
	for i := 0; i < len(digits); i++ {
		switch c := digits[i]; {
		case 'a' <= c && c <= 'f':
			lower = true
		case 'A' <= c && c <= 'F':
			upper = true
		}
	}
	if lower && upper && a.String()[2:] != digits {
		return Address{}, fmt.Errorf("%w: %s, want %s", ErrAddressChecksum, s, a)
	}
	return a, nil
}

// String returns the address as "0x" and 40 hex digits in EIP-55 mixed
// case: a letter is upper case when the matching nibble of the Keccak-256
// hash of the lower-case hex is 8 or more.
func (a Address) String() string {
	var buf [42]byte
	buf[0], buf[1] = '0', 'x'
	hex.Encode(buf[2:], a[:])
	h := keccak256(buf[2:])
	for i := 2; i < len(buf); i++ {
		c := buf[i]
		if c < 'a' {
			continue // a digit has no case
		}
		nibble := h[(i-2)/2]
		if i%2 == 0 {
			nibble >>= 4
		}
		if nibble&0x0f >= 8 {
			buf[i] = c - 'a' + 'A'
		}
	}
	return string(buf[:])
}

// IsZero reports whether a is the zero address (the "from" of a mint).
func (a Address) IsZero() bool {
	return a == Address{}
}

// MarshalText encodes a as its EIP-55 string.
func (a Address) MarshalText() ([]byte, error) {
	return []byte(a.String()), nil
}

// UnmarshalText parses an address as ParseAddress does.
func (a *Address) UnmarshalText(b []byte) error {
	v, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

func keccak256(b []byte) [32]byte {
	h := sha3.NewLegacyKeccak256()
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// truncate keeps error messages short when handed a long string.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
