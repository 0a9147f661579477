package qr_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/qr"
)

// fullPayload is what the switch prints for a dynamic EMVCo code.
func fullPayload() *qr.Payload {
	return &qr.Payload{
		Scheme:         qr.SchemeEMVCo,
		Accounts:       []qr.MerchantAccount{qr.ElectrumAccount(electrumTranID)},
		MCC:            "5411",
		Currency:       "710",
		Amount:         79995,
		HasAmount:      true,
		Country:        "ZA",
		MerchantName:   "Corner Shop Rondebosch",
		City:           "Cape Town",
		ReferenceLabel: "INV-000123",
		TerminalLabel:  "POS00042",
	}
}

func TestEncodeSchemes(t *testing.T) {
	tests := []struct {
		name string
		p    *qr.Payload
		want string
	}{
		{
			name: "electrum minimal is the interface's example",
			p:    &qr.Payload{Scheme: qr.SchemeElectrumMinimal, Accounts: []qr.MerchantAccount{qr.ElectrumAccount(electrumTranID)}},
			want: electrumMinimal,
		},
		{
			name: "electrum minimal with two templates is the interface's example",
			p: &qr.Payload{Scheme: qr.SchemeElectrumMinimal, Accounts: []qr.MerchantAccount{
				qr.ElectrumAccount(electrumTranID),
				{GUID: "za.co.mp", Fields: []qr.Field{{Tag: "01", Value: "5169175130"}}},
			}},
			want: electrumTwoTemplates,
		},
		{
			name: "electrum minimal ignores the EMVCo fields",
			p: &qr.Payload{Scheme: qr.SchemeElectrumMinimal, Accounts: []qr.MerchantAccount{qr.ElectrumAccount(electrumTranID)},
				MCC: "5411", Currency: "710", Amount: 100, HasAmount: true, Country: "ZA", MerchantName: "Shop", City: "Durban"},
			want: electrumMinimal,
		},
		{
			name: "EMVCo reproduces a public Pix code",
			p: &qr.Payload{
				Scheme:         qr.SchemeEMVCo,
				Accounts:       []qr.MerchantAccount{{GUID: "br.gov.bcb.pix", Fields: []qr.Field{{Tag: "25", Value: "bx.com.br/pix/8b3da2f3-9a41-40d1-a91a-bd93113bd441"}}}},
				MCC:            "0000",
				Currency:       "986",
				Amount:         12345,
				HasAmount:      true,
				Country:        "BR",
				MerchantName:   "Fulano de Tal",
				City:           "BRASILIA",
				ReferenceLabel: "RP12345678-2019",
			},
			want: pixDynamic,
		},
		{
			name: "EMVCo dynamic with electrum template",
			p:    fullPayload(),
			want: sealed("000201" + "010212" + "26500010za.co.elec0132" + electrumTranID + "52045411" + "5303710" + "5406799.95" + "5802ZA" +
				"5922Corner Shop Rondebosch" + "6009Cape Town" + "6226" + "0510INV-000123" + "0708POS00042" + "6304"),
		},
		{
			name: "EMVCo static without amount",
			p: &qr.Payload{Scheme: qr.SchemeEMVCo, Static: true, Accounts: []qr.MerchantAccount{qr.ElectrumAccount("t1")},
				MCC: "5411", Currency: "710", Country: "ZA", MerchantName: "Shop", City: "Durban"},
			want: sealed("000201" + "010211" + "26200010za.co.elec0102t1" + "52045411" + "5303710" + "5802ZA" + "5904Shop" + "6006Durban" + "6304"),
		},
		{
			name: "pseudo EMVCo with fields missing still has a CRC",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, Accounts: []qr.MerchantAccount{qr.ElectrumAccount("t1")}, Currency: "710", Amount: 5, HasAmount: true},
			want: sealed("000201" + "010212" + "26200010za.co.elec0102t1" + "5303710" + "54040.05" + "6304"),
		},
		{
			name: "pseudo EMVCo without accounts",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, MerchantName: "Shop"},
			want: sealed("000201" + "010212" + "5904Shop" + "6304"),
		},
		{
			name: "terminal label alone in 62",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, TerminalLabel: "T1"},
			want: sealed("000201" + "010212" + "62060702T1" + "6304"),
		},
		{
			name: "explicit and next-free template tags",
			p: &qr.Payload{Scheme: qr.SchemeElectrumMinimal, Accounts: []qr.MerchantAccount{
				{Tag: 26, GUID: "a.b", Fields: []qr.Field{{Tag: "01", Value: "x"}}},
				{GUID: "c.d"},
				{Tag: 27, GUID: "e.f"},
			}},
			want: "000201" + "26120003a.b0101x" + "28070003c.d" + "27070003e.f",
		},
		{
			name: "yen amount has no decimals",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, Currency: "392", Amount: 1200, HasAmount: true},
			want: sealed("000201" + "010212" + "5303392" + "54041200" + "6304"),
		},
		{
			name: "dinar amount has three decimals",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, Currency: "048", Amount: 1, HasAmount: true},
			want: sealed("000201" + "010212" + "5303048" + "54050.001" + "6304"),
		},
		{
			name: "zero amount",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, Currency: "840", HasAmount: true},
			want: sealed("000201" + "010212" + "5303840" + "54040.00" + "6304"),
		},
		{
			name: "largest amount",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, Currency: "710", Amount: 9999999999_99, HasAmount: true},
			want: sealed("000201" + "010212" + "5303710" + "54139999999999.99" + "6304"),
		},
		{
			name: "lengths count characters",
			p:    &qr.Payload{Scheme: qr.SchemePseudoEMVCo, MerchantName: "Café Ñandú 最佳运输", City: "北京"},
			want: sealed("000201" + "010212" + "5915Café Ñandú 最佳运输" + "6002北京" + "6304"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := qr.Encode(tt.p)
			if err != nil || got != tt.want {
				t.Fatalf("Encode(%+v) = %q, %v; want %q", tt.p, got, err, tt.want)
			}
			if _, err := qr.Decode(got); err != nil {
				t.Errorf("Decode(Encode(%+v)) error = %v", tt.p, err)
			}
		})
	}
}

