// Package oer owns the subset of ASN.1 Octet Encoding Rules that Interledger
// uses (IL-RFC 30): fixed-size unsigned integers, canonical length
// prefixes, variable-length octet strings and variable-length unsigned
// integers. It is shared by the ILPv4 packet codec, STREAM and IL-DCP, and
// is internal because its shape follows their needs, not a general ASN.1
// API.
package oer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Sentinels returned by Reader; callers wrap them with the field they read.
var (
	// ErrShort means the input ended inside a field.
	ErrShort = errors.New("oer: input too short")
	// ErrNonCanonical means a length prefix was not in its shortest form.
	ErrNonCanonical = errors.New("oer: length prefix not canonical")
	// ErrTooLarge means a length or integer exceeds what the decoder supports.
	ErrTooLarge = errors.New("oer: value too large")
	// ErrEmptyUInt means a variable-length integer had no octets.
	ErrEmptyUInt = errors.New("oer: variable-length integer of length 0")
)

// Reader reads OER fields from a byte slice without copying: returned
// slices alias the input.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Len reports how many bytes remain unread.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Read returns the next n bytes.
func (r *Reader) Read(n int) ([]byte, error) {
	if n < 0 || n > r.Len() {
		return nil, ErrShort
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v, nil
}

// Uint8 reads one octet.
func (r *Reader) Uint8() (uint8, error) {
	if r.Len() < 1 {
		return 0, ErrShort
	}
	v := r.b[r.off]
	r.off++
	return v, nil
}

// Uint64 reads a fixed eight-octet big-endian unsigned integer.
func (r *Reader) Uint64() (uint64, error) {
	b, err := r.Read(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

// LengthPrefix reads a canonical OER length determinant: one octet below
// 128, otherwise 0x80|n followed by n big-endian octets holding a value
// that needs all of them and is at least 128.
func (r *Reader) LengthPrefix() (int, error) {
	first, err := r.Uint8()
	if err != nil {
		return 0, err
	}
	if first&0x80 == 0 {
		return int(first), nil
	}
	n := int(first & 0x7f)
	if n == 0 {
		return 0, ErrNonCanonical
	}
	if n > 4 {
		return 0, ErrTooLarge
	}
	b, err := r.Read(n)
	if err != nil {
		return 0, err
	}
	if b[0] == 0 {
		return 0, ErrNonCanonical
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	if v < 128 {
		return 0, ErrNonCanonical
	}
	if v > math.MaxInt32 {
		return 0, ErrTooLarge
	}
	return int(v), nil
}

// VarOctetString reads a length-prefixed octet string.
func (r *Reader) VarOctetString() ([]byte, error) {
	n, err := r.LengthPrefix()
	if err != nil {
		return nil, err
	}
	return r.Read(n)
}

// VarUint reads a variable-length unsigned integer of one to eight octets.
// Leading zero octets are accepted (a non-canonical form the reference
// implementations also read).
func (r *Reader) VarUint() (uint64, error) {
	b, err := r.VarOctetString()
	if err != nil {
		return 0, err
	}
	return uintFrom(b)
}

// SaturatingVarUint reads a variable-length unsigned integer, returning
// math.MaxUint64 when it has more than eight significant octets (IL-RFC 29
// §5.1.4 for receiveMax and sendMax).
func (r *Reader) SaturatingVarUint() (uint64, error) {
	b, err := r.VarOctetString()
	if err != nil {
		return 0, err
	}
	v, err := uintFrom(b)
	if errors.Is(err, ErrTooLarge) {
		return math.MaxUint64, nil
	}
	return v, err
}

func uintFrom(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, ErrEmptyUInt
	}
	for len(b) > 8 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) > 8 {
		return 0, ErrTooLarge
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// AppendLengthPrefix appends the canonical length determinant of n.
func AppendLengthPrefix(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	var tmp [8]byte
	binary.BigEndian.PutUint64(tmp[:], uint64(n))
	i := 0
	for tmp[i] == 0 {
		i++
	}
	dst = append(dst, 0x80|byte(8-i))
	return append(dst, tmp[i:]...)
}

// LengthPrefixSize reports how many octets AppendLengthPrefix writes for n.
func LengthPrefixSize(n int) int {
	if n < 128 {
		return 1
	}
	s := 1
	for v := uint64(n); v > 0; v >>= 8 {
		s++
	}
	return s
}

// AppendVarOctetString appends b with its length prefix.
func AppendVarOctetString(dst, b []byte) []byte {
	dst = AppendLengthPrefix(dst, len(b))
	return append(dst, b...)
}

// AppendVarUint appends v as a canonical variable-length unsigned integer
// (the fewest octets, at least one).
func AppendVarUint(dst []byte, v uint64) []byte {
	n := VarUintSize(v) - 1
	dst = append(dst, byte(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// VarUintSize reports how many octets AppendVarUint writes for v, prefix
// included.
func VarUintSize(v uint64) int {
	n := 1
	for v > 0xff {
		v >>= 8
		n++
	}
	return n + 1
}

// AppendUint64 appends v as eight big-endian octets.
func AppendUint64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, v)
}

// FieldError names the field a decoder failed on.
func FieldError(field string, err error) error {
	return fmt.Errorf("reading %s: %w", field, err)
}
