// Package cond owns crypto-conditions of type PREIMAGE-SHA-256
// (draft-thomas-crypto-conditions), the only type the two-phase ledgers of
// the Interledger era used for transfers: the condition URI
// "ni:///sha-256;<fingerprint>?fpt=preimage-sha-256&cost=<n>", the DER
// encodings of condition and fulfillment, and the two base64url text forms
// a fulfillment travels in (the DER form, as in a ledger's
// PUT …/fulfillment, and the raw 32-octet preimage, as an ILPv4 fulfillment
// reported by an SPSP client).
//
// Other condition types (prefix, threshold, RSA, Ed25519) are refused with
// ErrUnsupportedType.
package cond

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxCost is the longest preimage accepted, the maximum fulfillment size of
// the reference implementation (five-bells-condition).
const MaxCost = 2097152

// TypeName is the fpt (fingerprint type) of PREIMAGE-SHA-256.
const TypeName = "preimage-sha-256"

const uriPrefix = "ni:///sha-256;"

// Errors returned by the parsers and Verify.
var (
	// ErrMalformed means the text or DER is not a well-formed condition or
	// fulfillment.
	ErrMalformed = errors.New("cond: malformed")
	// ErrUnsupportedType means a well-formed condition or fulfillment of a
	// type other than PREIMAGE-SHA-256.
	ErrUnsupportedType = errors.New("cond: unsupported condition type")
	// ErrMismatch means a fulfillment does not fulfill a condition.
	ErrMismatch = errors.New("cond: fulfillment does not match condition")
)

// Condition is a PREIMAGE-SHA-256 condition: the SHA-256 fingerprint of
// the preimage and its cost, the preimage's length in octets.
type Condition struct {
	Fingerprint [32]byte
	Cost        uint32
}

// Fulfillment is a PREIMAGE-SHA-256 fulfillment: the preimage itself.
type Fulfillment struct {
	Preimage []byte
}

// FromILP returns the condition of an ILPv4 packet's executionCondition:
// ILPv4 fulfillments are always 32-octet preimages.
func FromILP(executionCondition [32]byte) Condition {
	return Condition{Fingerprint: executionCondition, Cost: 32}
}

// Condition returns the condition f fulfills.
func (f Fulfillment) Condition() Condition {
	return Condition{Fingerprint: sha256.Sum256(f.Preimage), Cost: uint32(len(f.Preimage))}
}

// Verify reports whether f fulfills c: ErrMismatch when it does not.
func (c Condition) Verify(f Fulfillment) error {
	got := f.Condition()
	if got.Cost != c.Cost || subtle.ConstantTimeCompare(got.Fingerprint[:], c.Fingerprint[:]) != 1 {
		return ErrMismatch
	}
	return nil
}

// String returns the condition URI,
// ni:///sha-256;<base64url fingerprint>?fpt=preimage-sha-256&cost=<n>.
func (c Condition) String() string {
	return uriPrefix + base64.RawURLEncoding.EncodeToString(c.Fingerprint[:]) +
		"?fpt=" + TypeName + "&cost=" + strconv.FormatUint(uint64(c.Cost), 10)
}

// MarshalText returns the condition URI.
func (c Condition) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText parses a condition URI.
func (c *Condition) UnmarshalText(b []byte) error {
	v, err := ParseCondition(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCondition parses a condition URI. The fingerprint is unpadded
// base64url of 32 octets; the query must carry fpt=preimage-sha-256 and a
// decimal cost (no sign, no leading zeros) of at most MaxCost, each once,
// in either order. Other query parameters are ignored, as the reference
// implementation ignores them, except subtypes, which only compound types
// have.
func ParseCondition(s string) (Condition, error) {
	var c Condition
	rest, ok := strings.CutPrefix(s, uriPrefix)
	if !ok {
		return c, fmt.Errorf("%w: condition URI does not start with %q", ErrMalformed, uriPrefix)
	}
	fp, query, ok := strings.Cut(rest, "?")
	if !ok {
		return c, fmt.Errorf("%w: condition URI has no query", ErrMalformed)
	}
	raw, err := decodeB64URL(fp)
	if err != nil || len(raw) != 32 {
		return c, fmt.Errorf("%w: fingerprint is not base64url of 32 octets", ErrMalformed)
	}
	copy(c.Fingerprint[:], raw)
	var fpt, cost string
	var haveFpt, haveCost bool
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "fpt":
			if haveFpt {
				return c, fmt.Errorf("%w: fpt given twice", ErrMalformed)
			}
			fpt, haveFpt = v, true
		case "cost":
			if haveCost {
				return c, fmt.Errorf("%w: cost given twice", ErrMalformed)
			}
			cost, haveCost = v, true
		case "subtypes":
			return c, fmt.Errorf("%w: subtypes on a simple condition", ErrMalformed)
		}
	}
	if !haveFpt {
		return c, fmt.Errorf("%w: condition URI has no fpt", ErrMalformed)
	}
	if fpt != TypeName {
		return c, fmt.Errorf("%w: fpt %q", ErrUnsupportedType, fpt)
	}
	n, err := parseCost(cost)
	if err != nil {
		return c, err
	}
	c.Cost = n
	return c, nil
}