func TestEncodeFieldErrors(t *testing.T) {
	long := func(n int, r string) string { return strings.Repeat(r, n) }
	tests := []struct {
		name   string
		modify func(p *qr.Payload)
		field  string
		tag    string
		want   error
	}{
		{"no scheme", func(p *qr.Payload) { p.Scheme = "" }, "Scheme", "", qr.ErrScheme},
		{"unknown scheme", func(p *qr.Payload) { p.Scheme = "EMVCO" }, "Scheme", "", qr.ErrScheme},
		{"EMVCo without accounts", func(p *qr.Payload) { p.Accounts = nil }, "Accounts", "26-51", qr.ErrMissing},
		{"EMVCo without MCC", func(p *qr.Payload) { p.MCC = "" }, "MCC", "52", qr.ErrMissing},
		{"EMVCo without currency", func(p *qr.Payload) { p.Currency = ""; p.HasAmount = false; p.Amount = 0 }, "Currency", "53", qr.ErrMissing},
		{"EMVCo without country", func(p *qr.Payload) { p.Country = "" }, "Country", "58", qr.ErrMissing},
		{"EMVCo without merchant name", func(p *qr.Payload) { p.MerchantName = "" }, "MerchantName", "59", qr.ErrMissing},
		{"EMVCo without city", func(p *qr.Payload) { p.City = "" }, "City", "60", qr.ErrMissing},
		{"merchant name of 26 characters", func(p *qr.Payload) { p.MerchantName = long(26, "a") }, "MerchantName", "59", qr.ErrTooLong},
		{"merchant name of 26 multi-byte characters", func(p *qr.Payload) { p.MerchantName = long(26, "最") }, "MerchantName", "59", qr.ErrTooLong},
		{"city of 16 characters", func(p *qr.Payload) { p.City = long(16, "c") }, "City", "60", qr.ErrTooLong},
		{"reference label of 26 characters", func(p *qr.Payload) { p.ReferenceLabel = long(26, "r") }, "ReferenceLabel", "62.05", qr.ErrTooLong},
		{"terminal label of 26 characters", func(p *qr.Payload) { p.TerminalLabel = long(26, "t") }, "TerminalLabel", "62.07", qr.ErrTooLong},
		{"MCC of 5 digits", func(p *qr.Payload) { p.MCC = "54110" }, "MCC", "52", qr.ErrTooLong},
		{"MCC of 3 digits", func(p *qr.Payload) { p.MCC = "541" }, "MCC", "52", qr.ErrInvalid},
		{"MCC not digits", func(p *qr.Payload) { p.MCC = "54a1" }, "MCC", "52", qr.ErrInvalid},
		{"currency of 4 digits", func(p *qr.Payload) { p.Currency = "0710" }, "Currency", "53", qr.ErrTooLong},
		{"alphabetic currency", func(p *qr.Payload) { p.Currency = "ZAR" }, "Currency", "53", qr.ErrInvalid},
		{"country of 3 letters", func(p *qr.Payload) { p.Country = "ZAF" }, "Country", "58", qr.ErrTooLong},
		{"lower-case country", func(p *qr.Payload) { p.Country = "za" }, "Country", "58", qr.ErrInvalid},
		{"amount of 14 characters", func(p *qr.Payload) { p.Amount = 10000000000_00 }, "Amount", "54", qr.ErrTooLong},
		{"negative amount", func(p *qr.Payload) { p.Amount = -1 }, "Amount", "54", qr.ErrInvalid},
		{"amount in unknown currency", func(p *qr.Payload) { p.Currency = "999" }, "Currency", "53", qr.ErrUnknownCurrency},
		{"amount without HasAmount", func(p *qr.Payload) { p.HasAmount = false }, "HasAmount", "54", qr.ErrInvalid},
		{"empty tranId", func(p *qr.Payload) { p.Accounts = []qr.MerchantAccount{qr.ElectrumAccount("")} }, "Accounts[0].Fields[0]", "26.01", qr.ErrMissing},
		{"tranId of 100 characters", func(p *qr.Payload) { p.Accounts = []qr.MerchantAccount{qr.ElectrumAccount(long(100, "f"))} }, "Accounts[0].Fields[0]", "26.01", qr.ErrTooLong},
		{"template over 99 characters", func(p *qr.Payload) { p.Accounts = []qr.MerchantAccount{qr.ElectrumAccount(long(82, "f"))} }, "Accounts[0]", "26", qr.ErrTooLong},
		{"template without GUID", func(p *qr.Payload) { p.Accounts = []qr.MerchantAccount{{Fields: []qr.Field{{Tag: "01", Value: "x"}}}} }, "Accounts[0].GUID", "26.00", qr.ErrMissing},
		{"GUID of 33 characters", func(p *qr.Payload) { p.Accounts = []qr.MerchantAccount{{GUID: long(33, "g")}} }, "Accounts[0].GUID", "26.00", qr.ErrTooLong},
		{"template tag 25", func(p *qr.Payload) { p.Accounts[0].Tag = 25 }, "Accounts[0].Tag", "", qr.ErrInvalid},
		{"template tag 52", func(p *qr.Payload) { p.Accounts[0].Tag = 52 }, "Accounts[0].Tag", "", qr.ErrInvalid},
		{"two templates on one tag", func(p *qr.Payload) {
			p.Accounts = []qr.MerchantAccount{{Tag: 30, GUID: "a"}, {Tag: 30, GUID: "b"}}
		}, "Accounts[1].Tag", "30", qr.ErrDuplicate},
		{"27 templates", func(p *qr.Payload) { p.Accounts = make([]qr.MerchantAccount, 27) }, "Accounts", "26-51", qr.ErrTooLong},
		{"sub-tag 00 in fields", func(p *qr.Payload) { p.Accounts[0].Fields = []qr.Field{{Tag: "00", Value: "x"}} }, "Accounts[0].Fields[0]", "26", qr.ErrInvalid},
		{"sub-tag of one digit", func(p *qr.Payload) { p.Accounts[0].Fields = []qr.Field{{Tag: "1", Value: "x"}} }, "Accounts[0].Fields[0]", "26", qr.ErrInvalid},
		{"sub-tag twice", func(p *qr.Payload) {
			p.Accounts[0].Fields = append(p.Accounts[0].Fields, qr.Field{Tag: "01", Value: "y"})
		}, "Accounts[0].Fields[1]", "26.01", qr.ErrDuplicate},
		{"name not UTF-8", func(p *qr.Payload) { p.MerchantName = "Caf\xe9" }, "MerchantName", "59", qr.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fullPayload()
			tt.modify(p)
			got, err := qr.Encode(p)
			var fe *qr.FieldError
			if !errors.Is(err, tt.want) || !errors.As(err, &fe) {
				t.Fatalf("Encode(%+v) = %q, %v; want a *qr.FieldError wrapping %v", p, got, err, tt.want)
			}
			if fe.Field != tt.field || fe.Tag != tt.tag {
				t.Errorf("Encode(%+v) error names %s (tag %s), want %s (tag %s): %v", p, fe.Field, fe.Tag, tt.field, tt.tag, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Encode() error %q does not name the field %s", err, tt.field)
			}
		})
	}
}

