package protocol

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Manifest is a brand's IPP manifest (section 2). The seed names its
// sections but not its format; the rail's is JSON (docs/ipp.md):
//
//	{"ipp_version": "0.1", "brand": "shop.example",
//	 "accountants": ["https://…"], "keyCert": ["https://…/cert.pem"],
//	 "reports": ["https://…"], "ver_schemes": ["http://tyaga.org/ipp/…"]}
type Manifest struct {
	Version     string   `json:"ipp_version"`
	Brand       string   `json:"brand,omitempty"`
	Accountants []string `json:"accountants"`
	KeyCert     []string `json:"keyCert,omitempty"`
	Reports     []string `json:"reports,omitempty"`
	// Schemes are the ver_schemes the brand's accountants speak; none
	// listed means the brand does not say.
	Schemes []string `json:"ver_schemes,omitempty"`
}

// ParseManifest reads and validates a manifest for brand: the version,
// at least one accountant, every URL absolute http(s), and the brand, when
// the manifest names one, the brand it was fetched for. Errors carry code
// 701.
func ParseManifest(b []byte, brand string) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, manifestErr(CodeManifestNotFound, "manifest of %s is not JSON: %v", brand, err)
	}
	if m.Version != "" && m.Version != Version {
		return nil, manifestErr(CodeManifestNotFound, "manifest of %s has ipp_version %q, want %s", brand, m.Version, Version)
	}
	if m.Brand != "" && m.Brand != brand {
		return nil, manifestErr(CodeManifestNotFound, "manifest fetched for %s names brand %s", brand, m.Brand)
	}
	if len(m.Accountants) == 0 || len(m.Accountants)+len(m.KeyCert)+len(m.Reports) > 32 {
		return nil, manifestErr(CodeManifestNotFound, "manifest of %s names no accountant (or more than 32 URLs)", brand)
	}
	for _, list := range [][]string{m.Accountants, m.KeyCert, m.Reports} {
		for _, u := range list {
			if !httpURL(u) {
				return nil, manifestErr(CodeManifestNotFound, "manifest of %s: %q is not an absolute http(s) URL", brand, u)
			}
		}
	}
	return &m, nil
}

// Speaks reports whether the manifest admits scheme (a manifest listing
// none admits any).
func (m *Manifest) Speaks(scheme string) bool {
	if len(m.Schemes) == 0 {
		return true
	}
	for _, s := range m.Schemes {
		if s == scheme {
			return true
		}
	}
	return false
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && len(s) <= 2048
}

func manifestErr(c Code, format string, a ...any) *ParamError {
	return &ParamError{Code: c, Msg: fmt.Sprintf(format, a...)}
}

// ParseDeclaration finds the manifest URL a brand's page declares
// (section 1): the content of the first <meta name="ipp_manifest">,
// resolved against the page's URL. Errors carry code 702.
func ParseDeclaration(page []byte, base *url.URL) (string, error) {
	s := string(page)
	lower := strings.ToLower(s)
	for i := 0; ; {
		j := strings.Index(lower[i:], "<meta")
		if j < 0 {
			return "", manifestErr(CodeManifestURL, "page %s declares no ipp_manifest", base)
		}
		i += j + len("<meta")
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			return "", manifestErr(CodeManifestURL, "page %s has an unterminated meta tag", base)
		}
		attrs := parseAttrs(s[i : i+end])
		i += end
		if !strings.EqualFold(attrs["name"], "ipp_manifest") {
			continue
		}
		u, err := base.Parse(strings.TrimSpace(attrs["content"]))
		if err != nil || !httpURL(u.String()) {
			return "", manifestErr(CodeManifestURL, "page %s declares ipp_manifest %q: not an http(s) URL", base, attrs["content"])
		}
		return u.String(), nil
	}
}

// parseAttrs reads a tag's attributes (name=value, quoted or not); names
// lowercase, values with HTML entities decoded.
func parseAttrs(s string) map[string]string {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\r\n/")
		if s == "" {
			return out
		}
		n := strings.IndexAny(s, "= \t\r\n/")
		if n < 0 {
			out[strings.ToLower(s)] = ""
			return out
		}
		name := strings.ToLower(s[:n])
		s = strings.TrimLeft(s[n:], " \t\r\n")
		if !strings.HasPrefix(s, "=") {
			if name != "" {
				out[name] = ""
			} else {
				s = s[1:]
			}
			continue
		}
		s = strings.TrimLeft(s[1:], " \t\r\n")
		var val string
		if s != "" && (s[0] == '"' || s[0] == '\'') {
			q := s[0]
			e := strings.IndexByte(s[1:], q)
			if e < 0 {
				val, s = s[1:], ""
			} else {
				val, s = s[1:1+e], s[2+e:]
			}
		} else {
			e := strings.IndexAny(s, " \t\r\n")
			if e < 0 {
				e = len(s)
			}
			val, s = s[:e], s[e:]
		}
		if _, dup := out[name]; !dup && name != "" {
			out[name] = html.UnescapeString(val)
		}
	}
}