func parseCost(s string) (uint32, error) {
	if s == "" || len(s) > 7 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: cost %q", ErrMalformed, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: cost %q", ErrMalformed, s)
		}
	}
	n, _ := strconv.ParseUint(s, 10, 32)
	if n > MaxCost {
		return 0, fmt.Errorf("%w: cost %d exceeds %d", ErrMalformed, n, MaxCost)
	}
	return uint32(n), nil
}

// decodeB64URL reads base64url with or without '=' padding; the standard
// alphabet's '+' and '/' are refused.
func decodeB64URL(s string) ([]byte, error) {
	if strings.ContainsAny(s, "+/") {
		return nil, errors.New("not base64url")
	}
	if strings.HasSuffix(s, "=") {
		return base64.URLEncoding.Strict().DecodeString(s)
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// DER tags of the crypto-conditions ASN.1 module for PREIMAGE-SHA-256.
const (
	tagPreimageChoice = 0xa0 // [0] constructed: preimageSha256 in both CHOICEs
	tagField0         = 0x80 // [0] primitive: preimage, or fingerprint
	tagField1         = 0x81 // [1] primitive: cost
)

// MarshalBinary returns the DER condition:
// A0 len 80 20 <fingerprint> 81 len <cost as a DER INTEGER>.
func (c Condition) MarshalBinary() ([]byte, error) {
	cost := derUint(c.Cost)
	body := make([]byte, 0, 36+len(cost))
	body = append(body, tagField0, 32)
	body = append(body, c.Fingerprint[:]...)
	body = append(body, tagField1, byte(len(cost)))
	body = append(body, cost...)
	out := appendDERHeader(make([]byte, 0, len(body)+2), tagPreimageChoice, len(body))
	return append(out, body...), nil
}

// derUint encodes v as the contents of a DER INTEGER: minimal two's
// complement, so a leading 0x00 when the high bit is set.
func derUint(v uint32) []byte {
	b := []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	for len(b) > 1 && b[0] == 0 && b[1]&0x80 == 0 {
		b = b[1:]
	}
	if b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// ParseConditionBinary parses a DER condition. Conditions of other types
// (other context tags) are ErrUnsupportedType.
func ParseConditionBinary(b []byte) (Condition, error) {
	var c Condition
	tag, body, rest, err := readDER(b)
	if err != nil {
		return c, err
	}
	if len(rest) != 0 {
		return c, fmt.Errorf("%w: %d octets after the condition", ErrMalformed, len(rest))
	}
	if tag != tagPreimageChoice {
		if tag >= 0xa1 && tag <= 0xa4 {
			return c, fmt.Errorf("%w: condition tag %#x", ErrUnsupportedType, tag)
		}
		return c, fmt.Errorf("%w: condition tag %#x", ErrMalformed, tag)
	}
	tag, fp, body, err := readDER(body)
	if err != nil {
		return c, err
	}
	if tag != tagField0 || len(fp) != 32 {
		return c, fmt.Errorf("%w: fingerprint field", ErrMalformed)
	}
	copy(c.Fingerprint[:], fp)
	tag, cost, body, err := readDER(body)
	if err != nil {
		return c, err
	}
	if tag != tagField1 || len(body) != 0 {
		return c, fmt.Errorf("%w: cost field", ErrMalformed)
	}
	if len(cost) == 0 || len(cost) > 5 || cost[0]&0x80 != 0 || (len(cost) > 1 && cost[0] == 0 && cost[1]&0x80 == 0) {
		return c, fmt.Errorf("%w: cost is not a minimal non-negative DER INTEGER", ErrMalformed)
	}
	var n uint64
	for _, x := range cost {
		n = n<<8 | uint64(x)
	}
	if n > MaxCost {
		return c, fmt.Errorf("%w: cost %d exceeds %d", ErrMalformed, n, MaxCost)
	}
	c.Cost = uint32(n)
	return c, nil
}

// MarshalBinary returns the DER fulfillment: A0 len 80 len <preimage>.
func (f Fulfillment) MarshalBinary() ([]byte, error) {
	if len(f.Preimage) > MaxCost {
		return nil, fmt.Errorf("%w: preimage of %d octets exceeds %d", ErrMalformed, len(f.Preimage), MaxCost)
	}
	inner := appendDERHeader(make([]byte, 0, len(f.Preimage)+10), tagField0, len(f.Preimage))
	inner = append(inner, f.Preimage...)
	out := appendDERHeader(make([]byte, 0, len(inner)+5), tagPreimageChoice, len(inner))
	return append(out, inner...), nil
}

// ParseFulfillmentBinary parses a DER fulfillment. The preimage is copied.
func ParseFulfillmentBinary(b []byte) (Fulfillment, error) {
	tag, body, rest, err := readDER(b)
	if err != nil {
		return Fulfillment{}, err
	}
	if len(rest) != 0 {
		return Fulfillment{}, fmt.Errorf("%w: %d octets after the fulfillment", ErrMalformed, len(rest))
	}
	if tag != tagPreimageChoice {
		if tag >= 0xa1 && tag <= 0xa4 {
			return Fulfillment{}, fmt.Errorf("%w: fulfillment tag %#x", ErrUnsupportedType, tag)
		}
		return Fulfillment{}, fmt.Errorf("%w: fulfillment tag %#x", ErrMalformed, tag)
	}
	tag, pre, rest, err := readDER(body)
	if err != nil {
		return Fulfillment{}, err
	}
	if tag != tagField0 || len(rest) != 0 {
		return Fulfillment{}, fmt.Errorf("%w: preimage field", ErrMalformed)
	}
	if len(pre) > MaxCost {
		return Fulfillment{}, fmt.Errorf("%w: preimage of %d octets exceeds %d", ErrMalformed, len(pre), MaxCost)
	}
	return Fulfillment{Preimage: bytes.Clone(pre)}, nil
}

// String returns the fulfillment's DER encoding in unpadded base64url, the
// fulfillment "URI" of five-bells-condition 5 (oCKAI… for 32 octets).
func (f Fulfillment) String() string {
	b, err := f.MarshalBinary()
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// PreimageString returns the raw preimage in unpadded base64url, the form
// ILPv4 fulfillments travel in outside packets.
func (f Fulfillment) PreimageString() string {
	return base64.RawURLEncoding.EncodeToString(f.Preimage)
}

// ParseFulfillment parses base64url (padded or not) of a DER fulfillment.
func ParseFulfillment(s string) (Fulfillment, error) {
	b, err := decodeB64URL(s)
	if err != nil {
		return Fulfillment{}, fmt.Errorf("%w: fulfillment is not base64url: %w", ErrMalformed, err)
	}
	return ParseFulfillmentBinary(b)
}

// ParsePreimage parses base64url (padded or not) of a raw preimage, as in
// an SPSP payment result. want is the expected preimage length (32 for
// ILPv4); 0 accepts any length up to MaxCost.
func ParsePreimage(s string, want int) (Fulfillment, error) {
	b, err := decodeB64URL(s)
	if err != nil {
		return Fulfillment{}, fmt.Errorf("%w: preimage is not base64url: %w", ErrMalformed, err)
	}
	if (want > 0 && len(b) != want) || len(b) > MaxCost {
		return Fulfillment{}, fmt.Errorf("%w: preimage of %d octets, want %d", ErrMalformed, len(b), want)
	}
	return Fulfillment{Preimage: b}, nil
}

func appendDERHeader(dst []byte, tag byte, n int) []byte {
	dst = append(dst, tag)
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n <= 0xff:
		return append(dst, 0x81, byte(n))
	case n <= 0xffff:
		return append(dst, 0x82, byte(n>>8), byte(n))
	default:
		return append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}

// readDER reads one DER element with a single-octet tag and a definite,
// minimal length of at most three octets.
func readDER(b []byte) (tag byte, body, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, fmt.Errorf("%w: truncated DER element", ErrMalformed)
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, fmt.Errorf("%w: multi-octet DER tag", ErrMalformed)
	}
	l := int(b[1])
	b = b[2:]
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 3 || len(b) < k {
			return 0, nil, nil, fmt.Errorf("%w: DER length", ErrMalformed)
		}
		if b[0] == 0 {
			return 0, nil, nil, fmt.Errorf("%w: DER length not minimal", ErrMalformed)
		}
		l = 0
		for _, x := range b[:k] {
			l = l<<8 | int(x)
		}
		if l < 0x80 {
			return 0, nil, nil, fmt.Errorf("%w: DER length not minimal", ErrMalformed)
		}
		b = b[k:]
	}
	if l > len(b) {
		return 0, nil, nil, fmt.Errorf("%w: truncated DER element", ErrMalformed)
	}
	return tag, b[:l], b[l:], nil
}
