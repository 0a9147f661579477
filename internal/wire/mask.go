package wire

import "strings"

// sensitive names the JSON keys whose string values never reach a log or a
// trace in clear, with how much of the value may stay visible.
var sensitive = map[string]func(string) string{
	"partnerPaymentToken": keepLast4,
	"cardNumber":          MaskPAN,
	"password":            func(string) string { return "****" },
	"secret":              func(string) string { return "****" },
	"sharedSecret":        func(string) string { return "****" },
}

func keepLast4(v string) string {
	if len(v) <= 8 {
		return "****"
	}
	return "****" + v[len(v)-4:]
}

// MaskPAN returns a card number with all but its first six and last four
// digits masked, as PCI DSS allows to be shown; a value too short to be a
// card number is masked whole.
func MaskPAN(v string) string {
	if len(v) < 13 {
		return "****"
	}
	b := []byte(v)
	for i := 6; i < len(b)-4; i++ {
		b[i] = '*'
	}
	return string(b)
}

// Mask returns body with the values of sensitive keys (partnerPaymentToken,
// cardNumber, password, secret, sharedSecret) masked, at any depth. It is a
// single pass over the bytes, so it is cheap enough for every hop of every
// payment. Bodies that are not valid JSON are masked as far as they can be
// read; a string value cut off by the end of the body is masked whole when
// its key is sensitive. The input is not modified.
func Mask(body []byte) []byte {
	var out []byte // allocated only when something is masked
	last := 0      // bytes of body before last are already in out
	i := 0
	for i < len(body) {
		if body[i] != '"' {
			i++
			continue
		}
		keyStart := i
		keyEnd := stringEnd(body, i)
		if keyEnd < 0 {
			break
		}
		j := skipSpace(body, keyEnd)
		if j >= len(body) || body[j] != ':' {
			i = keyEnd // a string value, not a key
			continue
		}
		maskFn, ok := sensitive[string(body[keyStart+1:keyEnd-1])]
		j = skipSpace(body, j+1)
		if !ok || j >= len(body) || body[j] != '"' {
			i = j
			continue
		}
		valEnd := stringEnd(body, j)
		truncated := valEnd < 0
		if truncated {
			valEnd = len(body)
		}
		inner := string(body[j+1 : max(valEnd-1, j+1)])
		masked := "****"
		if !truncated && strings.IndexByte(inner, '\\') < 0 {
			masked = maskFn(inner)
		}
		out = append(out, body[last:j+1]...)
		out = append(out, masked...)
		out = append(out, '"')
		last = valEnd
		i = valEnd
	}
	if out == nil {
		return body
	}
	return append(out, body[last:]...)
}

// stringEnd returns the index just past the JSON string starting at b[i]
// (which is a quote), or -1 when the string is not terminated.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
