package qr_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/qr"
)

func TestDecodeVectors(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		// tags are the top-level tags in order.
		tags []string
		// children maps a top-level tag to its children's tags.
		children map[string][]string
		hasCRC   bool
	}{
		{
			name: "electrum minimal", payload: electrumMinimal,
			tags:     []string{"00", "26"},
			children: map[string][]string{"26": {"00", "01"}},
		},
		{
			name: "electrum two templates", payload: electrumTwoTemplates,
			tags:     []string{"00", "26", "27"},
			children: map[string][]string{"26": {"00", "01"}, "27": {"00", "01"}},
		},
		{
			name: "pix BCB", payload: pixBCB, hasCRC: true,
			tags:     []string{"00", "26", "52", "53", "58", "59", "60", "62", "63"},
			children: map[string][]string{"26": {"00", "01"}, "62": {"05"}},
		},
		{
			name: "EMVCo sample", payload: emvcoSample, hasCRC: true,
			tags:     []string{"00", "01", "29", "31", "52", "58", "59", "60", "64", "54", "53", "55", "62", "91", "63"},
			children: map[string][]string{"29": {"00", "05"}, "31": {"00", "03"}, "64": {"00", "01", "02"}, "62": {"03", "06", "07", "09"}, "91": {"00", "07"}},
		},
		{
			name: "EMVCo sample reordered", payload: emvcoSampleReordered, hasCRC: true,
			tags: []string{"00", "01", "29", "31", "52", "53", "54", "55", "58", "59", "60", "62", "64", "63"},
		},
		{
			name: "JPQR", payload: jpqrSample, hasCRC: true,
			tags:     []string{"00", "60", "01", "29", "31", "26", "53", "59", "64", "52", "58", "61", "63"},
			children: map[string][]string{"64": {"00", "01"}},
		},
		{
			name: "pix itau nested 62.50", payload: pixItau, hasCRC: true,
			tags:     []string{"00", "01", "26", "52", "53", "58", "59", "60", "62", "63"},
			children: map[string][]string{"26": {"00", "01", "02"}, "62": {"05", "50"}},
		},
		{name: "pix dynamic", payload: pixDynamic, hasCRC: true, tags: []string{"00", "01", "26", "52", "53", "54", "58", "59", "60", "62", "63"}},
		{name: "promptpay amount", payload: promptPayAmount, hasCRC: true, tags: []string{"00", "01", "29", "58", "53", "54", "63"}},
		{name: "promptpay phone", payload: promptPayPhone, hasCRC: true, tags: []string{"00", "01", "29", "58", "53", "63"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := qr.Decode(tt.payload)
			if err != nil {
				t.Fatalf("Decode(%q) error = %v, want nil", tt.payload, err)
			}
			if got := tags(d.Objects); !reflect.DeepEqual(got, tt.tags) {
				t.Errorf("Decode(%q) tags = %v, want %v", tt.payload, got, tt.tags)
			}
			for parent, want := range tt.children {
				o, _ := d.Get(parent)
				if got := tags(o.Children); !reflect.DeepEqual(got, want) {
					t.Errorf("Decode(%q) children of %s = %v, want %v", tt.payload, parent, got, want)
				}
			}
			if got := d.HasCRC(); got != tt.hasCRC {
				t.Errorf("Decode(%q).HasCRC() = %v, want %v", tt.payload, got, tt.hasCRC)
			}
			re, err := qr.EncodeObjects(d.Objects)
			if err != nil || re != tt.payload {
				t.Errorf("EncodeObjects(Decode(%q).Objects) = %q, %v; want the payload back", tt.payload, re, err)
			}
		})
	}
}

func TestDecodeMultiByteValues(t *testing.T) {
	d, err := qr.Decode(emvcoSample)
	if err != nil {
		t.Fatalf("Decode(emvcoSample) error = %v", err)
	}
	lang, _ := d.Get("64")
	name, _ := lang.Child("01")
	city, _ := lang.Child("02")
	if name.Value != "最佳运输" || city.Value != "北京" {
		t.Errorf("Decode(emvcoSample) 64.01, 64.02 = %q, %q; want 最佳运输, 北京", name.Value, city.Value)
	}
	d, err = qr.Decode(jpqrSample)
	if err != nil {
		t.Fatalf("Decode(jpqrSample) error = %v", err)
	}
	lang, _ = d.Get("64")
	if name, _ := lang.Child("01"); name.Value != "メルペイ カフェ" {
		t.Errorf("Decode(jpqrSample) 64.01 = %q, want メルペイ カフェ", name.Value)
	}
}

