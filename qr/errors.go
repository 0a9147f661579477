package qr

import (
	"errors"
	"fmt"
)

// Sentinels for malformed payloads. Decode returns them wrapped in a
// *SyntaxError that says where the problem is; test with errors.Is.
var (
	// ErrTag reports a tag that is not two decimal digits.
	ErrTag = errors.New("invalid tag")
	// ErrLength reports a length that is not two decimal digits, is zero,
	// or runs past the end of the payload or of its template.
	ErrLength = errors.New("invalid length")
	// ErrTrailing reports bytes at the end of a payload or template that
	// are too few to form an object (a tag and a length take 4).
	ErrTrailing = errors.New("trailing bytes")
	// ErrDuplicate reports a tag that appears twice at the same level (of
	// a payload, or of the templates given to Encode).
	ErrDuplicate = errors.New("duplicate tag")
	// ErrFormat reports a payload that does not start with the payload
	// format indicator 00 = "01".
	ErrFormat = errors.New("invalid payload format indicator")
	// ErrEncoding reports a payload that is not valid UTF-8.
	ErrEncoding = errors.New("invalid UTF-8")
	// ErrCRC reports a CRC (tag 63) that does not match the payload, is not
	// four hexadecimal digits, or is not the last object.
	ErrCRC = errors.New("invalid CRC")
	// ErrNoCRC reports a payload without a CRC that carries EMVCo fields
	// other than 00 and the merchant account templates 26–51; only the
	// Electrum-minimal form may omit the CRC.
	ErrNoCRC = errors.New("missing CRC")
	// ErrNoTranID reports a payload without an Electrum template or whose
	// Electrum template has no tranId (sub-tag 01).
	ErrNoTranID = errors.New("no Electrum tranId")
)

// Sentinels for fields that cannot be encoded. Encode returns them wrapped
// in a *FieldError naming the field; test with errors.Is.
var (
	// ErrMissing reports a field the scheme requires that is empty.
	ErrMissing = errors.New("missing")
	// ErrTooLong reports a value longer than its field allows. Values are
	// never truncated.
	ErrTooLong = errors.New("too long")
	// ErrInvalid reports a value of the wrong form: a non-digit MCC, a
	// negative amount, a tag out of range, invalid UTF-8.
	ErrInvalid = errors.New("invalid value")
	// ErrUnknownCurrency reports an amount in a currency whose minor unit
	// is not known, so it cannot be written as a decimal.
	ErrUnknownCurrency = errors.New("unknown currency")
	// ErrScheme reports a scheme that is not one of the three known ones.
	ErrScheme = errors.New("unknown scheme")
)

// SyntaxError describes where a payload is malformed. It unwraps to one of
// the decoding sentinels (ErrTag, ErrLength, ErrCRC, ...).
type SyntaxError struct {
	// Pos is the 0-based byte offset in the payload where the problem
	// starts (for a missing CRC, the length of the payload).
	Pos int
	// Msg says what is wrong, for a person.
	Msg string
	// Err is the sentinel the error unwraps to.
	Err error
}

// Error says what is wrong and at which byte.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("qr: %v at byte %d: %s", e.Err, e.Pos, e.Msg)
}

// Unwrap returns the sentinel, for errors.Is.
func (e *SyntaxError) Unwrap() error { return e.Err }

// FieldError describes a field that cannot be encoded (or, from
// Document.Payload, read into its typed form). It unwraps to one of the
// field sentinels (ErrMissing, ErrTooLong, ErrInvalid, ...).
type FieldError struct {
	// Field names the Payload field, e.g. "MerchantName" or
	// "Accounts[1].Fields[0]".
	Field string
	// Tag is the EMVCo tag path of the field, e.g. "59" or "26.01"; empty
	// when the field has no tag of its own (Scheme).
	Tag string
	// Msg says what is wrong, for a person.
	Msg string
	// Err is the sentinel the error unwraps to.
	Err error
}

// Error names the field and its tag and says what is wrong.
func (e *FieldError) Error() string {
	if e.Tag == "" {
		return fmt.Sprintf("qr: %s: %v: %s", e.Field, e.Err, e.Msg)
	}
	return fmt.Sprintf("qr: %s (tag %s): %v: %s", e.Field, e.Tag, e.Err, e.Msg)
}

// Unwrap returns the sentinel, for errors.Is.
func (e *FieldError) Unwrap() error { return e.Err }
