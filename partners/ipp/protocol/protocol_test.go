package protocol

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/qr"
)

// offer is a valid offer's parameters.
func offer() url.Values {
	return url.Values{
		"ipp_version": {"0.1"}, "ipp_code": {"600"}, "ipp_status": {"Offer"}, "ipp_relay": {"102-23-90"},
		"ver_scheme": {SchemeQuery}, "ver_data": {""}, "xtime": {"1234567890"}, "amount": {"100.00"}, "unit": {"USD"},
		"from": {"buyer.org"}, "to": {"seller.com"}, "memo": {"office supply"},
	}
}

func TestParseNotification(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(v url.Values)
		param string // "" : valid
	}{
		{"the seed's offer", func(url.Values) {}, ""},
		{"reversal offer", func(v url.Values) {
			v.Set("amount", "-100.00")
			v.Set("ref_xtime", "1234567000")
			v.Set("ref_amount", "100.00")
		}, ""},
		{"reset", func(v url.Values) { v.Set("ipp_code", "640"); v.Set("amount", "80.00"); v.Set("ref_amount", "100.00") }, ""},
		{"voided per advisory", func(v url.Values) { v.Set("ipp_code", "662") }, ""},
		{"brand with port and path", func(v url.Values) { v.Set("to", "127.0.0.1:8443/ipp/p/b/shop-1") }, ""},
		{"version", func(v url.Values) { v.Set("ipp_version", "0.2") }, "ipp_version"},
		{"no version", func(v url.Values) { v.Del("ipp_version") }, "ipp_version"},
		{"code not a number", func(v url.Values) { v.Set("ipp_code", "6x0") }, "ipp_code"},
		{"code four digits", func(v url.Values) { v.Set("ipp_code", "0600") }, "ipp_code"},
		{"error code as a notification", func(v url.Values) { v.Set("ipp_code", "804") }, "ipp_code"},
		{"pending as a notification", func(v url.Values) { v.Set("ipp_code", "610") }, "ipp_code"},
		{"no status", func(v url.Values) { v.Del("ipp_status") }, "ipp_status"},
		{"status with a newline", func(v url.Values) { v.Set("ipp_status", "Offer\n") }, "ipp_status"},
		{"relay too long", func(v url.Values) { v.Set("ipp_relay", strings.Repeat("9", 65)) }, "ipp_relay"},
		{"no scheme", func(v url.Values) { v.Del("ver_scheme") }, "ver_scheme"},
		{"relative scheme", func(v url.Values) { v.Set("ver_scheme", "xotaur.html") }, "ver_scheme"},
		{"ver_data too long", func(v url.Values) { v.Set("ver_data", strings.Repeat("a", 2049)) }, "ver_data"},
		{"xtime negative", func(v url.Values) { v.Set("xtime", "-5") }, "xtime"},
		{"xtime decimal", func(v url.Values) { v.Set("xtime", "12.5") }, "xtime"},
		{"xtime missing", func(v url.Values) { v.Del("xtime") }, "xtime"},
		{"amount exponent", func(v url.Values) { v.Set("amount", "1e3") }, "amount"},
		{"amount plus", func(v url.Values) { v.Set("amount", "+1") }, "amount"},
		{"amount zero", func(v url.Values) { v.Set("amount", "0.00") }, "amount"},
		{"amount trailing dot", func(v url.Values) { v.Set("amount", "1.") }, "amount"},
		{"amount too many digits", func(v url.Values) { v.Set("amount", "1234567890123456789") }, "amount"},
		{"no unit", func(v url.Values) { v.Del("unit") }, "unit"},
		{"unit with a space", func(v url.Values) { v.Set("unit", "US D") }, "unit"},
		{"from a URL", func(v url.Values) { v.Set("from", "https://buyer.org") }, "from"},
		{"from uppercase", func(v url.Values) { v.Set("from", "Buyer.org") }, "from"},
		{"from one label", func(v url.Values) { v.Set("from", "localhost") }, "from"},
		{"to with a query", func(v url.Values) { v.Set("to", "seller.com/?x=1") }, "to"},
		{"to dot-dot", func(v url.Values) { v.Set("to", "seller.com/a/../b") }, "to"},
		{"to is from", func(v url.Values) { v.Set("to", "buyer.org") }, "to"},
		{"memo not UTF-8", func(v url.Values) { v.Set("memo", "\xff") }, "memo"},
		{"memo too long", func(v url.Values) { v.Set("memo", strings.Repeat("m", 257)) }, "memo"},
		{"ref_memo too long", func(v url.Values) { v.Set("ref_memo", strings.Repeat("m", 257)) }, "ref_memo"},
		{"ref_xtime bad", func(v url.Values) { v.Set("ipp_code", "640"); v.Set("ref_xtime", "x") }, "ref_xtime"},
		{"ref_amount bad", func(v url.Values) { v.Set("ipp_code", "640"); v.Set("ref_amount", "ten") }, "ref_amount"},
		{"reversal without ref_xtime", func(v url.Values) { v.Set("amount", "-1"); v.Set("ref_amount", "1") }, "ref_xtime"},
		{"reversal without ref_amount", func(v url.Values) { v.Set("amount", "-1"); v.Set("ref_xtime", "1") }, "ref_amount"},
		{"reversal of a reversal", func(v url.Values) { v.Set("amount", "-1"); v.Set("ref_xtime", "1"); v.Set("ref_amount", "-1") }, "ref_amount"},
		{"reset naming nothing", func(v url.Values) { v.Set("ipp_code", "640") }, "ref_amount"},
		{"offer with a reference", func(v url.Values) { v.Set("ref_amount", "5") }, "ref_amount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := offer()
			tt.edit(v)
			n, err := ParseNotification([]byte(v.Encode()))
			if tt.param == "" {
				if err != nil {
					t.Fatalf("ParseNotification(%s) = %v, want it taken", v.Encode(), err)
				}
				again, err := ParseNotification([]byte(n.Encode()))
				if err != nil || again.Canonical() != n.Canonical() {
					t.Fatalf("ParseNotification(Encode()) = %v, %v; want the same record", again, err)
				}
				return
			}
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Code != CodeBadRequest || pe.Param != tt.param || !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ParseNotification = %v, want 800 naming %s", err, tt.param)
			}
		})
	}
	t.Run("repeated parameter", func(t *testing.T) {
		_, err := ParseNotification([]byte(offer().Encode() + "&amount=5"))
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != "amount" {
			t.Fatalf("ParseNotification(amount twice) = %v, want 800 naming amount", err)
		}
	})
	t.Run("too long", func(t *testing.T) {
		if _, err := ParseNotification([]byte(offer().Encode() + "&x=" + strings.Repeat("a", 9000))); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("ParseNotification(9 KB) = %v, want 800", err)
		}
	})
}