func TestDecodeNestedPaymentSystemTemplate(t *testing.T) {
	d, err := qr.Decode(pixItau)
	if err != nil {
		t.Fatalf("Decode(pixItau) error = %v", err)
	}
	add, _ := d.Get("62")
	brcode, _ := add.Child("50")
	if got := tags(brcode.Children); !reflect.DeepEqual(got, []string{"00", "01"}) {
		t.Fatalf("Decode(pixItau) children of 62.50 = %v, want [00 01]", got)
	}
	if g, _ := brcode.Child("00"); g.Value != "BR.GOV.BCB.BRCODE" {
		t.Errorf("Decode(pixItau) 62.50.00 = %q, want BR.GOV.BCB.BRCODE", g.Value)
	}
}

func TestDecodeErrors(t *testing.T) {
	pixNoCRC := strings.TrimSuffix(pixBCB, "63041D3D")
	tests := []struct {
		name    string
		payload string
		want    error
		pos     int
	}{
		{"wrong CRC", pixBCB[:len(pixBCB)-4] + "FFFF", qr.ErrCRC, len(pixBCB) - 4},
		{"public bad CRC", pixBanrisulBadCRC, qr.ErrCRC, len(pixBanrisulBadCRC) - 4},
		{"CRC not hex", pixBCB[:len(pixBCB)-4] + "1D3G", qr.ErrCRC, len(pixBCB) - 4},
		{"CRC of 3 digits", pixNoCRC + "6303ABC", qr.ErrCRC, len(pixNoCRC) + 4},
		{"CRC not last", pixBCB + "6102AB", qr.ErrCRC, len(pixBCB) - 8},
		{"trailing byte after CRC", pixBCB + "0", qr.ErrTrailing, len(pixBCB)},
		{"trailing newline", pixBCB + "\n", qr.ErrTrailing, len(pixBCB)},
		{"missing CRC", pixNoCRC, qr.ErrNoCRC, len(pixNoCRC)},
		{"minimal with MCC needs CRC", electrumMinimal + "52045411", qr.ErrNoCRC, len(electrumMinimal) + 8},
		{"minimal with point of initiation needs CRC", "000201010212" + electrumMinimal[6:], qr.ErrNoCRC, len(electrumMinimal) + 6},
		{"non-numeric tag", "000201" + "2A0500001", qr.ErrTag, 6},
		{"non-numeric length", "000201" + "26X0", qr.ErrLength, 8},
		{"zero length", "000201" + "260000", qr.ErrLength, 8},
		{"length past end", electrumMinimal[:len(electrumMinimal)-1], qr.ErrLength, 8},
		{"template length past end", "000201" + "2606" + "0003ab", qr.ErrLength, 12},
		{"bad tag inside template", "000201" + "2605" + "x0011", qr.ErrTag, 10},
		{"trailing bytes inside template", "000201" + "2607" + "0001a01", qr.ErrTrailing, 15},
		{"duplicate tag", "000201" + "5802ZA5802ZA", qr.ErrDuplicate, 12},
		{"duplicate sub-tag", "000201" + "26100001a0001b", qr.ErrDuplicate, 15},
		{"empty", "", qr.ErrFormat, 0},
		{"no payload format indicator", "26500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941", qr.ErrFormat, 0},
		{"payload format 02", "000202" + electrumMinimal[6:], qr.ErrFormat, 0},
		{"invalid UTF-8", "000201" + "5903a\xffb", qr.ErrEncoding, 11},
		{"length counts characters not bytes", "000201" + "5906" + "最佳运输", qr.ErrLength, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := qr.Decode(tt.payload)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%q) error = %v, want %v", tt.payload, err, tt.want)
			}
			var se *qr.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Decode(%q) error = %T, want *qr.SyntaxError", tt.payload, err)
			}
			if se.Pos != tt.pos {
				t.Errorf("Decode(%q) error position = %d, want %d (%v)", tt.payload, se.Pos, tt.pos, err)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct{ name, payload string }{
		{"lower-case CRC", pixBCB[:len(pixBCB)-4] + "1d3d"},
		{"minimal with a CRC", sealed(electrumMinimal + "6304")},
		{"payload format only", "000201"},
		{"RFU and unknown tags", sealed("000201" + "6503abc" + "9906" + "0002ab" + "6304")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := qr.Decode(tt.payload); err != nil {
				t.Errorf("Decode(%q) error = %v, want nil", tt.payload, err)
			}
		})
	}
}