func TestEncodeLimitsAreInclusive(t *testing.T) {
	p := fullPayload()
	p.MerchantName = strings.Repeat("最", qr.MaxMerchantNameLength)
	p.City = strings.Repeat("ñ", qr.MaxCityLength)
	p.ReferenceLabel = strings.Repeat("r", qr.MaxLabelLength)
	p.TerminalLabel = strings.Repeat("t", qr.MaxLabelLength)
	p.Accounts = []qr.MerchantAccount{qr.ElectrumAccount(strings.Repeat("f", qr.MaxValueLength-14-4))}
	s, err := qr.Encode(p)
	if err != nil {
		t.Fatalf("Encode(fields at their limits) error = %v", err)
	}
	if !strings.Contains(s, "5925"+p.MerchantName) || !strings.Contains(s, "2699") {
		t.Errorf("Encode(fields at their limits) = %q, want 59 of length 25 and template 26 of length 99", s)
	}
}

func TestEncodeNilPayload(t *testing.T) {
	if _, err := qr.Encode(nil); !errors.Is(err, qr.ErrMissing) {
		t.Errorf("Encode(nil) error = %v, want ErrMissing", err)
	}
}

func TestAppendEncodeAppends(t *testing.T) {
	prefix := []byte("prefix:")
	got, err := qr.AppendEncode(prefix, fullPayload())
	if err != nil {
		t.Fatalf("AppendEncode() error = %v", err)
	}
	want, _ := qr.Encode(fullPayload())
	if string(got) != "prefix:"+want {
		t.Errorf("AppendEncode(%q, p) = %q, want %q (the CRC covers the payload only)", "prefix:", got, "prefix:"+want)
	}
	bad := fullPayload()
	bad.MCC = "x"
	if got, err := qr.AppendEncode(prefix, bad); err == nil || string(got) != "prefix:" {
		t.Errorf("AppendEncode(prefix, bad) = %q, %v; want prefix unchanged and an error", got, err)
	}
}