// Directory discovers brands' manifests and caches them, with their key
// certificates, until they expire.
type Directory struct {
	// Client fetches pages, manifests and certificates.
	Client *http.Client
	// Scheme is how a brand's page is reached: "https" (default) or
	// "http".
	Scheme string
	// TTL bounds how long a manifest is kept: the manifest's own
	// Cache-Control max-age when shorter. Default 10 minutes.
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*dirEntry
	fetches int
}

type dirEntry struct {
	m       *Manifest
	cert    *x509.Certificate
	fetched time.Time
	expires time.Time
}

// minRefresh is how old a cached manifest must be before a failed
// verification refetches it: a brand that rotated its key is seen at once,
// and forged notifications cannot make the switch refetch at will.
const minRefresh = 30 * time.Second

// Stale drops brand's cached manifest if it was fetched at least 30 s
// ago, and reports whether it did: a verification that failed against it
// may then be tried once more against a fresh copy.
func (d *Directory) Stale(brand string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[brand]
	if e == nil || d.now().Sub(e.fetched) < minRefresh {
		return false
	}
	delete(d.entries, brand)
	return true
}

// Fetches counts the manifests fetched (not served from the cache).
func (d *Directory) Fetches() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fetches
}

// Forget drops brand's cached manifest.
func (d *Directory) Forget(brand string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.entries, brand)
}

func (d *Directory) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Manifest returns brand's manifest, from the cache while it is fresh.
// Errors are *ParamError with 701 or 702.
func (d *Directory) Manifest(ctx context.Context, brand string) (*Manifest, error) {
	e, err := d.entry(ctx, brand)
	if err != nil {
		return nil, err
	}
	return e.m, nil
}

func (d *Directory) entry(ctx context.Context, brand string) (*dirEntry, error) {
	d.mu.Lock()
	e := d.entries[brand]
	d.mu.Unlock()
	if e != nil && d.now().Before(e.expires) {
		return e, nil
	}
	scheme := d.Scheme
	if scheme == "" {
		scheme = "https"
	}
	page, err := url.Parse(scheme + "://" + brand)
	if err != nil || !ValidBrand(brand) {
		return nil, manifestErr(CodeManifestURL, "%q is not a brand", brand)
	}
	body, _, err := d.get(ctx, page.String(), 64<<10)
	if err != nil {
		return nil, manifestErr(CodeManifestURL, "fetching the page of %s: %v", brand, err)
	}
	mURL, err := ParseDeclaration(body, page)
	if err != nil {
		return nil, err
	}
	body, hdr, err := d.get(ctx, mURL, 64<<10)
	if err != nil {
		return nil, manifestErr(CodeManifestNotFound, "fetching manifest %s: %v", mURL, err)
	}
	m, err := ParseManifest(body, brand)
	if err != nil {
		return nil, err
	}
	ttl := d.TTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	if age, ok := maxAge(hdr.Get("Cache-Control")); ok && age < ttl {
		ttl = age
	}
	e = &dirEntry{m: m, fetched: d.now(), expires: d.now().Add(ttl)}
	d.mu.Lock()
	if d.entries == nil {
		d.entries = map[string]*dirEntry{}
	}
	d.entries[brand] = e
	d.fetches++
	d.mu.Unlock()
	return e, nil
}

// Certificate returns the X.509 certificate brand's manifest points to
// (its first keyCert, PEM or DER), valid now. Errors carry 701/702 (the
// manifest) or 703 (no certificate, unreadable, or not valid now).
func (d *Directory) Certificate(ctx context.Context, brand string) (*x509.Certificate, error) {
	e, err := d.entry(ctx, brand)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	c := e.cert
	d.mu.Unlock()
	if c == nil {
		if len(e.m.KeyCert) == 0 {
			return nil, manifestErr(CodeSchemeDependency, "manifest of %s names no keyCert", brand)
		}
		body, _, err := d.get(ctx, e.m.KeyCert[0], 64<<10)
		if err != nil {
			return nil, manifestErr(CodeSchemeDependency, "fetching the certificate of %s: %v", brand, err)
		}
		if b, _ := pem.Decode(body); b != nil {
			body = b.Bytes
		}
		if c, err = x509.ParseCertificate(body); err != nil {
			return nil, manifestErr(CodeSchemeDependency, "certificate of %s: %v", brand, err)
		}
		d.mu.Lock()
		e.cert = c
		d.mu.Unlock()
	}
	if now := d.now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, manifestErr(CodeSchemeDependency, "certificate of %s is valid from %s to %s, not now", brand, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	return c, nil
}

func (d *Directory) get(ctx context.Context, u string, limit int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s answered %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, nil, fmt.Errorf("%s is longer than %d bytes", u, limit)
	}
	return b, resp.Header, nil
}

// maxAge reads Cache-Control's max-age (no-store and no-cache as 0).
func maxAge(cc string) (time.Duration, bool) {
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if d == "no-store" || d == "no-cache" {
			return 0, true
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second, true
			}
		}
	}
	return 0, false
}
