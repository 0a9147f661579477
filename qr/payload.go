package qr

import "fmt"

// Scheme picks the layout Encode writes; the values are the `scheme` of the
// Electrum interface's qrProperties.
type Scheme string

// The schemes of the Electrum interface.
const (
	// SchemeEMVCo is the full EMVCo merchant-presented layout: 00, 01, at
	// least one merchant account template, 52, 53, 58, 59, 60 and the CRC
	// (63) must all be present.
	SchemeEMVCo Scheme = "EMVCO_MERCHANT"
	// SchemePseudoEMVCo is the EMVCo layout with any of the mandatory fields
	// allowed to be missing; the CRC is still appended.
	SchemePseudoEMVCo Scheme = "PSEUDO_EMVCO_MERCHANT"
	// SchemeElectrumMinimal is 00 followed by the merchant account
	// templates only, without a CRC, as in the interface's example
	// 00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941.
	SchemeElectrumMinimal Scheme = "ELECTRUM_MERCHANT_MINIMAL"
)

// Valid reports whether s is one of the three known schemes.
func (s Scheme) Valid() bool {
	return s == SchemeEMVCo || s == SchemePseudoEMVCo || s == SchemeElectrumMinimal
}

// ElectrumProvider is the globally unique identifier (sub-tag 00) of the
// Electrum merchant account template, as in the interface's example.
const ElectrumProvider = "za.co.elec"

// Field is one primitive data object inside a template.
type Field struct {
	// Tag is the two-digit sub-tag, "01" to "99" in a merchant account
	// template (00 is the GUID and is set through MerchantAccount.GUID).
	Tag string `json:"tag"`
	// Value is 1 to 99 characters.
	Value string `json:"value"`
}

// MerchantAccount is a merchant account information template (tags 26–51):
// a provider's GUID and the provider's own fields. Several may sit in one
// code, one per rail.
type MerchantAccount struct {
	// Tag is the template's tag, 26 to 51; 0 means the lowest tag not taken
	// by another template of the payload.
	Tag int `json:"tag,omitempty"`
	// GUID identifies the provider (sub-tag 00), at most 32 characters,
	// e.g. ElectrumProvider or "br.gov.bcb.pix".
	GUID string `json:"guid"`
	// Fields are the provider's sub-tags 01 to 99, written in this order.
	Fields []Field `json:"fields,omitempty"`
}

// ElectrumAccount returns the Electrum template: GUID ElectrumProvider and
// the switch's tranId in sub-tag 01.
func ElectrumAccount(tranID string) MerchantAccount {
	return MerchantAccount{GUID: ElectrumProvider, Fields: []Field{{Tag: "01", Value: tranID}}}
}

// Field returns the value of the sub-tag and whether it is present.
func (a MerchantAccount) Field(tag string) (string, bool) {
	for _, f := range a.Fields {
		if f.Tag == tag {
			return f.Value, true
		}
	}
	return "", false
}

// Payload is the typed form of a merchant-presented payload: what the switch
// puts on a code. Fields the scheme does not carry are ignored by Encode;
// empty optional fields are left out.
type Payload struct {
	// Scheme picks the layout; required.
	Scheme Scheme `json:"scheme"`
	// Static writes point of initiation 01 = "11" (a reusable code); false
	// writes "12" (dynamic, one code per transaction), the switch's normal
	// case.
	Static bool `json:"static,omitempty"`
	// Accounts are the merchant account templates, written in this order.
	Accounts []MerchantAccount `json:"accounts,omitempty"`
	// MCC is the merchant category code (tag 52, the interface's
	// merchantType), exactly 4 digits.
	MCC string `json:"mcc,omitempty"`
	// Currency is the ISO 4217 numeric code (tag 53), exactly 3 digits,
	// e.g. "710" for ZAR.
	Currency string `json:"currency,omitempty"`
	// Amount is the transaction amount in minor units of Currency (R799.95
	// is 79995); written to tag 54 as a decimal only when HasAmount is set.
	Amount int64 `json:"amount,omitempty"`
	// HasAmount says whether Amount is present; a code without an amount
	// lets the customer enter it.
	HasAmount bool `json:"hasAmount,omitempty"`
	// Country is the ISO 3166-1 alpha-2 code of the merchant (tag 58).
	Country string `json:"country,omitempty"`
	// MerchantName is at most 25 characters (tag 59).
	MerchantName string `json:"merchantName,omitempty"`
	// City is the merchant city, at most 15 characters (tag 60).
	City string `json:"city,omitempty"`
	// ReferenceLabel is additional data 62.05, at most 25 characters.
	ReferenceLabel string `json:"referenceLabel,omitempty"`
	// TerminalLabel is additional data 62.07, at most 25 characters.
	TerminalLabel string `json:"terminalLabel,omitempty"`
}