func TestRoundTrip(t *testing.T) {
	static := fullPayload()
	static.Static, static.HasAmount, static.Amount = true, false, 0
	multi := fullPayload()
	multi.Accounts = []qr.MerchantAccount{
		{Tag: 40, GUID: "za.co.mp", Fields: []qr.Field{{Tag: "01", Value: "5169175130"}, {Tag: "02", Value: "Ünïcödé"}}},
		qr.ElectrumAccount(electrumTranID),
		{GUID: "br.gov.bcb.pix", Fields: []qr.Field{{Tag: "01", Value: "123e4567-e12b-12d1-a456-426655440000"}}},
	}
	multi.MerchantName = "Café Ñandú 最佳运输"
	tests := []struct {
		name string
		p    *qr.Payload
	}{
		{"EMVCo dynamic", fullPayload()},
		{"EMVCo static", static},
		{"EMVCo three templates, multi-byte", multi},
		{"pseudo EMVCo", &qr.Payload{Scheme: qr.SchemePseudoEMVCo, Currency: "392", Amount: 7, HasAmount: true}},
		{"electrum minimal", &qr.Payload{Scheme: qr.SchemeElectrumMinimal, Accounts: []qr.MerchantAccount{qr.ElectrumAccount(electrumTranID)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := qr.Encode(tt.p)
			if err != nil {
				t.Fatalf("Encode(%+v) error = %v", tt.p, err)
			}
			d, err := qr.Decode(s)
			if err != nil {
				t.Fatalf("Decode(%q) error = %v", s, err)
			}
			got, err := d.Payload()
			if err != nil {
				t.Fatalf("Decode(%q).Payload() error = %v", s, err)
			}
			want := withTags(tt.p)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decode(Encode(p)).Payload() = %+v, want %+v", got, want)
			}
		})
	}
}

