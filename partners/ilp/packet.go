package ilp

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/qrswitch/qrswitch/partners/ilp/internal/oer"
)

// Type is an ILPv4 packet type, the first octet of every packet.
type Type uint8

// The ILPv4 packet types (IL-RFC 27).
const (
	TypePrepare Type = 12
	TypeFulfill Type = 13
	TypeReject  Type = 14
)

// String names the type.
func (t Type) String() string {
	switch t {
	case TypePrepare:
		return "Prepare"
	case TypeFulfill:
		return "Fulfill"
	case TypeReject:
		return "Reject"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Size limits of IL-RFC 27's ASN.1 definitions.
const (
	MaxDataLength    = 32767
	MaxMessageLength = 8191
	// TimestampLayout is the wire form of expiresAt: UTC
	// YYYYMMDDHHmmSSfff, 17 digits, without the separators, decimal point
	// and "Z" of ISO 8601 / GeneralizedTime (InterledgerTypes.asn).
	TimestampLayout = "20060102150405.000"
	timestampLength = 17
)

// Errors returned by the codec.
var (
	// ErrInvalidPacket means the bytes are not a well-formed ILPv4 packet.
	ErrInvalidPacket = errors.New("ilp: invalid packet")
	// ErrUnexpectedType means the packet is well-formed but of another type
	// than the one asked for.
	ErrUnexpectedType = errors.New("ilp: unexpected packet type")
)

// Packet is a Prepare, a Fulfill or a Reject.
type Packet interface {
	// Type reports the packet type.
	Type() Type
	// AppendBinary appends the OER encoding to dst.
	AppendBinary(dst []byte) ([]byte, error)
	// MarshalBinary returns the OER encoding.
	MarshalBinary() ([]byte, error)
}

// Reply is what a Prepare gets back: a *Fulfill or a *Reject.
type Reply interface {
	Packet
	isReply()
}

// Prepare asks the next hop to forward or accept Amount until ExpiresAt,
// against the SHA-256 preimage of ExecutionCondition.
type Prepare struct {
	// Amount is in the smallest unit of the link's asset.
	Amount uint64
	// ExpiresAt is encoded in UTC with millisecond precision; finer
	// precision is truncated.
	ExpiresAt time.Time
	// ExecutionCondition is the SHA-256 digest of the fulfillment.
	ExecutionCondition [32]byte
	// Destination is the receiver's ILP address.
	Destination Address
	// Data is end-to-end data, at most 32767 octets.
	Data []byte
}

// Fulfill executes a Prepare by revealing the preimage of its condition.
type Fulfill struct {
	Fulfillment [32]byte
	// Data is end-to-end data, at most 32767 octets.
	Data []byte
}

// Reject declines a Prepare.
type Reject struct {
	Code ErrorCode
	// TriggeredBy is the address of the node that rejected; it may be empty.
	TriggeredBy Address
	// Message is for debugging, at most 8191 octets of UTF-8.
	Message string
	// Data is end-to-end data, at most 32767 octets.
	Data []byte
}

// Type reports TypePrepare.
func (*Prepare) Type() Type { return TypePrepare }

// Type reports TypeFulfill.
func (*Fulfill) Type() Type { return TypeFulfill }

// Type reports TypeReject.
func (*Reject) Type() Type { return TypeReject }

func (*Fulfill) isReply() {}
func (*Reject) isReply()  {}

// Error makes a Reject usable as an error value by senders.
func (r *Reject) Error() string {
	if r.Message == "" {
		return "ilp: rejected " + r.Code.String()
	}
	return fmt.Sprintf("ilp: rejected %s: %s", r.Code, r.Message)
}

// FormatTimestamp returns t in the 17-digit wire form.
func FormatTimestamp(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("%w: expiresAt year %d outside 0000-9999", ErrInvalidPacket, y)
	}
	s := t.Format(TimestampLayout)
	return s[:14] + s[15:], nil
}

// ParseTimestamp reads the 17-digit wire form.
func ParseTimestamp(s string) (time.Time, error) {
	if len(s) != timestampLength {
		return time.Time{}, fmt.Errorf("%w: timestamp %q is not 17 digits", ErrInvalidPacket, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, fmt.Errorf("%w: timestamp %q is not 17 digits", ErrInvalidPacket, s)
		}
	}
	t, err := time.Parse(TimestampLayout, s[:14]+"."+s[14:])
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %q: %w", ErrInvalidPacket, s, err)
	}
	return t, nil
}

func envelope(dst []byte, t Type, contentLen int) []byte {
	dst = append(dst, byte(t))
	return oer.AppendLengthPrefix(dst, contentLen)
}

