package wire

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns a random (version 4) UUID in canonical form, for message ids
// the switch creates itself: error details, timeout reversals, tranIds.
func NewID() string {
	var u [16]byte
	rand.Read(u[:]) // never fails; see crypto/rand.Read
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// NewErrorID returns a random id for an ErrorDetail: 20 lower-case hex
// digits (80 random bits). The interface calls ErrorDetail.id a UUID but
// declares it at most 20 characters long (the v1.7.0 model's
// @Length(max = 20)), and clients generated from its Swagger document
// enforce the 20, so a canonical 36-character UUID would make them reject
// every error body.
func NewErrorID() string {
	var u [10]byte
	rand.Read(u[:]) // never fails; see crypto/rand.Read
	return hex.EncodeToString(u[:])
}

// NewErrorDetail builds an ErrorDetail with a fresh id. The message is cut to
// the interface's 40 characters at a character boundary; the full text
// belongs in DetailMessage.
func NewErrorDetail(errorType, message, originalID, tranID string) *ErrorDetail {
	return &ErrorDetail{
		ID:           NewErrorID(),
		OriginalID:   originalID,
		ErrorType:    errorType,
		ErrorMessage: ShortMessage(message),
		TranID:       tranID,
	}
}

// ShortMessage cuts s to MaxErrorMessage characters.
func ShortMessage(s string) string {
	n := 0
	for i := range s {
		if n == MaxErrorMessage {
			return s[:i]
		}
		n++
	}
	return s
}