// withTags returns a copy of p with its accounts' tags filled in the way
// Encode assigns them.
func withTags(p *qr.Payload) *qr.Payload {
	c := *p
	c.Accounts = append([]qr.MerchantAccount(nil), p.Accounts...)
	used := map[int]bool{}
	for _, a := range c.Accounts {
		used[a.Tag] = true
	}
	next := 26
	for i := range c.Accounts {
		if c.Accounts[i].Tag != 0 {
			continue
		}
		for used[next] {
			next++
		}
		used[next] = true
		c.Accounts[i].Tag = next
	}
	if len(c.Accounts) == 0 {
		c.Accounts = nil
	}
	return &c
}

func TestCurrencyExponent(t *testing.T) {
	tests := []struct {
		numeric string
		want    int
		ok      bool
	}{
		{"710", 2, true},  // ZAR
		{"840", 2, true},  // USD
		{"978", 2, true},  // EUR
		{"826", 2, true},  // GBP
		{"986", 2, true},  // BRL
		{"392", 0, true},  // JPY
		{"048", 3, true},  // BHD
		{"414", 3, true},  // KWD
		{"356", 2, true},  // INR
		{"404", 2, true},  // KES
		{"566", 2, true},  // NGN
		{"156", 2, true},  // CNY
		{"990", 4, true},  // CLF
		{"952", 0, true},  // XOF
		{"959", 0, false}, // XAU has no minor unit
		{"999", 0, false}, // XXX
		{"000", 0, false},
		{"71", 0, false},
		{"ZAR", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := qr.CurrencyExponent(tt.numeric)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CurrencyExponent(%q) = %d, %v; want %d, %v", tt.numeric, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCurrencyNumeric(t *testing.T) {
	tests := []struct {
		alpha, want string
		ok          bool
	}{
		{"ZAR", "710", true},
		{"zar", "710", true},
		{"JPY", "392", true},
		{"BHD", "048", true},
		{"XAU", "", false},
		{"ABC", "", false},
	}
	for _, tt := range tests {
		got, ok := qr.CurrencyNumeric(tt.alpha)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CurrencyNumeric(%q) = %q, %v; want %q, %v", tt.alpha, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEncodeObjects(t *testing.T) {
	d, err := qr.Decode(pixBCB)
	if err != nil {
		t.Fatalf("Decode(pixBCB) error = %v", err)
	}
	d.Objects[5].Value = "Beltrano"
	got, err := qr.EncodeObjects(d.Objects)
	if err != nil {
		t.Fatalf("EncodeObjects() error = %v", err)
	}
	want := sealed(strings.Replace(strings.TrimSuffix(pixBCB, "1D3D"), "5913Fulano de Tal", "5908Beltrano", 1))
	if got != want {
		t.Errorf("EncodeObjects(edited pixBCB) = %q, want %q (lengths and CRC recomputed)", got, want)
	}
	for _, bad := range [][]qr.Object{
		{{Tag: "0", Value: "01"}},
		{{Tag: "00", Value: ""}},
		{{Tag: "00", Value: strings.Repeat("x", 100)}},
		{{Tag: "26", Children: []qr.Object{{Tag: "00", Value: strings.Repeat("x", 96)}}}},
	} {
		if _, err := qr.EncodeObjects(bad); !errors.Is(err, qr.ErrInvalid) {
			t.Errorf("EncodeObjects(%+v) error = %v, want ErrInvalid", bad, err)
		}
	}
}