// Payload returns the typed view of the document: the inverse of Encode, so
// that Decode(Encode(p)).Payload() gives p back (with Tag 0 accounts given
// their tags).
//
// The scheme is inferred: without a CRC SchemeElectrumMinimal; with a CRC
// and every field SchemeEMVCo requires (01 aside, which Encode always writes)
// SchemeEMVCo; otherwise SchemePseudoEMVCo. Objects the Payload type has no
// place for (merchant account information 02–25, tip and fees 55–57, postal
// code 61, additional data other than 05 and 07, the language template 64,
// unreserved templates 80–99) are left out: read them from Objects. Field
// limits are not checked here; Encode checks them.
//
// It fails with a *FieldError when a present field has no typed form: a
// point of initiation other than 11 or 12, or an amount that is not a
// decimal in the minor unit of a known currency.
func (d *Document) Payload() (*Payload, error) {
	p := &Payload{Accounts: d.Accounts()}
	for _, o := range d.Objects {
		switch o.Tag {
		case "01":
			switch o.Value {
			case "11":
				p.Static = true
			case "12":
			default:
				return nil, &FieldError{Field: "Static", Tag: "01", Msg: fmt.Sprintf("point of initiation %q is neither 11 (static) nor 12 (dynamic)", o.Value), Err: ErrInvalid}
			}
		case "52":
			p.MCC = o.Value
		case "53":
			p.Currency = o.Value
		case "58":
			p.Country = o.Value
		case "59":
			p.MerchantName = o.Value
		case "60":
			p.City = o.Value
		case "62":
			if c, ok := o.Child("05"); ok {
				p.ReferenceLabel = c.Value
			}
			if c, ok := o.Child("07"); ok {
				p.TerminalLabel = c.Value
			}
		}
	}
	if a, ok := d.Get("54"); ok {
		exp, known := CurrencyExponent(p.Currency)
		if !known {
			return nil, &FieldError{Field: "Currency", Tag: "53", Msg: fmt.Sprintf("amount %s is in currency %q, whose minor unit is not known", a.Value, p.Currency), Err: ErrUnknownCurrency}
		}
		minor, ok := parseAmount(a.Value, exp)
		if !ok {
			return nil, &FieldError{Field: "Amount", Tag: "54", Msg: fmt.Sprintf("%q is not a decimal of at most %d characters with at most %d fraction digits", a.Value, MaxAmountLength, exp), Err: ErrInvalid}
		}
		p.Amount, p.HasAmount = minor, true
	}
	switch {
	case !d.HasCRC():
		p.Scheme = SchemeElectrumMinimal
	case len(p.Accounts) > 0 && p.MCC != "" && p.Currency != "" && p.Country != "" && p.MerchantName != "" && p.City != "":
		p.Scheme = SchemeEMVCo
	default:
		p.Scheme = SchemePseudoEMVCo
	}
	return p, nil
}

// parseAmount reads an EMVCo amount ("799.95", "12", "12.") as minor units
// of a currency with exp fraction digits.
func parseAmount(v string, exp int) (int64, bool) {
	if v == "" || len(v) > MaxAmountLength {
		return 0, false
	}
	var minor int64
	i, intDigits := 0, 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		minor = minor*10 + int64(v[i]-'0')
		intDigits++
	}
	if intDigits == 0 {
		return 0, false
	}
	frac := 0
	if i < len(v) {
		if v[i] != '.' {
			return 0, false
		}
		for i++; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' || frac == exp {
				return 0, false
			}
			minor = minor*10 + int64(v[i]-'0')
			frac++
		}
	}
	for ; frac < exp; frac++ {
		minor *= 10
	}
	return minor, true
}
