package qr

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Limits in characters, from the EMVCo merchant-presented data object table.
const (
	// MaxValueLength is the longest value of any object: the length is two
	// digits.
	MaxValueLength = 99
	// MaxGUIDLength is the longest GUID of a merchant account template.
	MaxGUIDLength = 32
	// MaxMerchantNameLength is the longest merchant name (59).
	MaxMerchantNameLength = 25
	// MaxCityLength is the longest merchant city (60).
	MaxCityLength = 15
	// MaxLabelLength is the longest reference label (62.05) and terminal
	// label (62.07).
	MaxLabelLength = 25
	// MaxAmountLength is the longest transaction amount (54), decimal point
	// included.
	MaxAmountLength = 13
)

// Encode builds the payload string of p in the layout of p.Scheme.
//
// Values are checked, never truncated: a value longer than its field allows
// gives a *FieldError wrapping ErrTooLong, a value of the wrong form one
// wrapping ErrInvalid, a field the scheme requires that is empty one wrapping
// ErrMissing. Lengths count characters, so "Café" is 4.
//
// SchemeEMVCo and SchemePseudoEMVCo write 00, 01, the account templates, 52,
// 53, 54, 58, 59, 60 and 62 (each when set) and end with the CRC 63;
// SchemeElectrumMinimal writes 00 and the account templates only, no CRC,
// and ignores the other fields of p.
func Encode(p *Payload) (string, error) {
	var buf [256]byte
	b, err := AppendEncode(buf[:0], p)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// AppendEncode appends the payload of p to dst and returns the extended
// buffer; it is the core of Encode and does not allocate when dst has room.
// On error dst is returned unchanged.
func AppendEncode(dst []byte, p *Payload) ([]byte, error) {
	if p == nil {
		return dst, &FieldError{Field: "Payload", Msg: "nil payload", Err: ErrMissing}
	}
	if !p.Scheme.Valid() {
		return dst, &FieldError{Field: "Scheme", Msg: fmt.Sprintf("%q is not %s, %s or %s", p.Scheme, SchemeEMVCo, SchemePseudoEMVCo, SchemeElectrumMinimal), Err: ErrScheme}
	}
	var tags [lastAccountTag - firstAccountTag + 1]int
	if err := assignTags(p.Accounts, &tags); err != nil {
		return dst, err
	}
	for i := range p.Accounts {
		if err := checkAccount(p.Accounts, i, tags[i]); err != nil {
			return dst, err
		}
	}
	full := p.Scheme != SchemeElectrumMinimal
	var amount [MaxAmountLength]byte
	amountLen := 0
	if full {
		var err error
		if amountLen, err = checkFields(p, &amount); err != nil {
			return dst, err
		}
	}
	if p.Scheme != SchemePseudoEMVCo && len(p.Accounts) == 0 {
		return dst, &FieldError{Field: "Accounts", Tag: "26-51", Msg: fmt.Sprintf("%s needs at least one merchant account template", p.Scheme), Err: ErrMissing}
	}
	if p.Scheme == SchemeEMVCo {
		if err := checkMandatory(p); err != nil {
			return dst, err
		}
	}

	start := len(dst)
	dst = append(dst, "000201"...)
	if full {
		if p.Static {
			dst = append(dst, "010211"...)
		} else {
			dst = append(dst, "010212"...)
		}
	}
	for i := range p.Accounts {
		dst = appendAccount(dst, &p.Accounts[i], tags[i])
	}
	if !full {
		return dst, nil
	}
	dst = appendOptional(dst, "52", p.MCC)
	dst = appendOptional(dst, "53", p.Currency)
	if p.HasAmount {
		dst = appendHeader(dst, "54", amountLen)
		dst = append(dst, amount[:amountLen]...)
	}
	dst = appendOptional(dst, "58", p.Country)
	dst = appendOptional(dst, "59", p.MerchantName)
	dst = appendOptional(dst, "60", p.City)
	if p.ReferenceLabel != "" || p.TerminalLabel != "" {
		n := objectLen(p.ReferenceLabel) + objectLen(p.TerminalLabel)
		dst = appendHeader(dst, "62", n)
		dst = appendOptional(dst, "05", p.ReferenceLabel)
		dst = appendOptional(dst, "07", p.TerminalLabel)
	}
	dst = append(dst, "6304"...)
	return appendCRCHex(dst, crcUpdate(0xFFFF, dst[start:])), nil
}

// assignTags gives every account its template tag: explicit tags are
// checked first, then each Tag 0 takes the lowest tag still free.
func assignTags(accounts []MerchantAccount, tags *[lastAccountTag - firstAccountTag + 1]int) error {
	if len(accounts) > len(tags) {
		return &FieldError{Field: "Accounts", Tag: "26-51", Msg: fmt.Sprintf("%d templates, at most %d fit in tags 26–51", len(accounts), len(tags)), Err: ErrTooLong}
	}
	var used uint64
	for i, a := range accounts {
		if a.Tag == 0 {
			continue
		}
		if a.Tag < firstAccountTag || a.Tag > lastAccountTag {
			return &FieldError{Field: fmt.Sprintf("Accounts[%d].Tag", i), Msg: fmt.Sprintf("tag %d is outside 26–51", a.Tag), Err: ErrInvalid}
		}
		if used&(1<<a.Tag) != 0 {
			return &FieldError{Field: fmt.Sprintf("Accounts[%d].Tag", i), Tag: strconv.Itoa(a.Tag), Msg: "two templates use this tag", Err: ErrDuplicate}
		}
		used |= 1 << a.Tag
		tags[i] = a.Tag
	}
	next := firstAccountTag
	for i, a := range accounts {
		if a.Tag != 0 {
			continue
		}
		for used&(1<<next) != 0 {
			next++
		}
		used |= 1 << next
		tags[i] = next
	}
	return nil
}

func checkAccount(accounts []MerchantAccount, i, tag int) error {
	a := &accounts[i]
	tagName := strconv.Itoa(tag)
	if a.GUID == "" {
		return &FieldError{Field: fmt.Sprintf("Accounts[%d].GUID", i), Tag: tagName + ".00", Msg: "a merchant account template starts with its provider's GUID", Err: ErrMissing}
	}
	if err := checkText(a.GUID, MaxGUIDLength, func() (string, string) {
		return fmt.Sprintf("Accounts[%d].GUID", i), tagName + ".00"
	}); err != nil {
		return err
	}
	var seen [2]uint64
	for j, f := range a.Fields {
		name := func() (string, string) {
			return fmt.Sprintf("Accounts[%d].Fields[%d]", i, j), tagName + "." + f.Tag
		}
		n := tagNum(f.Tag)
		if n < 1 {
			field, _ := name()
			return &FieldError{Field: field, Tag: tagName, Msg: fmt.Sprintf("sub-tag %q is not two digits from 01 to 99 (00 is the GUID)", f.Tag), Err: ErrInvalid}
		}
		if seen[n/64]&(1<<(n%64)) != 0 {
			field, path := name()
			return &FieldError{Field: field, Tag: path, Msg: "sub-tag appears twice", Err: ErrDuplicate}
		}
		seen[n/64] |= 1 << (n % 64)
		if f.Value == "" {
			field, path := name()
			return &FieldError{Field: field, Tag: path, Msg: "a value has at least one character", Err: ErrMissing}
		}
		if err := checkText(f.Value, MaxValueLength, name); err != nil {
			return err
		}
	}
	if n := accountLen(a); n > MaxValueLength {
		return &FieldError{Field: fmt.Sprintf("Accounts[%d]", i), Tag: tagName, Msg: fmt.Sprintf("the template is %d characters, at most %d", n, MaxValueLength), Err: ErrTooLong}
	}
	return nil
}

// checkFields checks the fields after the account templates and writes the
// decimal amount into amount, returning its length.
func checkFields(p *Payload, amount *[MaxAmountLength]byte) (int, error) {
	if err := checkDigits(p.MCC, 4, "MCC", "52"); err != nil {
		return 0, err
	}
	if err := checkDigits(p.Currency, 3, "Currency", "53"); err != nil {
		return 0, err
	}
	n := 0
	if p.HasAmount {
		if p.Currency == "" {
			return 0, &FieldError{Field: "Currency", Tag: "53", Msg: "an amount needs its currency", Err: ErrMissing}
		}
		exp, ok := CurrencyExponent(p.Currency)
		if !ok {
			return 0, &FieldError{Field: "Currency", Tag: "53", Msg: fmt.Sprintf("minor unit of %s is not known, so the amount cannot be written", p.Currency), Err: ErrUnknownCurrency}
		}
		if p.Amount < 0 {
			return 0, &FieldError{Field: "Amount", Tag: "54", Msg: fmt.Sprintf("%d is negative", p.Amount), Err: ErrInvalid}
		}
		var ok2 bool
		if n, ok2 = formatAmount(amount, p.Amount, exp); !ok2 {
			return 0, &FieldError{Field: "Amount", Tag: "54", Msg: fmt.Sprintf("%d minor units need more than %d characters", p.Amount, MaxAmountLength), Err: ErrTooLong}
		}
	} else if p.Amount != 0 {
		return 0, &FieldError{Field: "HasAmount", Tag: "54", Msg: fmt.Sprintf("Amount is %d but HasAmount is false", p.Amount), Err: ErrInvalid}
	}
	if err := checkCountry(p.Country); err != nil {
		return 0, err
	}
	for _, f := range [...]struct {
		v, field, tag string
		max           int
	}{
		{p.MerchantName, "MerchantName", "59", MaxMerchantNameLength},
		{p.City, "City", "60", MaxCityLength},
		{p.ReferenceLabel, "ReferenceLabel", "62.05", MaxLabelLength},
		{p.TerminalLabel, "TerminalLabel", "62.07", MaxLabelLength},
	} {
		if err := checkText(f.v, f.max, func() (string, string) { return f.field, f.tag }); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func checkMandatory(p *Payload) error {
	for _, f := range [...]struct{ v, field, tag string }{
		{p.MCC, "MCC", "52"},
		{p.Currency, "Currency", "53"},
		{p.Country, "Country", "58"},
		{p.MerchantName, "MerchantName", "59"},
		{p.City, "City", "60"},
	} {
		if f.v == "" {
			return &FieldError{Field: f.field, Tag: f.tag, Msg: fmt.Sprintf("%s requires it", SchemeEMVCo), Err: ErrMissing}
		}
	}
	return nil
}

// checkText checks that v is UTF-8 of at most max characters; name is only
// called to build an error, keeping the success path free of allocations.
func checkText(v string, max int, name func() (field, tag string)) error {
	if !utf8.ValidString(v) {
		field, tag := name()
		return &FieldError{Field: field, Tag: tag, Msg: fmt.Sprintf("%q is not UTF-8", v), Err: ErrInvalid}
	}
	if n := utf8.RuneCountInString(v); n > max {
		field, tag := name()
		return &FieldError{Field: field, Tag: tag, Msg: fmt.Sprintf("%d characters, at most %d", n, max), Err: ErrTooLong}
	}
	return nil
}

// checkDigits checks that a non-empty v is exactly n ASCII digits.
func checkDigits(v string, n int, field, tag string) error {
	if v == "" {
		return nil
	}
	if c := utf8.RuneCountInString(v); c > n {
		return &FieldError{Field: field, Tag: tag, Msg: fmt.Sprintf("%q is %d characters, exactly %d digits", v, c, n), Err: ErrTooLong}
	}
	if !allDigits(v) || len(v) != n {
		return &FieldError{Field: field, Tag: tag, Msg: fmt.Sprintf("%q is not %d digits", v, n), Err: ErrInvalid}
	}
	return nil
}

func checkCountry(v string) error {
	if v == "" {
		return nil
	}
	if c := utf8.RuneCountInString(v); c > 2 {
		return &FieldError{Field: "Country", Tag: "58", Msg: fmt.Sprintf("%q is %d characters, an ISO 3166-1 alpha-2 code is 2", v, c), Err: ErrTooLong}
	}
	if len(v) != 2 || v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z' {
		return &FieldError{Field: "Country", Tag: "58", Msg: fmt.Sprintf("%q is not two upper-case letters (ISO 3166-1 alpha-2)", v), Err: ErrInvalid}
	}
	return nil
}

func allDigits(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// formatAmount writes minor units as a decimal with exp fraction digits
// (79995, 2 → "799.95"; 5, 2 → "0.05"; 1200, 0 → "1200").
func formatAmount(dst *[MaxAmountLength]byte, minor int64, exp int) (int, bool) {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], minor, 10)
	for len(d) <= exp {
		// Pad so there is at least one integer digit: 5 → "005" → "0.05".
		d = append(d, 0)
		copy(d[1:], d)
		d[0] = '0'
	}
	n := len(d)
	if exp > 0 {
		n++
	}
	if n > MaxAmountLength {
		return 0, false
	}
	intLen := len(d) - exp
	copy(dst[:], d[:intLen])
	if exp > 0 {
		dst[intLen] = '.'
		copy(dst[intLen+1:], d[intLen:])
	}
	return n, true
}

func accountLen(a *MerchantAccount) int {
	n := objectLen(a.GUID)
	for _, f := range a.Fields {
		n += objectLen(f.Value)
	}
	return n
}

// objectLen is the number of characters an object with value v takes, 0 for
// an empty (absent) value.
func objectLen(v string) int {
	if v == "" {
		return 0
	}
	return 4 + utf8.RuneCountInString(v)
}

func appendAccount(dst []byte, a *MerchantAccount, tag int) []byte {
	dst = append(dst, byte('0'+tag/10), byte('0'+tag%10))
	n := accountLen(a)
	dst = append(dst, byte('0'+n/10), byte('0'+n%10))
	dst = appendOptional(dst, "00", a.GUID)
	for _, f := range a.Fields {
		dst = appendOptional(dst, f.Tag, f.Value)
	}
	return dst
}

func appendHeader(dst []byte, tag string, n int) []byte {
	return append(dst, tag[0], tag[1], byte('0'+n/10), byte('0'+n%10))
}

// appendOptional appends the object, or nothing for an empty value.
func appendOptional(dst []byte, tag, v string) []byte {
	if v == "" {
		return dst
	}
	dst = appendHeader(dst, tag, utf8.RuneCountInString(v))
	return append(dst, v...)
}

// EncodeObjects writes objects as a payload, for tools that edit a decoded
// Document. A template's value is rebuilt from its Children when it has
// any; a last top-level object with tag 63 gets a freshly computed CRC.
// Only the TLV rules are checked (two-digit tags, values of 1 to 99
// characters); Decode tells whether the result is a valid payload.
func EncodeObjects(objs []Object) (string, error) {
	b, err := appendObjects(nil, objs, "", true)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func appendObjects(dst []byte, objs []Object, path string, top bool) ([]byte, error) {
	start := len(dst)
	for i, o := range objs {
		if tagNum(o.Tag) < 0 {
			return nil, &FieldError{Field: fmt.Sprintf("%sObjects[%d]", path, i), Msg: fmt.Sprintf("tag %q is not two digits", o.Tag), Err: ErrInvalid}
		}
		if top && o.Tag == tagCRC && i == len(objs)-1 {
			dst = append(dst, "6304"...)
			dst = appendCRCHex(dst, crcUpdate(0xFFFF, dst[start:]))
			continue
		}
		h := len(dst)
		dst = append(dst, o.Tag[0], o.Tag[1], '0', '0')
		if o.Children != nil {
			var err error
			if dst, err = appendObjects(dst, o.Children, fmt.Sprintf("%sObjects[%d].", path, i), false); err != nil {
				return nil, err
			}
		} else {
			dst = append(dst, o.Value...)
		}
		n := utf8.RuneCount(dst[h+4:])
		if n < 1 || n > MaxValueLength || !utf8.Valid(dst[h+4:]) {
			return nil, &FieldError{Field: fmt.Sprintf("%sObjects[%d]", path, i), Tag: o.Tag, Msg: fmt.Sprintf("value of %d characters, 1 to %d valid UTF-8 allowed", n, MaxValueLength), Err: ErrInvalid}
		}
		dst[h+2], dst[h+3] = byte('0'+n/10), byte('0'+n%10)
	}
	return dst, nil
}
