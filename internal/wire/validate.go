package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FieldError says which field of a message is wrong and why. Surfaces turn it
// into 400 FORMAT_ERROR.
type FieldError struct {
	Field  string // JSON path, such as "originator.terminalId"; empty for the body as a whole
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Decode reads one JSON message from body into v. Unknown fields are allowed
// (newer senders may add some); type mismatches, syntax errors and trailing
// data are FieldErrors naming the field where that is known.
func Decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &FieldError{Reason: "request body is empty"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &FieldError{Reason: "unexpected data after the JSON object"}
	}
	return nil
}

func jsonFieldError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := jsonPath(typeErr.Field)
		if field == "" {
			return &FieldError{Reason: "body must be a JSON object"}
		}
		return &FieldError{Field: field, Reason: fmt.Sprintf("must be a JSON %s", jsonKind(typeErr.Type.Kind().String()))}
	case errors.As(err, &syntaxErr):
		return &FieldError{Reason: fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Reason: "truncated JSON body"}
	default:
		return &FieldError{Reason: "malformed JSON: " + err.Error()}
	}
}

// jsonPath drops the Go names of embedded structs (Transaction, BasicAdvice)
// that encoding/json puts in a field path; every JSON name of the interface
// starts with a lower-case letter.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" && !unicode.IsUpper(rune(p[0])) {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ".")
}

func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "int64", "int", "int32", "float64", "uint8":
		return "number"
	case "bool":
		return "boolean"
	case "slice":
		return "array"
	default:
		return "object"
	}
}

// checker collects the first error of a validation walk.
type checker struct{ err *FieldError }

func (c *checker) fail(field, reason string) {
	if c.err == nil {
		c.err = &FieldError{Field: field, Reason: reason}
	}
}

func (c *checker) result() error {
	if c.err == nil {
		return nil
	}
	return c.err
}

func (c *checker) required(field, v string) bool {
	if v == "" {
		c.fail(field, "is required")
		return false
	}
	return true
}

func (c *checker) maxLen(field, v string, n int) {
	if utf8.RuneCountInString(v) > n {
		c.fail(field, fmt.Sprintf("must be at most %d characters", n))
	}
}

func (c *checker) exactLen(field, v string, n int) {
	if c.required(field, v) && utf8.RuneCountInString(v) != n {
		c.fail(field, fmt.Sprintf("must be exactly %d characters", n))
	}
}

func (c *checker) digits(field, v string, n int) {
	if !c.required(field, v) {
		return
	}
	if len(v) != n || strings.Trim(v, "0123456789") != "" {
		c.fail(field, fmt.Sprintf("must be %d digits", n))
	}
}

func (c *checker) uuid(field, v string) {
	if c.required(field, v) && !IsUUID(v) {
		c.fail(field, "must be a UUID (8-4-4-4-12 hexadecimal digits)")
	}
}

func (c *checker) time(field, v string) {
	if !c.required(field, v) {
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		c.fail(field, "must be an RFC 3339 date-time")
	}
}

// IsUUID reports whether s is a UUID in its canonical textual form. Any
// version is accepted: the interface allows v4 (random) and v3 (derived) ids.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func (c *checker) institution(field string, in *Institution, required bool) {
	if in == nil {
		if required {
			c.fail(field, "is required")
		}
		return
	}
	c.required(field+".id", in.ID)
	c.maxLen(field+".id", in.ID, 40)
	c.required(field+".name", in.Name)
	c.maxLen(field+".name", in.Name, 40)
}

func (c *checker) originator(o *Originator) {
	if o == nil {
		c.fail("originator", "is required")
		return
	}
	c.institution("originator.institution", &o.Institution, true)
	c.exactLen("originator.terminalId", o.TerminalID, 8)
	m := &o.Merchant
	c.digits("originator.merchant.merchantType", m.MerchantType, 4)
	c.exactLen("originator.merchant.merchantId", m.MerchantID, 15)
	n := &m.MerchantName
	c.required("originator.merchant.merchantName.name", n.Name)
	c.maxLen("originator.merchant.merchantName.name", n.Name, 23)
	c.required("originator.merchant.merchantName.city", n.City)
	c.maxLen("originator.merchant.merchantName.city", n.City, 13)
	c.maxLen("originator.merchant.merchantName.region", n.Region, 2)
	c.required("originator.merchant.merchantName.country", n.Country)
	c.maxLen("originator.merchant.merchantName.country", n.Country, 2)
	c.maxLen("originator.operatorId", o.OperatorID, 30)
	c.maxLen("originator.channelId", o.ChannelID, 50)
}

func (c *checker) ledger(field string, a *LedgerAmount, required bool) {
	if a == nil {
		if required {
			c.fail(field, "is required")
		}
		return
	}
	if a.Amount < 0 {
		c.fail(field+".amount", "must not be negative")
	}
	c.digits(field+".currency", a.Currency, 3)
	switch a.LedgerIndicator {
	case "", "DEBIT", "CREDIT":
	default:
		c.fail(field+".ledgerIndicator", "must be DEBIT or CREDIT")
	}
}

func (c *checker) amounts(field string, a *Amounts, requestRequired bool) {
	if a == nil {
		if requestRequired {
			c.fail(field, "is required")
		}
		return
	}
	c.ledger(field+".requestAmount", a.RequestAmount, requestRequired)
	c.ledger(field+".approvedAmount", a.ApprovedAmount, false)
	c.ledger(field+".feeAmount", a.FeeAmount, false)
	c.ledger(field+".balanceAmount", a.BalanceAmount, false)
	for k, v := range a.AdditionalAmounts {
		c.ledger(field+".additionalAmounts."+k, &v, true)
	}
}