// AppendBinary appends the OER encoding of p to dst.
func (p *Prepare) AppendBinary(dst []byte) ([]byte, error) {
	if !p.Destination.Valid() {
		return dst, fmt.Errorf("%w: destination %q", ErrInvalidAddress, truncate(string(p.Destination)))
	}
	if len(p.Data) > MaxDataLength {
		return dst, fmt.Errorf("%w: data of %d octets exceeds %d", ErrInvalidPacket, len(p.Data), MaxDataLength)
	}
	ts, err := FormatTimestamp(p.ExpiresAt)
	if err != nil {
		return dst, err
	}
	n := 8 + timestampLength + 32 +
		oer.LengthPrefixSize(len(p.Destination)) + len(p.Destination) +
		oer.LengthPrefixSize(len(p.Data)) + len(p.Data)
	dst = envelope(dst, TypePrepare, n)
	dst = oer.AppendUint64(dst, p.Amount)
	dst = append(dst, ts...)
	dst = append(dst, p.ExecutionCondition[:]...)
	dst = oer.AppendVarOctetString(dst, []byte(p.Destination))
	return oer.AppendVarOctetString(dst, p.Data), nil
}

// MarshalBinary returns the OER encoding of p.
func (p *Prepare) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(make([]byte, 0, 64+len(p.Destination)+len(p.Data)))
}

// AppendBinary appends the OER encoding of f to dst.
func (f *Fulfill) AppendBinary(dst []byte) ([]byte, error) {
	if len(f.Data) > MaxDataLength {
		return dst, fmt.Errorf("%w: data of %d octets exceeds %d", ErrInvalidPacket, len(f.Data), MaxDataLength)
	}
	dst = envelope(dst, TypeFulfill, 32+oer.LengthPrefixSize(len(f.Data))+len(f.Data))
	dst = append(dst, f.Fulfillment[:]...)
	return oer.AppendVarOctetString(dst, f.Data), nil
}

// MarshalBinary returns the OER encoding of f.
func (f *Fulfill) MarshalBinary() ([]byte, error) {
	return f.AppendBinary(make([]byte, 0, 40+len(f.Data)))
}

// AppendBinary appends the OER encoding of r to dst.
func (r *Reject) AppendBinary(dst []byte) ([]byte, error) {
	if !r.Code.Valid() {
		return dst, fmt.Errorf("%w: error code %q is not F, T or R and two digits", ErrInvalidPacket, string(r.Code))
	}
	if r.TriggeredBy != "" && !r.TriggeredBy.Valid() {
		return dst, fmt.Errorf("%w: triggeredBy %q", ErrInvalidAddress, truncate(string(r.TriggeredBy)))
	}
	if len(r.Message) > MaxMessageLength || !utf8.ValidString(r.Message) {
		return dst, fmt.Errorf("%w: message is not UTF-8 of at most %d octets", ErrInvalidPacket, MaxMessageLength)
	}
	if len(r.Data) > MaxDataLength {
		return dst, fmt.Errorf("%w: data of %d octets exceeds %d", ErrInvalidPacket, len(r.Data), MaxDataLength)
	}
	n := 3 + oer.LengthPrefixSize(len(r.TriggeredBy)) + len(r.TriggeredBy) +
		oer.LengthPrefixSize(len(r.Message)) + len(r.Message) +
		oer.LengthPrefixSize(len(r.Data)) + len(r.Data)
	dst = envelope(dst, TypeReject, n)
	dst = append(dst, r.Code...)
	dst = oer.AppendVarOctetString(dst, []byte(r.TriggeredBy))
	dst = oer.AppendVarOctetString(dst, []byte(r.Message))
	return oer.AppendVarOctetString(dst, r.Data), nil
}

// MarshalBinary returns the OER encoding of r.
func (r *Reject) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, 16+len(r.TriggeredBy)+len(r.Message)+len(r.Data)))
}

// Decode reads one ILPv4 packet. The envelope must span b exactly and the
// contents must span the envelope exactly. Data fields alias b.
func Decode(b []byte) (Packet, error) {
	r := oer.NewReader(b)
	t, err := r.Uint8()
	if err != nil {
		return nil, invalid("type", err)
	}
	contents, err := r.VarOctetString()
	if err != nil {
		return nil, invalid("envelope", err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d octets after the packet", ErrInvalidPacket, r.Len())
	}
	c := oer.NewReader(contents)
	var p Packet
	switch Type(t) {
	case TypePrepare:
		p, err = decodePrepare(c)
	case TypeFulfill:
		p, err = decodeFulfill(c)
	case TypeReject:
		p, err = decodeReject(c)
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrInvalidPacket, t)
	}
	if err != nil {
		return nil, err
	}
	if c.Len() != 0 {
		return nil, fmt.Errorf("%w: %d octets after the %s contents", ErrInvalidPacket, c.Len(), Type(t))
	}
	return p, nil
}