func TestCanonicalAndKeys(t *testing.T) {
	n, err := FromValues(offer())
	if err != nil {
		t.Fatal(err)
	}
	want := "ipp_version=0.1&ipp_code=600&ipp_status=Offer&ipp_relay=102-23-90&xtime=1234567890&amount=100.00&unit=USD&from=buyer.org&to=seller.com&memo=office+supply"
	if got := n.Canonical(); got != want {
		t.Fatalf("Canonical() = %s, want %s", got, want)
	}
	if len(n.SHA1()) != 40 {
		t.Fatalf("SHA1() = %s, want 40 hex digits", n.SHA1())
	}
	// An approval repeats the offer: same payment; a reset names it by ref_*.
	ap := *n
	ap.Code = CodeApproved
	rs := *n
	rs.Code, rs.Amount, rs.RefAmount = CodeReset, "80.00", "100"
	if ap.OriginalKey() != n.OriginalKey() || rs.OriginalKey() != n.OriginalKey() {
		t.Fatalf("OriginalKey: offer %s, approval %s, reset %s; want one payment", n.OriginalKey(), ap.OriginalKey(), rs.OriginalKey())
	}
}

func TestMoney(t *testing.T) {
	for _, tt := range []struct {
		in   string
		exp  int
		want int64
		ok   bool
	}{{"100.00", 2, 10000, true}, {"100", 2, 10000, true}, {"-0.5", 2, -50, true}, {"0.005", 2, 0, false}, {"12", 0, 12, true}, {"1.10", 1, 11, true}} {
		got, ok := ToMinor(tt.in, tt.exp)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ToMinor(%q, %d) = %d, %v; want %d, %v", tt.in, tt.exp, got, ok, tt.want, tt.ok)
		}
		if ok && qr.FormatMinor(got, tt.exp) != canonicalFixed(tt.in, tt.exp) {
			t.Errorf("qr.FormatMinor(%d, %d) = %s", got, tt.exp, qr.FormatMinor(got, tt.exp))
		}
	}
}

