package qr_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qrswitch/qrswitch/qr"
)

// FuzzDecode feeds Decode arbitrary text. It must never panic; a rejection
// must be a *SyntaxError inside the payload; an accepted payload must come
// back byte for byte from its objects (CRC digits in upper case), and its
// typed view, once encoded, must decode to the same typed view.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		electrumMinimal, electrumTwoTemplates, pixBCB, emvcoSample, emvcoSampleReordered,
		jpqrSample, pixItau, pixDynamic, promptPayAmount, promptPayPhone, pixBanrisulBadCRC,
		pixBCB[:len(pixBCB)-4] + "1d3d",
		pixBCB + "\n",
		"000201",
		"",
		"00020126050001a",
		"0002016304FFFF",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := qr.Decode(s)
		if errors.Is(err, qr.ErrCRC) && strings.HasSuffix(s[:max(len(s)-4, 0)], "6304") {
			// Mutations almost never keep a CRC right: reseal the input
			// so the checks past the CRC get explored too.
			s = sealed(s[:len(s)-4])
			d, err = qr.Decode(s)
		}
		if err != nil {
			var se *qr.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Decode(%q) error = %T %v, want *qr.SyntaxError", s, err, err)
			}
			if se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("Decode(%q) error position %d outside 0..%d", s, se.Pos, len(s))
			}
			return
		}
		re, err := qr.EncodeObjects(d.Objects)
		if err != nil {
			t.Fatalf("EncodeObjects(Decode(%q).Objects) error = %v", s, err)
		}
		want := s
		if d.HasCRC() {
			want = s[:len(s)-4] + strings.ToUpper(s[len(s)-4:])
		}
		if re != want {
			t.Fatalf("EncodeObjects(Decode(%q).Objects) = %q, want %q", s, re, want)
		}
		if _, err := qr.Decode(re); err != nil {
			t.Fatalf("Decode(EncodeObjects(Decode(%q))) error = %v", s, err)
		}

		p, err := d.Payload()
		if err != nil {
			var fe *qr.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode(%q).Payload() error = %T %v, want *qr.FieldError", s, err, err)
			}
			return
		}
		enc, err := qr.Encode(p)
		if err != nil {
			// Decode is lenient about field contents, Encode is not.
			return
		}
		d2, err := qr.Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) of %q error = %v", p, enc, err)
		}
		p2, err := d2.Payload()
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)).Payload() error = %v", p, err)
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("Decode(Encode(p)).Payload() = %+v, want p = %+v (from %q)", p2, p, s)
		}
	})
}

// FuzzEncode feeds Encode arbitrary fields. It must never panic; a rejection
// must be a *FieldError naming a field; an accepted payload must decode, give
// back the fields (and the tranId), and never exceed a field's limit.
func FuzzEncode(f *testing.F) {
	f.Add(uint8(0), false, electrumTranID, "za.co.mp", "5169175130", "5411", "710", int64(79995), true, "ZA", "Corner Shop", "Cape Town", "INV-1", "POS1")
	f.Add(uint8(1), true, "t", "", "", "", "392", int64(1200), true, "", "最佳运输", "北京", "", "")
	f.Add(uint8(2), false, electrumTranID, "br.gov.bcb.pix", "key", "", "", int64(0), false, "", "", "", "", "")
	f.Add(uint8(3), false, "", "g", "v", "54a1", "ZAR", int64(-1), true, "za", strings.Repeat("n", 26), "c", "r", "t")
	f.Fuzz(func(t *testing.T, scheme uint8, static bool, tranID, guid, value, mcc, currency string, amount int64, hasAmount bool, country, name, city, ref, terminal string) {
		schemes := []qr.Scheme{qr.SchemeEMVCo, qr.SchemePseudoEMVCo, qr.SchemeElectrumMinimal, "BOGUS"}
		p := &qr.Payload{
			Scheme: schemes[int(scheme)%len(schemes)], Static: static,
			MCC: mcc, Currency: currency, Amount: amount, HasAmount: hasAmount,
			Country: country, MerchantName: name, City: city, ReferenceLabel: ref, TerminalLabel: terminal,
		}
		if tranID != "" {
			p.Accounts = append(p.Accounts, qr.ElectrumAccount(tranID))
		}
		if guid != "" {
			p.Accounts = append(p.Accounts, qr.MerchantAccount{GUID: guid, Fields: []qr.Field{{Tag: "01", Value: value}}})
		}
		s, err := qr.Encode(p)
		if err != nil {
			var fe *qr.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Encode(%+v) error = %T %v, want a *qr.FieldError naming a field", p, err, err)
			}
			return
		}
		d, err := qr.Decode(s)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) of %q error = %v", p, s, err)
		}
		got, err := d.Payload()
		if err != nil {
			t.Fatalf("Decode(%q).Payload() error = %v", s, err)
		}
		want := withTags(p)
		if p.Scheme == qr.SchemeElectrumMinimal {
			want = &qr.Payload{Scheme: p.Scheme, Accounts: want.Accounts}
		}
		if p.Scheme == qr.SchemePseudoEMVCo && got.Scheme == qr.SchemeEMVCo {
			// Every mandatory field was given: the payload is full EMVCo.
			want.Scheme = qr.SchemeEMVCo
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(Encode(p)).Payload() = %+v, want %+v (payload %q)", got, want, s)
		}
		if tranID != "" {
			if id, err := qr.TranID(s); err != nil || id != tranID {
				t.Fatalf("TranID(%q) = %q, %v; want %q", s, id, err, tranID)
			}
		}
		if utf8.RuneCountInString(got.MerchantName) > qr.MaxMerchantNameLength || utf8.RuneCountInString(got.City) > qr.MaxCityLength {
			t.Fatalf("Encode(%+v) = %q exceeds a field limit", p, s)
		}
	})
}
