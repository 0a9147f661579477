package protocol

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseDeclaration(t *testing.T) {
	base, _ := url.Parse("https://tyaga.org/")
	for _, tt := range []struct {
		page, want string
	}{
		{`<meta name="ipp_manifest" content="http://tyaga.org/manifest.php?brand=tyaga.org" />`, "http://tyaga.org/manifest.php?brand=tyaga.org"},
		{`<html><head><META NAME='IPP_MANIFEST' CONTENT='/m.json'></head>`, "https://tyaga.org/m.json"},
		{`<meta charset=utf-8><meta content="https://x.example/m?a=1&amp;b=2" name=ipp_manifest>`, "https://x.example/m?a=1&b=2"},
		{`<meta name="description" content="x">`, ""},
		{`<meta name="ipp_manifest" content="javascript:alert(1)">`, ""},
		{`<meta name="ipp_manifest" content="ftp://x.example/m">`, ""},
		{`<meta name="ipp_manifest"`, ""},
	} {
		got, err := ParseDeclaration([]byte(tt.page), base)
		var pe *ParamError
		if tt.want == "" {
			if !errors.As(err, &pe) || pe.Code != CodeManifestURL {
				t.Errorf("ParseDeclaration(%s) = %q, %v; want 702", tt.page, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDeclaration(%s) = %q, %v; want %s", tt.page, got, err, tt.want)
		}
	}
}

func TestParseManifest(t *testing.T) {
	for _, tt := range []struct {
		body string
		ok   bool
	}{
		{`{"ipp_version":"0.1","brand":"b.example","accountants":["https://a.example/ipp"]}`, true},
		{`{"accountants":["http://a.example/ipp"],"keyCert":["https://a.example/c.pem"],"reports":["https://a.example/r"]}`, true},
		{`{"accountants":[]}`, false},
		{`{"accountants":["/relative"]}`, false},
		{`{"accountants":["https://a.example"],"brand":"other.example"}`, false},
		{`{"accountants":["https://a.example"],"ipp_version":"9"}`, false},
		{`not json`, false},
	} {
		_, err := ParseManifest([]byte(tt.body), "b.example")
		var pe *ParamError
		if tt.ok != (err == nil) || (err != nil && (!errors.As(err, &pe) || pe.Code != CodeManifestNotFound)) {
			t.Errorf("ParseManifest(%s) = %v, want ok %v (else 701)", tt.body, err, tt.ok)
		}
	}
}

// brandSite is a brand's real HTTPS site: page, manifest, certificate and
// an accountant answering verification queries.
type brandSite struct {
	srv      *httptest.Server
	brand    string
	key      *rsa.PrivateKey
	certPEM  []byte
	mu       sync.Mutex
	page     string
	manifest string
	maxAge   string
	hits     map[string]int
	records  map[string]QueryReply
}

func newBrandSite(t *testing.T, notAfter time.Time) *brandSite {
	t.Helper()
	s := &brandSite{hits: map[string]int{}, records: map[string]QueryReply{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits[r.URL.Path]++
		switch r.URL.Path {
		case "/shop":
			w.Write([]byte(s.page))
		case "/shop/manifest.json":
			if s.maxAge != "" {
				w.Header().Set("Cache-Control", s.maxAge)
			}
			w.Write([]byte(s.manifest))
		case "/shop/cert.pem":
			w.Write(s.certPEM)
		case "/shop/acct":
			q, ok := s.records[r.URL.Query().Get("ver_query")]
			if !ok {
				w.WriteHeader(404)
				json.NewEncoder(w).Encode(QueryReply{Code: CodeVerification})
				return
			}
			json.NewEncoder(w).Encode(q)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	s.brand = strings.TrimPrefix(s.srv.URL, "https://") + "/shop"
	s.key, s.certPEM = testCert(t, s.brand, notAfter)
	s.page = `<html><head><meta name="ipp_manifest" content="` + s.srv.URL + `/shop/manifest.json"></head></html>`
	s.manifest = `{"ipp_version":"0.1","brand":"` + s.brand + `","accountants":["` + s.srv.URL + `/shop/acct"],"keyCert":["` + s.srv.URL + `/shop/cert.pem"]}`
	return s
}

// testCert makes an RSA key and a self-signed certificate valid until
// notAfter.
func testCert(t *testing.T, cn string, notAfter time.Time) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (s *brandSite) set(f func(s *brandSite)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *brandSite) hit(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *brandSite) offer(t *testing.T) *Notification {
	t.Helper()
	v := offer()
	v.Set("from", s.brand)
	n, err := FromValues(v)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDirectoryCachesWithExpiry(t *testing.T) {
	s := newBrandSite(t, time.Now().Add(time.Hour))
	now := time.Now()
	d := &Directory{Client: s.srv.Client(), TTL: 10 * time.Minute, Now: func() time.Time { return now }}
	for range 3 {
		if _, err := d.Manifest(t.Context(), s.brand); err != nil {
			t.Fatalf("Manifest(%s) = %v", s.brand, err)
		}
	}
	if n := s.hit("/shop/manifest.json"); n != 1 {
		t.Fatalf("manifest fetched %d times for 3 lookups within its TTL, want 1", n)
	}
	now = now.Add(11 * time.Minute)
	d.Manifest(t.Context(), s.brand)
	if n := s.hit("/shop/manifest.json"); n != 2 {
		t.Fatalf("manifest fetched %d times after its TTL, want 2", n)
	}
	// The manifest's own max-age, when shorter, wins.
	s.set(func(s *brandSite) { s.maxAge = "max-age=60" })
	now = now.Add(11 * time.Minute)
	d.Manifest(t.Context(), s.brand)
	now = now.Add(61 * time.Second)
	d.Manifest(t.Context(), s.brand)
	if n := s.hit("/shop/manifest.json"); n != 4 {
		t.Fatalf("manifest fetched %d times, want 4 (max-age=60 honoured)", n)
	}
}

func TestDirectoryErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(s *brandSite)
		code Code
	}{
		{"no declaration", func(s *brandSite) { s.page = "<html></html>" }, CodeManifestURL},
		{"manifest 404", func(s *brandSite) { s.page = `<meta name="ipp_manifest" content="/nothing">` }, CodeManifestNotFound},
		{"manifest not JSON", func(s *brandSite) { s.manifest = "<xml/>" }, CodeManifestNotFound},
		{"manifest without accountants", func(s *brandSite) { s.manifest = `{"ipp_version":"0.1"}` }, CodeManifestNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newBrandSite(t, time.Now().Add(time.Hour))
			s.set(tt.edit)
			_, err := (&Directory{Client: s.srv.Client()}).Manifest(t.Context(), s.brand)
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("Manifest = %v, want %d", err, tt.code)
			}
		})
	}
	t.Run("brand unreachable", func(t *testing.T) {
		s := newBrandSite(t, time.Now().Add(time.Hour))
		s.srv.Close()
		_, err := (&Directory{Client: s.srv.Client()}).Manifest(t.Context(), s.brand)
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Code != CodeManifestURL {
			t.Fatalf("Manifest(closed site) = %v, want 702", err)
		}
	})
}

func TestVerify(t *testing.T) {
	type setup struct {
		site *brandSite
		n    *Notification
	}
	for _, tt := range []struct {
		name string
		prep func(t *testing.T, s *setup)
		code Code // 0: verified
	}{
		{"rsa", func(t *testing.T, s *setup) { sign(t, s.site.key, s.n) }, 0},
		{"rsa forged by another key", func(t *testing.T, s *setup) {
			other, _ := testCert(t, "x", time.Now().Add(time.Hour))
			sign(t, other, s.n)
		}, CodeVerification},
		{"rsa record changed after signing", func(t *testing.T, s *setup) { sign(t, s.site.key, s.n); s.n.Amount = "1000.00" }, CodeVerification},
		{"rsa ver_data not base64", func(t *testing.T, s *setup) { s.n.Scheme, s.n.VerData = SchemeRSA, "!!" }, CodeVerification},
		{"rsa without keyCert", func(t *testing.T, s *setup) {
			sign(t, s.site.key, s.n)
			s.site.set(func(b *brandSite) {
				b.manifest = `{"accountants":["` + b.srv.URL + `/shop/acct"]}`
			})
		}, CodeSchemeDependency},
		{"rsa with a garbled certificate", func(t *testing.T, s *setup) {
			sign(t, s.site.key, s.n)
			s.site.set(func(b *brandSite) {
				b.certPEM = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
			})
		}, CodeSchemeDependency},
		{"query", func(t *testing.T, s *setup) { s.n.Scheme, s.n.VerData = SchemeQuery, s.n.SHA1(); s.site.keep(s.n) }, 0},
		{"query without ver_data", func(t *testing.T, s *setup) { s.n.Scheme = SchemeQuery; s.site.keep(s.n) }, 0},
		{"query wrong ver_data", func(t *testing.T, s *setup) {
			s.n.Scheme, s.n.VerData = SchemeQuery, strings.Repeat("0", 40)
			s.site.keep(s.n)
		}, CodeVerification},
		{"query unknown record", func(t *testing.T, s *setup) { s.n.Scheme = SchemeQuery }, CodeVerification},
		{"query other status", func(t *testing.T, s *setup) {
			s.n.Scheme = SchemeQuery
			s.site.keep(s.n)
			s.site.set(func(b *brandSite) {
				q := b.records[s.n.SHA1()]
				q.Code = CodeVoided
				b.records[s.n.SHA1()] = q
			})
		}, CodeVerification},
		{"query accountant down", func(t *testing.T, s *setup) {
			s.n.Scheme = SchemeQuery
			s.site.set(func(b *brandSite) {
				b.manifest = `{"accountants":["https://127.0.0.1:1/acct"]}`
			})
		}, CodeServerError},
		{"unknown scheme", func(t *testing.T, s *setup) { s.n.Scheme = "https://example.com/pgp.html" }, CodeSchemeUnsupported},
		{"scheme the manifest does not list", func(t *testing.T, s *setup) {
			sign(t, s.site.key, s.n)
			s.site.set(func(b *brandSite) {
				b.manifest = `{"accountants":["` + b.srv.URL + `/shop/acct"],"ver_schemes":["` + SchemeQuery + `"]}`
			})
		}, CodeSchemeUnsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			site := newBrandSite(t, time.Now().Add(time.Hour))
			s := &setup{site: site, n: site.offer(t)}
			tt.prep(t, s)
			ev, err := Verifier{Dir: &Directory{Client: site.srv.Client()}}.Verify(t.Context(), s.n, site.brand)
			if tt.code == 0 {
				if err != nil || ev == nil || ev.Scheme != s.n.Scheme {
					t.Fatalf("Verify = %v, %v; want verified", ev, err)
				}
				return
			}
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("Verify = %v, want %d", err, tt.code)
			}
		})
	}
	t.Run("expired certificate", func(t *testing.T) {
		site := newBrandSite(t, time.Now().Add(-time.Minute))
		n := site.offer(t)
		sign(t, site.key, n)
		_, err := Verifier{Dir: &Directory{Client: site.srv.Client()}}.Verify(t.Context(), n, site.brand)
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Code != CodeSchemeDependency {
			t.Fatalf("Verify(expired certificate) = %v, want 703", err)
		}
	})
}

