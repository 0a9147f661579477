package protocol

import (
	"net/url"
	"testing"
)

func FuzzParseNotification(f *testing.F) {
	f.Add([]byte(offer().Encode()))
	f.Add([]byte("ipp_version=0.1&ipp_code=640&ipp_status=Approved+As-Is&ver_scheme=http://x.org/a&xtime=1&amount=80.00&unit=USD&from=a.org&to=b.org&ref_amount=100.00"))
	f.Add([]byte("amount=-1&ref_xtime=1&ref_amount=1&%zz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseNotification(b)
		if err != nil {
			return
		}
		again, err := ParseNotification([]byte(n.Encode()))
		if err != nil {
			t.Fatalf("ParseNotification(Encode(%q)) = %v, want it taken again", b, err)
		}
		if again.Canonical() != n.Canonical() || again.SHA1() != n.SHA1() {
			t.Fatalf("round trip changed the record: %s vs %s", again.Canonical(), n.Canonical())
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"ipp_version":"0.1","brand":"b.example","accountants":["https://a.example/ipp"],"keyCert":["https://a.example/c"]}`))
	f.Add([]byte(`{"accountants":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b, "b.example")
		if err == nil && len(m.Accountants) == 0 {
			t.Fatalf("ParseManifest(%q) took a manifest without accountants", b)
		}
	})
}

func FuzzParseDeclaration(f *testing.F) {
	f.Add([]byte(`<meta name="ipp_manifest" content="http://tyaga.org/manifest.php?brand=tyaga.org" />`))
	f.Add([]byte(`<META content=/m name=IPP_MANIFEST`))
	base, _ := url.Parse("https://b.example/shop")
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseDeclaration(b, base)
		if err == nil && !httpURL(u) {
			t.Fatalf("ParseDeclaration(%q) = %q, not an http(s) URL", b, u)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	f.Add([]byte(`{ "code":640, "status":"Reset", "amount":80.00, "ver_scheme": "x", "ver_data": "y", "ref_amount": 100.00, "data": "ipp_version=0.1" }`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ParseReply(b)
		if err != nil {
			return
		}
		if rep.Code < 600 || rep.Code > 999 {
			t.Fatalf("ParseReply(%q) took code %d", b, rep.Code)
		}
		rep.Decision() // must not panic
	})
}
