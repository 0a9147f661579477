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
	// digitRun matches 13 to 19 digits, single spaces or dashes allowed
	// between them: the shape of a card number (PAN). Any such run is
	// masked, Luhn-valid or not: in a panic message an over-masked number
	// costs nothing, a card number in clear is a PCI DSS breach.
	digitRun = regexp.MustCompile(`\b\d(?:[ -]?\d){12,18}\b`)
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
	return digitRun.ReplaceAllStringFunc(s, func(m string) string {
		digits := strings.NewReplacer(" ", "", "-", "").Replace(m)
		return wire.MaskPAN(digits)
	})
}