func TestTranID(t *testing.T) {
	full, err := qr.Encode(&qr.Payload{
		Scheme: qr.SchemeEMVCo, Accounts: []qr.MerchantAccount{{Tag: 30, GUID: "za.co.mp", Fields: []qr.Field{{Tag: "01", Value: "5169175130"}}}, qr.ElectrumAccount(electrumTranID)},
		MCC: "5411", Currency: "710", Country: "ZA", MerchantName: "Corner Shop", City: "Cape Town",
	})
	if err != nil {
		t.Fatalf("Encode() error = %v", err)
	}
	tests := []struct {
		name, payload string
		want          string
		wantErr       error
	}{
		{"electrum minimal", electrumMinimal, electrumTranID, nil},
		{"electrum two templates", electrumTwoTemplates, electrumTranID, nil},
		{"EMVCo with electrum in second template", full, electrumTranID, nil},
		{"upper-case GUID", sealed("000201" + "26500010ZA.CO.ELEC0132" + electrumTranID + "6304"), electrumTranID, nil},
		{"no electrum template", pixBCB, "", qr.ErrNoTranID},
		{"electrum template without 01", "000201" + "26220010za.co.elec0204abcd", "", qr.ErrNoTranID},
		{"bad CRC", pixBCB[:len(pixBCB)-4] + "FFFF", "", qr.ErrCRC},
		{"not a payload", "https://example.com/pay", "", qr.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := qr.TranID(tt.payload)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("TranID(%q) = %q, %v; want %q, %v", tt.payload, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDocumentAccount(t *testing.T) {
	d, err := qr.Decode(electrumTwoTemplates)
	if err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	tests := []struct {
		guid string
		want qr.MerchantAccount
		ok   bool
	}{
		{qr.ElectrumProvider, qr.MerchantAccount{Tag: 26, GUID: "za.co.elec", Fields: []qr.Field{{Tag: "01", Value: electrumTranID}}}, true},
		{"za.co.mp", qr.MerchantAccount{Tag: 27, GUID: "za.co.mp", Fields: []qr.Field{{Tag: "01", Value: "5169175130"}}}, true},
		{"br.gov.bcb.pix", qr.MerchantAccount{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.guid, func(t *testing.T) {
			got, ok := d.Account(tt.guid)
			if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Account(%q) = %+v, %v; want %+v, %v", tt.guid, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDocumentPayload(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    qr.Payload
	}{
		{
			name: "electrum minimal", payload: electrumMinimal,
			want: qr.Payload{Scheme: qr.SchemeElectrumMinimal, Accounts: []qr.MerchantAccount{{Tag: 26, GUID: "za.co.elec", Fields: []qr.Field{{Tag: "01", Value: electrumTranID}}}}},
		},
		{
			name: "pix BCB", payload: pixBCB,
			want: qr.Payload{
				Scheme: qr.SchemeEMVCo, Accounts: []qr.MerchantAccount{{Tag: 26, GUID: "br.gov.bcb.pix", Fields: []qr.Field{{Tag: "01", Value: "123e4567-e12b-12d1-a456-426655440000"}}}},
				MCC: "0000", Currency: "986", Country: "BR", MerchantName: "Fulano de Tal", City: "BRASILIA", ReferenceLabel: "***",
			},
		},
		{
			name: "EMVCo sample", payload: emvcoSample,
			want: qr.Payload{
				Scheme: qr.SchemeEMVCo,
				Accounts: []qr.MerchantAccount{
					{Tag: 29, GUID: "D15600000000", Fields: []qr.Field{{Tag: "05", Value: "A93FO3230Q"}}},
					{Tag: 31, GUID: "D15600000001", Fields: []qr.Field{{Tag: "03", Value: "12345678"}}},
				},
				MCC: "4111", Currency: "156", Amount: 2372, HasAmount: true, Country: "CN", MerchantName: "BEST TRANSPORT", City: "BEIJING", TerminalLabel: "A6008667",
			},
		},
		{
			name: "promptpay without name is pseudo", payload: promptPayAmount,
			want: qr.Payload{
				Scheme: qr.SchemePseudoEMVCo, Accounts: []qr.MerchantAccount{{Tag: 29, GUID: "A000000677010111", Fields: []qr.Field{{Tag: "01", Value: "0066000000000"}}}},
				Currency: "764", Amount: 422, HasAmount: true, Country: "TH",
			},
		},
		{
			name: "static JPQR in yen", payload: jpqrSample,
			want: qr.Payload{
				Scheme: qr.SchemeEMVCo, Static: true,
				Accounts: []qr.MerchantAccount{
					{Tag: 29, GUID: "D15600000000", Fields: []qr.Field{{Tag: "05", Value: "A93FO3230Q"}}},
					{Tag: 31, GUID: "D15600000001", Fields: []qr.Field{{Tag: "03", Value: "12345678"}}},
					{Tag: 26, GUID: "jp.or.paymentsjapan", Fields: []qr.Field{{Tag: "01", Value: "0000000000001"}, {Tag: "02", Value: "0001"}, {Tag: "03", Value: "000001"}, {Tag: "04", Value: "000001"}}},
				},
				MCC: "4111", Currency: "392", Country: "JP", MerchantName: "xxx", City: "xxx",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := qr.Decode(tt.payload)
			if err != nil {
				t.Fatalf("Decode(%q) error = %v", tt.payload, err)
			}
			got, err := d.Payload()
			if err != nil {
				t.Fatalf("Decode(%q).Payload() error = %v", tt.payload, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Decode(%q).Payload() = %+v, want %+v", tt.payload, *got, tt.want)
			}
		})
	}
}

func TestDocumentPayloadErrors(t *testing.T) {
	tests := []struct {
		name, payload string
		field         string
		want          error
	}{
		{"point of initiation 13", sealed("000201" + "010213" + "6304"), "Static", qr.ErrInvalid},
		{"amount in unknown currency", sealed("000201" + "5303999" + "540510.00" + "6304"), "Currency", qr.ErrUnknownCurrency},
		{"amount without currency", sealed("000201" + "540510.00" + "6304"), "Currency", qr.ErrUnknownCurrency},
		{"amount with too many decimals", sealed("000201" + "5303710" + "54061.2345" + "6304"), "Amount", qr.ErrInvalid},
		{"amount not a number", sealed("000201" + "5303710" + "54041,00" + "6304"), "Amount", qr.ErrInvalid},
		{"yen amount with decimals", sealed("000201" + "5303392" + "5405100.0" + "6304"), "Amount", qr.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := qr.Decode(tt.payload)
			if err != nil {
				t.Fatalf("Decode(%q) error = %v", tt.payload, err)
			}
			_, err = d.Payload()
			var fe *qr.FieldError
			if !errors.Is(err, tt.want) || !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("Decode(%q).Payload() error = %v, want %v on field %s", tt.payload, err, tt.want, tt.field)
			}
		})
	}
}

func TestObjectName(t *testing.T) {
	tests := []struct{ parent, tag, want string }{
		{"", "00", "Payload Format Indicator"},
		{"", "26", "Merchant Account Information"},
		{"", "59", "Merchant Name"},
		{"", "63", "CRC"},
		{"", "91", "Unreserved Template"},
		{"26", "00", "Globally Unique Identifier"},
		{"62", "05", "Reference Label"},
		{"62", "07", "Terminal Label"},
		{"62", "50", "Payment System Specific Template"},
		{"64", "01", "Merchant Name - Alternate Language"},
		{"64", "99", ""},
		{"59", "01", ""},
		{"", "x1", ""},
	}
	for _, tt := range tests {
		if got := qr.ObjectName(tt.parent, tt.tag); got != tt.want {
			t.Errorf("ObjectName(%q, %q) = %q, want %q", tt.parent, tt.tag, got, tt.want)
		}
	}
}

func tags(objs []qr.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Tag)
	}
	return out
}

// sealed replaces the last four characters' placeholder: it takes a payload
// ending in "6304" and appends its CRC.
func sealed(s string) string {
	return s + crcHex(s)
}

func crcHex(s string) string {
	const hex = "0123456789ABCDEF"
	c := qr.CRC16([]byte(s))
	return string([]byte{hex[c>>12], hex[c>>8&15], hex[c>>4&15], hex[c&15]})
}

func TestTranIDFor(t *testing.T) {
	tests := []struct {
		guid, want string
		wantErr    error
	}{
		{"za.co.mp", "5169175130", nil},
		{qr.ElectrumProvider, electrumTranID, nil},
		{"com.example", "", qr.ErrNoTranID},
	}
	for _, tt := range tests {
		got, err := qr.TranIDFor(electrumTwoTemplates, tt.guid)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("TranIDFor(electrumTwoTemplates, %q) = %q, %v; want %q, %v", tt.guid, got, err, tt.want, tt.wantErr)
		}
	}
}