func (c *checker) thirdParties(field string, ids []ThirdPartyIdentifier) {
	for i, id := range ids {
		c.required(fmt.Sprintf("%s[%d].institutionId", field, i), id.InstitutionID)
	}
}

func (c *checker) references(stan, rrn string) {
	c.maxLen("stan", stan, 12)
	c.maxLen("rrn", rrn, 40)
}

func (c *checker) tranID(v string) {
	if c.required("tranId", v) {
		c.maxLen("tranId", v, 64)
	}
}

// Validate checks a createQrCode request.
func (r *CreateQrCodeRequest) Validate() error {
	var c checker
	c.uuid("id", r.ID)
	c.time("time", r.Time)
	c.originator(r.Originator)
	c.institution("client", r.Client, true)
	c.thirdParties("thirdPartyIdentifiers", r.ThirdPartyIdentifiers)
	c.references(r.Stan, r.Rrn)
	c.amounts("amounts", r.Amounts, false)
	if p := r.QrProperties; p != nil {
		c.ledger("qrProperties.value", p.Value, false)
		if p.ExpiryDate != "" {
			c.time("qrProperties.expiryDate", p.ExpiryDate)
		}
		switch p.Scheme {
		case "", SchemeEMVCo, SchemePseudoEMVCo, SchemeElectrumMinimal:
		default:
			c.fail("qrProperties.scheme", "must be EMVCO_MERCHANT, PSEUDO_EMVCO_MERCHANT or ELECTRUM_MERCHANT_MINIMAL")
		}
	}
	return c.result()
}

// Validate checks a scan notification.
func (s *ScanNotification) Validate() error {
	var c checker
	c.uuid("id", s.ID)
	c.time("time", s.Time)
	c.institution("partner", s.Partner, true)
	c.institution("settlementEntity", s.SettlementEntity, false)
	c.institution("receiver", s.Receiver, false)
	c.thirdParties("thirdPartyIdentifiers", s.ThirdPartyIdentifiers)
	c.amounts("amounts", s.Amounts, false)
	c.tranID(s.TranID)
	c.maxLen("partnerPaymentToken", s.PartnerPaymentToken, 512)
	return c.result()
}

// Validate checks a payment request and normalises it for forwarding (a
// missing thirdPartyIdentifiers becomes an empty list, as the interface
// requires the field to be present).
func (r *PaymentRequest) Validate() error {
	var c checker
	r.Transaction.check(&c)
	c.amounts("amounts", r.Amounts, true)
	c.tranID(r.TranID)
	if r.ThirdPartyIdentifiers == nil {
		r.ThirdPartyIdentifiers = []ThirdPartyIdentifier{}
	}
	return c.result()
}

func (t *Transaction) check(c *checker) {
	c.uuid("id", t.ID)
	c.time("time", t.Time)
	c.originator(t.Originator)
	c.institution("client", t.Client, true)
	c.institution("settlementEntity", t.SettlementEntity, false)
	c.institution("receiver", t.Receiver, false)
	c.thirdParties("thirdPartyIdentifiers", t.ThirdPartyIdentifiers)
	c.references(t.Stan, t.Rrn)
}

// Validate checks a payment response from a partner. It is lenient about
// what the switch does not rely on, strict about what it passes on.
func (r *PaymentResponse) Validate() error {
	var c checker
	c.required("id", r.ID)
	c.amounts("amounts", r.Amounts, false)
	if r.Amounts == nil {
		c.fail("amounts", "is required")
	}
	if r.ThirdPartyIdentifiers == nil {
		r.ThirdPartyIdentifiers = []ThirdPartyIdentifier{}
	}
	return c.result()
}

func (a *BasicAdvice) check(c *checker) {
	c.uuid("id", a.ID)
	c.uuid("requestId", a.RequestID)
	c.time("time", a.Time)
	c.thirdParties("thirdPartyIdentifiers", a.ThirdPartyIdentifiers)
	c.references(a.Stan, a.Rrn)
	c.amounts("amounts", a.Amounts, false)
	c.maxLen("tranId", a.TranID, 64)
	c.institution("partner", a.Partner, false)
	if a.ThirdPartyIdentifiers == nil {
		a.ThirdPartyIdentifiers = []ThirdPartyIdentifier{}
	}
}

// Validate checks a payment confirmation.
func (a *PaymentConfirmation) Validate() error {
	var c checker
	a.check(&c)
	return c.result()
}

// Validate checks a payment reversal.
func (a *PaymentReversal) Validate() error {
	var c checker
	a.check(&c)
	switch a.ReversalReason {
	case ReasonTimeout, ReasonCancelled, ReasonResponseNotFinal:
	case "":
		c.fail("reversalReason", "is required")
	default:
		c.fail("reversalReason", "must be TIMEOUT, CANCELLED or RESPONSE_NOT_FINAL")
	}
	return c.result()
}

// Validate checks an error detail received from a partner.
func (e *ErrorDetail) Validate() error {
	var c checker
	c.required("errorType", e.ErrorType)
	if e.ErrorType != "" && !IsErrorType(e.ErrorType) {
		c.fail("errorType", "is not an error type of the interface")
	}
	c.required("errorMessage", e.ErrorMessage)
	return c.result()
}
