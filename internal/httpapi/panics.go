package httpapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/qrswitch/qrswitch/internal/wire"
)

// A recovered panic value is whatever the code that panicked put in it: an
// error wrapping a partner's answer, a request body, a struct holding
// credentials. It reaches the log only through panicText, which masks what
// the rest of the switch masks (wire.Mask on JSON) and, because a panic
// message is free text, the same secrets written as text.

var (
	// authScheme matches the credentials of an Authorization value.
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic|digest|token)(\s+)[A-Za-z0-9\-._~+/]+=*`)
	// secretField matches a secret named in text: password=…, "token": "…",
	// Password:… (Go's %+v), secret: '…'. The value runs to the next
	// space, quote, separator or bracket.
	secretField = regexp.MustCompile(`(?i)((?:password|passwd|pwd|secret|token|api_?key|authorization|cardnumber)[A-Za-z_]*"?\s*[:=]\s*["']?)([^\s"',;&}\])]+)`)
)

// panicText renders a recovered panic value for the log with its secrets
// masked. Values that are neither errors, strings nor Stringers are encoded
// as JSON where they can be, so that a struct's sensitive fields meet
// wire.Mask by name.
func panicText(v any) string {
	var s string
	switch x := v.(type) {
	case error:
		s = x.Error()
	case string:
		s = x
	case fmt.Stringer:
		s = x.String()
	default:
		if b, err := json.Marshal(v); err == nil {
			s = string(b)
		} else {
			s = fmt.Sprintf("%+v", v)
		}
	}
	return maskText(s)
}

// maskText masks secrets in free text: JSON values of sensitive keys,
// Authorization credentials, secrets named as key and value, and anything
// shaped like a card number.
func maskText(s string) string {
	s = string(wire.Mask([]byte(s)))
	s = authScheme.ReplaceAllString(s, "$1$2****")
	s = secretField.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretField.FindStringSubmatch(m)
		if sub[2] == "****" || strings.HasPrefix(sub[2], "****") {
			return m
		}
		return sub[1] + "****"
	})
	return maskDigitRuns(s)
}

// maskDigitRuns masks every run of 13 or more digits (single spaces or
// dashes allowed between them), whatever is around it: the shape of a card
// number (PAN). A run of up to 19 digits keeps its first six and last four
// (wire.MaskPAN), a longer one — which may hold a PAN — is masked whole.
// Any such run is masked, Luhn-valid or not: in a panic message an
// over-masked number costs nothing, a card number in clear is a PCI DSS
// breach.
func maskDigitRuns(s string) string {
	var b strings.Builder
	last := 0 // s[:last] is in b
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		start, end, digits := i, i, 0
		for j := i; j < len(s); {
			if isDigit(s[j]) {
				digits++
				j++
				end = j
				continue
			}
			if (s[j] == ' ' || s[j] == '-') && j+1 < len(s) && isDigit(s[j+1]) {
				j++
				continue
			}
			break
		}
		i = end
		if digits < 13 {
			continue
		}
		run := make([]byte, 0, digits)
		for k := start; k < end; k++ {
			if isDigit(s[k]) {
				run = append(run, s[k])
			}
		}
		masked := strings.Repeat("*", digits)
		if digits <= 19 {
			masked = wire.MaskPAN(string(run))
		}
		b.WriteString(s[last:start])
		b.WriteString(masked)
		last = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