// DecodePrepare reads a Prepare; any other packet type is ErrUnexpectedType.
func DecodePrepare(b []byte) (*Prepare, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	pp, ok := p.(*Prepare)
	if !ok {
		return nil, fmt.Errorf("%w: got %s, want Prepare", ErrUnexpectedType, p.Type())
	}
	return pp, nil
}

// DecodeReply reads a Fulfill or a Reject.
func DecodeReply(b []byte) (Reply, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	r, ok := p.(Reply)
	if !ok {
		return nil, fmt.Errorf("%w: got %s, want Fulfill or Reject", ErrUnexpectedType, p.Type())
	}
	return r, nil
}

func invalid(field string, err error) error {
	return fmt.Errorf("%w: reading %s: %w", ErrInvalidPacket, field, err)
}

func decodePrepare(r *oer.Reader) (*Prepare, error) {
	var p Prepare
	var err error
	if p.Amount, err = r.Uint64(); err != nil {
		return nil, invalid("amount", err)
	}
	ts, err := r.Read(timestampLength)
	if err != nil {
		return nil, invalid("expiresAt", err)
	}
	if p.ExpiresAt, err = ParseTimestamp(string(ts)); err != nil {
		return nil, err
	}
	cond, err := r.Read(32)
	if err != nil {
		return nil, invalid("executionCondition", err)
	}
	copy(p.ExecutionCondition[:], cond)
	dest, err := r.VarOctetString()
	if err != nil {
		return nil, invalid("destination", err)
	}
	if p.Destination, err = ParseAddress(string(dest)); err != nil {
		return nil, fmt.Errorf("%w: destination: %w", ErrInvalidPacket, err)
	}
	if p.Data, err = readData(r); err != nil {
		return nil, err
	}
	return &p, nil
}

func readData(r *oer.Reader) ([]byte, error) {
	d, err := r.VarOctetString()
	if err != nil {
		return nil, invalid("data", err)
	}
	if len(d) > MaxDataLength {
		return nil, fmt.Errorf("%w: data of %d octets exceeds %d", ErrInvalidPacket, len(d), MaxDataLength)
	}
	return d, nil
}

func decodeFulfill(r *oer.Reader) (*Fulfill, error) {
	var f Fulfill
	ful, err := r.Read(32)
	if err != nil {
		return nil, invalid("fulfillment", err)
	}
	copy(f.Fulfillment[:], ful)
	if f.Data, err = readData(r); err != nil {
		return nil, err
	}
	return &f, nil
}

func decodeReject(r *oer.Reader) (*Reject, error) {
	var j Reject
	code, err := r.Read(3)
	if err != nil {
		return nil, invalid("code", err)
	}
	j.Code = ErrorCode(code)
	if !j.Code.Valid() {
		return nil, fmt.Errorf("%w: error code %q", ErrInvalidPacket, code)
	}
	tb, err := r.VarOctetString()
	if err != nil {
		return nil, invalid("triggeredBy", err)
	}
	if len(tb) > 0 {
		if j.TriggeredBy, err = ParseAddress(string(tb)); err != nil {
			return nil, fmt.Errorf("%w: triggeredBy: %w", ErrInvalidPacket, err)
		}
	}
	msg, err := r.VarOctetString()
	if err != nil {
		return nil, invalid("message", err)
	}
	if len(msg) > MaxMessageLength || !utf8.Valid(msg) {
		return nil, fmt.Errorf("%w: message is not UTF-8 of at most %d octets", ErrInvalidPacket, MaxMessageLength)
	}
	j.Message = string(msg)
	if j.Data, err = readData(r); err != nil {
		return nil, err
	}
	return &j, nil
}

// AmountTooLarge is the data of an F08 Reject (InterledgerErrorData.asn):
// the amount the rejecting connector received and the most it forwards,
// both in its own units.
type AmountTooLarge struct {
	Received uint64
	Maximum  uint64
}

// MarshalBinary returns the OER encoding of the F08 data.
func (a AmountTooLarge) MarshalBinary() ([]byte, error) {
	b := oer.AppendUint64(make([]byte, 0, 16), a.Received)
	return oer.AppendUint64(b, a.Maximum), nil
}

// ParseAmountTooLarge reads F08 data; extra octets after the two amounts
// are ignored so that future fields do not break senders.
func ParseAmountTooLarge(b []byte) (AmountTooLarge, error) {
	r := oer.NewReader(b)
	var a AmountTooLarge
	var err error
	if a.Received, err = r.Uint64(); err != nil {
		return a, invalid("receivedAmount", err)
	}
	if a.Maximum, err = r.Uint64(); err != nil {
		return a, invalid("maximumAmount", err)
	}
	return a, nil
}
