package hdkey

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// alphabet is Bitcoin's Base58 alphabet: no 0, O, I or l.
const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// alphabetIndex maps a byte to its digit value, -1 outside the alphabet.
var alphabetIndex = func() [256]int8 {
	var idx [256]int8
	for i := range idx {
		idx[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		idx[alphabet[i]] = int8(i)
	}
	return idx
}()

// maxBase58 bounds the strings decodeBase58 accepts: an extended key is 111
// characters, and the quadratic decoder must not be handed megabytes.
const maxBase58 = 128

var errBase58 = errors.New("not Base58")

// encodeBase58 encodes b in Base58, one '1' per leading zero byte.
func encodeBase58(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) ≈ 1.366 digits per byte.
	digits := make([]byte, 0, len(b)*138/100+1)
	for _, c := range b[zeros:] {
		carry := int(c)
		for i := range digits {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := make([]byte, zeros+len(digits))
	for i := 0; i < zeros; i++ {
		out[i] = alphabet[0]
	}
	for i, d := range digits {
		out[len(out)-1-i] = alphabet[d]
	}
	return string(out)
}

// decodeBase58 decodes s, one zero byte per leading '1'.
func decodeBase58(s string) ([]byte, error) {
	if len(s) > maxBase58 {
		return nil, fmt.Errorf("%w: %d characters, at most %d", errBase58, len(s), maxBase58)
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == alphabet[0] {
		zeros++
	}
	// Little-endian base-256 digits of the number.
	bytes := make([]byte, 0, len(s))
	for i := zeros; i < len(s); i++ {
		v := alphabetIndex[s[i]]
		if v < 0 {
			return nil, fmt.Errorf("%w: character %q at %d", errBase58, s[i], i)
		}
		carry := int(v)
		for j := range bytes {
			carry += int(bytes[j]) * 58
			bytes[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			bytes = append(bytes, byte(carry))
			carry >>= 8
		}
	}
	out := make([]byte, zeros+len(bytes))
	for i, b := range bytes {
		out[len(out)-1-i] = b
	}
	return out, nil
}

// checksum is the first four bytes of SHA-256(SHA-256(payload)).
func checksum(payload []byte) [4]byte {
	h1 := sha256.Sum256(payload)
	h2 := sha256.Sum256(h1[:])
	return [4]byte(h2[:4])
}
