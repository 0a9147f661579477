package ilpinvoice

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/qrswitch/qrswitch/partners/ilp"
)

// ILP packets in a transfer's memo. The document's DFSPs put the ILPv1
// payment packet (type 1: amount, destination account, data) in a
// credit's memo.ilp; a DFSP of today would put an ILPv4 Prepare (type
// 12). Either names the invoice by its destination address.

const (
	typeILPv1Payment = 1
	typeILPv4Prepare = byte(ilp.TypePrepare)
)

var errPacket = errors.New("not an ILP payment packet")

// destinationOf reads the destination address of the ILP packet in a
// memo's "ilp" (base64url, padded or not; standard base64 also taken).
func destinationOf(memo string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(memo, "="))
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(memo); err != nil {
			return "", errPacket
		}
	}
	if len(raw) == 0 {
		return "", errPacket
	}
	switch raw[0] {
	case typeILPv4Prepare:
		p, err := ilp.DecodePrepare(raw)
		if err != nil {
			return "", err
		}
		return p.Destination.String(), nil
	case typeILPv1Payment:
		return v1Destination(raw)
	}
	return "", errPacket
}

// v1Destination parses an ILPv1 payment packet: type, an OER length
// prefix, then the amount (uint64) and the account (a variable-length
// octet string); data and extensions follow and are not needed.
func v1Destination(b []byte) (string, error) {
	b, ok := lengthPrefixed(b[1:])
	if !ok || len(b) < 8 {
		return "", errPacket
	}
	_ = binary.BigEndian.Uint64(b[:8])
	acct, ok := lengthPrefixed(b[8:])
	if !ok {
		return "", errPacket
	}
	if !v1Address(string(acct)) {
		return "", errPacket
	}
	return string(acct), nil
}

// v1Address reports whether s is shaped as an ILP address of the
// document's era: dot-separated segments of [A-Za-z0-9_~-], at least
// two, at most 1023 octets. Those DFSPs used allocation schemes
// ("levelone.") that RFC 15 no longer lists, so the scheme is not
// checked here; the ledger matches the address to an invoice anyway.
func v1Address(s string) bool {
	if len(s) == 0 || len(s) > 1023 {
		return false
	}
	segments := strings.Split(s, ".")
	if len(segments) < 2 {
		return false
	}
	for _, seg := range segments {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '~' || c == '-') {
				return false
			}
		}
	}
	return true
}

// lengthPrefixed returns the octets an OER length prefix at the start of
// b announces (short form below 128, long form up to 4 length octets).
func lengthPrefixed(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	n, rest := int(b[0]), b[1:]
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(rest) < k {
			return nil, false
		}
		n = 0
		for _, c := range rest[:k] {
			n = n<<8 | int(c)
		}
		rest = rest[k:]
	}
	if n > len(rest) {
		return nil, false
	}
	return rest[:n], true
}