func sign(t *testing.T, key *rsa.PrivateKey, n *Notification) {
	t.Helper()
	if err := (Signer{Key: key}).Sign(n); err != nil {
		t.Fatal(err)
	}
}

func (s *brandSite) keep(n *Notification) {
	s.set(func(b *brandSite) {
		b.records[n.SHA1()] = QueryReply{Code: n.Code, Status: n.Status, Record: n.Canonical()}
	})
}

// TestVerifyAfterKeyRotation: a brand that rotated its key is verified
// against its new certificate once the cached one is 30 s old; a younger
// cache is not refetched (forgeries cannot make the verifier fetch at
// will).
func TestVerifyAfterKeyRotation(t *testing.T) {
	site := newBrandSite(t, time.Now().Add(time.Hour))
	now := time.Now()
	d := &Directory{Client: site.srv.Client(), Now: func() time.Time { return now }}
	n := site.offer(t)
	sign(t, site.key, n)
	if _, err := (Verifier{Dir: d}).Verify(t.Context(), n, site.brand); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	key, cert := testCert(t, site.brand, time.Now().Add(time.Hour))
	site.set(func(s *brandSite) { s.key, s.certPEM = key, cert })
	m := site.offer(t)
	m.Memo = "after rotation"
	sign(t, key, m)
	now = now.Add(10 * time.Second)
	if _, err := (Verifier{Dir: d}).Verify(t.Context(), m, site.brand); err == nil {
		t.Fatal("Verify with a 10 s old cache refetched it, want the cached certificate used")
	}
	now = now.Add(30 * time.Second)
	if _, err := (Verifier{Dir: d}).Verify(t.Context(), m, site.brand); err != nil {
		t.Fatalf("Verify after the rotation with a 40 s old cache = %v, want verified against the new certificate", err)
	}
	if got := site.hit("/shop/manifest.json"); got != 2 {
		t.Fatalf("manifest fetched %d times, want 2", got)
	}
}