func canonicalFixed(s string, exp int) string {
	v, _ := ToMinor(s, exp)
	return qr.FormatMinor(v, exp)
}

func TestTransitions(t *testing.T) {
	legal := map[[2]State]bool{}
	for from, tos := range transitions {
		for _, to := range tos {
			legal[[2]State{from, to}] = true
		}
	}
	all := []State{"", StateOffer, StatePending, StateApproved, StateReset, StateVoided, StateError}
	for _, from := range all {
		for _, to := range all[1:] {
			err := Transition(from, to)
			want := legal[[2]State{from, to}] || (from == to && from != "")
			if (err == nil) != want {
				t.Errorf("Transition(%q, %q) = %v, want allowed %v", from, to, err, want)
			}
			if err != nil && !errors.Is(err, ErrIllegalTransition) {
				t.Errorf("Transition(%q, %q) = %v, want ErrIllegalTransition", from, to, err)
			}
		}
	}
	for _, tt := range []struct {
		from, to State
	}{{StateApproved, StateVoided}, {StateVoided, StateApproved}, {StateError, StateApproved}, {StatePending, StateOffer}, {"", StateApproved}} {
		if Transition(tt.from, tt.to) == nil {
			t.Errorf("Transition(%q, %q) allowed, want refused", tt.from, tt.to)
		}
	}
}

func TestCodes(t *testing.T) {
	for c, s := range statusText {
		if s == "" {
			t.Errorf("code %d has no status", c)
		}
		rep := &Reply{Code: c}
		if st := rep.HTTPStatus(); (c < 700) != (st == 200) {
			t.Errorf("Reply{%d}.HTTPStatus() = %d", c, st)
		}
	}
	for _, tt := range []struct {
		c           Code
		recoverable bool
	}{{701, true}, {702, true}, {703, true}, {900, true}, {800, false}, {801, false}, {804, false}, {809, false}, {812, false}, {901, false}, {907, false}, {908, false}, {930, false}} {
		if tt.c.Recoverable() != tt.recoverable {
			t.Errorf("Code(%d).Recoverable() = %v, want %v", tt.c, !tt.recoverable, tt.recoverable)
		}
	}
}

func TestParseReply(t *testing.T) {
	for _, tt := range []struct {
		in   string
		code Code
		ok   bool
	}{
		{`{ "code":610, "status":"Pending" }`, CodePending, true},
		{`{ "code":640, "status":"Reset", "amount":80.00, "ver_scheme": "x", "ver_data": "y", "ref_amount": 100.00 }`, CodeReset, true},
		{`{ "code": 804, "status": "Verification Failed", "message": "Unable to verify." }`, CodeVerification, true},
		{`{ "code": "620" }`, CodeApproved, true}, // PHP accountants quote numbers
		{`{ "code": 42 }`, 0, false},
		{`<ipp_reply/>`, 0, false},
	} {
		rep, err := ParseReply([]byte(tt.in))
		if (err == nil) != tt.ok || (tt.ok && rep.Code != tt.code) {
			t.Errorf("ParseReply(%s) = %+v, %v; want code %d ok %v", tt.in, rep, err, tt.code, tt.ok)
		}
		if tt.code == CodeReset && (rep.Amount != "80.00" || rep.RefAmount != "100.00") {
			t.Errorf("ParseReply(reset) amounts %q %q, want 80.00 and 100.00 as written", rep.Amount, rep.RefAmount)
		}
	}
}
