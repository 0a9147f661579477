// Package ipp is the rail of the Inter-Entity Payment Protocol (seed 004):
// the switch is an IPP accountant for its retailers' brands. Each retailer
// is published as a brand (a page declaring its manifest, the manifest
// naming the switch's accountant endpoint, its certificate and reports);
// a QR code offered on the rail carries the brand and a one-time relay,
// and the payer's accountant pays it by notifying the switch of an offer
// for that relay. The switch verifies the offer before acting on it (query
// verification at the notifier's accountant or an RSA signature checked
// against the brand's certificate, both found through the notifier's
// manifest, discovered and cached), approves the held POS payment
// (Host.Paid) and answers with the code table of section 9. A POS reversal
// of a paid code becomes a reversal offer (a negative amount) sent to the
// payer's accountant, repeated through the store-and-forward queue while
// the answer is recoverable. Mutually approved records are served to
// auditors on a reports endpoint with their verification evidence.
//
// The wire protocol is package protocol; the counterpart accountant's
// simulator is package ippsim. Everything the rail keeps (relays, payment
// records, its own records for verification queries) is its records in the
// switch's store. Decisions where the seed is silent are in docs/ipp.md.
package ipp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ipp/ippsim"
	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
	"github.com/qrswitch/qrswitch/qr"
)

// Name is the rail's registered name.
const Name = "ipp"

func init() { partners.Register(Name, New) }

// GUID is the provider id of the rail's merchant-account template: sub-tag
// 01 holds the retailer's brand, 02 the code's one-time relay.
const GUID = "org.tyaga.ipp"

// Options are the rail's own keys (a partner's `options:`).
type Options struct {
	// Currency is the ISO 4217 numeric code of the codes the rail takes;
	// its alphabetic code is the IPP unit. Required.
	Currency string `yaml:"currency"`
	// KeyFile and CertFile are the PEM RSA private key and X.509
	// certificate the switch signs its records with (ver_scheme
	// xotaur-sha1-rsa) and publishes in its brands' manifests. Neither:
	// the switch uses query verification only.
	KeyFile  string `yaml:"key_file"`
	CertFile string `yaml:"cert_file"`
	// BrandScheme is how other brands' pages are fetched: "https"
	// (default) or "http" (development only).
	BrandScheme string `yaml:"brand_scheme"`
	// PrivateBrands lets other brands' pages, manifests, certificates and
	// accountants be on loopback and private addresses. Off by default (on
	// in development): a notification names the brand whose URLs the
	// switch then fetches, which must not reach into the operator's
	// network.
	PrivateBrands bool `yaml:"private_brands"`
	// ManifestTTL bounds how long another brand's manifest is cached.
	// Default 10m.
	ManifestTTL time.Duration `yaml:"manifest_ttl"`
	// MaxSkew is how far an offer's xtime may lie from the switch's clock
	// before the offer is refused as stale or replayed (804). Default 15m.
	MaxSkew time.Duration `yaml:"max_skew"`
	// Blocked are brands whose offers are voided (661).
	Blocked []string `yaml:"blocked_brands"`
	// Auditors may read the reports endpoint with a bearer token:
	// token_sha256 (hex), or token in development.
	Auditors []Auditor `yaml:"auditors"`
	// PendingInterval is how often offers answered 610 (pending) are
	// decided again and decisions due are notified. Default 1s.
	PendingInterval time.Duration `yaml:"pending_interval"`
	// SimBrandPath is the path of the brand the simulator plays under its
	// listener (default "/buyer").
	SimBrandPath string `yaml:"sim_brand_path"`
}

// Auditor is a reader of the reports endpoint.
type Auditor struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
	Token       string `yaml:"token"`
}

// Rail is the IPP accountant for one partner entry.
type Rail struct {
	id       string
	opts     Options
	exp      int
	unit     string
	prefix   string // the brands' common prefix: host[:port][/path]/ipp/{partner}/b/
	base     string // {public}/ipp/{partner}
	host     partners.Host
	records  partners.Records
	client   *http.Client
	dir      *protocol.Directory
	signer   protocol.Signer
	certPEM  []byte
	auditors map[[sha256.Size]byte]string
	blocked  map[string]bool
	log      zerolog.Logger
	now      func() time.Time

	stop context.CancelFunc
	done chan struct{}
}

// New builds the rail for one partner.
func New(c partners.Config) (partners.Rail, error) {
	var o Options
	if err := partners.DecodeOptions(c.Options, &o); err != nil {
		return nil, err
	}
	exp, ok := qr.CurrencyExponent(o.Currency)
	if !ok {
		return nil, fmt.Errorf("options.currency %q: want an ISO 4217 numeric code", o.Currency)
	}
	unit, _ := qr.CurrencyAlpha(o.Currency)
	switch o.BrandScheme {
	case "":
		o.BrandScheme = "https"
	case "https":
	case "http":
		if !c.Development {
			return nil, errors.New("options.brand_scheme http: only in development; brands' pages are fetched over https")
		}
	default:
		return nil, fmt.Errorf("options.brand_scheme %q: want https or http", o.BrandScheme)
	}
	if o.ManifestTTL <= 0 {
		o.ManifestTTL = 10 * time.Minute
	}
	if o.MaxSkew <= 0 {
		o.MaxSkew = 15 * time.Minute
	}
	if o.PendingInterval <= 0 {
		o.PendingInterval = time.Second
	}
	if o.SimBrandPath == "" {
		o.SimBrandPath = "/buyer"
	}
	pub, err := url.Parse(c.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("public URL %q: the rail publishes its brands under it", c.PublicURL)
	}
	prefix := strings.ToLower(pub.Host + strings.TrimRight(pub.Path, "/") + "/ipp/" + c.PartnerID + "/b/")
	if !protocol.ValidBrand(prefix + "x") {
		return nil, fmt.Errorf("brands %sRETAILER are not IPP brands: the public URL and partner id must be lowercase letters, digits, '-', '.'", prefix)
	}
	// The template holds the GUID (4+13), the relay (4+16) and the brand
	// (4+len) within 99 characters; retailer ids of up to 16 must fit.
	if n := 4 + len(GUID) + 4 + relayLen + 4 + len(prefix) + 16; n > 99 {
		return nil, fmt.Errorf("brands %sRETAILER would make the QR template %d characters, over 99: shorten public_url or the partner id", prefix, n)
	}
	if c.Timeout <= 0 {
		c.Timeout = partners.DefaultTimeout
	}
	transport := c.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	if !o.PrivateBrands && !c.Development {
		transport = partners.PublicOnly(transport)
	}
	client := &http.Client{Transport: transport, Timeout: c.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r := &Rail{
		id: c.PartnerID, opts: o, exp: exp, unit: unit, prefix: prefix,
		base: strings.TrimRight(c.PublicURL, "/") + "/ipp/" + c.PartnerID,
		host: c.Host, records: c.Records, client: client, log: c.Logger, now: time.Now,
		dir:      &protocol.Directory{Client: client, Scheme: o.BrandScheme, TTL: o.ManifestTTL},
		auditors: map[[sha256.Size]byte]string{}, blocked: map[string]bool{},
	}
	if (o.KeyFile == "") != (o.CertFile == "") {
		return nil, errors.New("options.key_file and options.cert_file go together")
	}
	if o.KeyFile != "" {
		key, certPEM, err := loadKeyPair(o.KeyFile, o.CertFile)
		if err != nil {
			return nil, err
		}
		r.signer, r.certPEM = protocol.Signer{Key: key}, certPEM
	}
	for _, b := range o.Blocked {
		if !protocol.ValidBrand(b) {
			return nil, fmt.Errorf("options.blocked_brands: %q is not a brand", b)
		}
		r.blocked[b] = true
	}
	for i, a := range o.Auditors {
		var sum [sha256.Size]byte
		switch {
		case a.TokenSHA256 != "":
			b, err := hex.DecodeString(a.TokenSHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("options.auditors[%d].token_sha256: want 64 hex digits", i)
			}
			copy(sum[:], b)
		case a.Token != "" && c.Development:
			sum = sha256.Sum256([]byte(a.Token))
		case a.Token != "":
			return nil, fmt.Errorf("options.auditors[%d].token: plaintext tokens are refused in production: set token_sha256", i)
		default:
			return nil, fmt.Errorf("options.auditors[%d]: token_sha256 is required", i)
		}
		r.auditors[sum] = a.Name
	}
	return r, nil
}

// loadKeyPair reads the switch's RSA key and its certificate, and checks
// they belong together.
func loadKeyPair(keyFile, certFile string) (*rsa.PrivateKey, []byte, error) {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("options.key_file: %w", err)
	}
	blk, _ := pem.Decode(kb)
	if blk == nil {
		return nil, nil, errors.New("options.key_file: no PEM block")
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		key, _ = k.(*rsa.PrivateKey)
	} else if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
		return nil, nil, fmt.Errorf("options.key_file: %w", err)
	}
	if key == nil {
		return nil, nil, errors.New("options.key_file: not an RSA key")
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("options.cert_file: %w", err)
	}
	cblk, _ := pem.Decode(cb)
	if cblk == nil {
		return nil, nil, errors.New("options.cert_file: no PEM block")
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("options.cert_file: %w", err)
	}
	if pk, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pk.Equal(&key.PublicKey) {
		return nil, nil, errors.New("options.cert_file: the certificate is not of key_file's key")
	}
	return key, pem.EncodeToMemory(cblk), nil
}

// brandOf is a retailer's brand.
func (r *Rail) brandOf(retailer string) string { return r.prefix + strings.ToLower(retailer) }

// retailerOf returns the retailer whose brand b is, if b is one of the
// switch's.
func (r *Rail) retailerOf(b string) (string, bool) {
	rest, ok := strings.CutPrefix(b, r.prefix)
	return rest, ok && rest != "" && !strings.Contains(rest, "/")
}

const relayLen = 16

// newRelay is a one-time relay: 80 random bits, lowercase base32.
func newRelay() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// Pay declines: nobody scans for this rail; payers' accountants notify.
func (r *Rail) Pay(_ context.Context, p *partners.Payment) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Failed, Err: fmt.Errorf("the IPP rail takes no scans: %w", outcome.ErrNotSent),
		Decline: wire.Fail(400, wire.FunctionNotSupported, "Not payable by scan", p.Request.ID, p.TranID)}
}

// Confirm has nothing to send: the payment was approved when the payer's
// offer was.
func (r *Rail) Confirm(context.Context, *partners.Advice) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Successful, Code: "IPP nothing to confirm"}
}

// Reverse is never asked of this rail for money that arrived (that is a
// Refund); for a payment it never saw, there is nothing to undo.
func (r *Rail) Reverse(context.Context, *partners.Advice) *partners.Answer {
	return &partners.Answer{Outcome: outcome.Successful, Code: "IPP nothing to reverse"}
}

// Routes is the rail's surface under /ipp/{partner}: each retailer's
// brand page and manifest, the switch's certificate, the accountant
// endpoint (notifications in, verification queries about the switch's own
// records), and the auditors' reports. IPP authenticates by verification,
// which the rail does.
func (r *Rail) Routes() []partners.Route {
	p := "/ipp/" + r.id
	route := func(method, path string, h http.HandlerFunc) partners.Route {
		return partners.Route{Method: method, Path: p + path, Auth: partners.AuthRail, Handler: h}
	}
	return []partners.Route{
		route(http.MethodGet, "/b/{retailer}", r.brandPage),
		route(http.MethodGet, "/b/{retailer}/manifest.json", r.manifest),
		route(http.MethodGet, "/cert.pem", r.cert),
		route(http.MethodPost, "/accountant", r.notify),
		route(http.MethodGet, "/accountant", r.query),
		route(http.MethodGet, "/reports", r.reports),
	}
}

// Simulator builds the counterpart accountant: a payer's brand, with its
// page, manifest, accountant and (RSA) certificate, that pays the
// switch's codes and answers its reversal offers.
func (r *Rail) Simulator(env partners.SimEnv) (partners.Simulator, error) {
	base := "https://" + env.Listen
	sim, err := ippsim.New(ippsim.Config{
		Brand: strings.ToLower(env.Listen) + r.opts.SimBrandPath, BaseURL: base + r.opts.SimBrandPath,
		SwitchTLS: env.SwitchTLS, Unit: r.unit, RSA: true,
	})
	if err != nil {
		return nil, err
	}
	return &simulator{Sim: sim, base: base, path: r.opts.SimBrandPath, rail: r}, nil
}

type simulator struct {
	*ippsim.Sim
	base, path string
	rail       *Rail
}

func (s *simulator) Close() error { s.Sim.Close(); return nil }
func (s *simulator) Describe() map[string]any {
	return map[string]any{
		"url":        s.base,
		"brand":      s.Brand(),
		"manifest":   s.base + s.path + "/manifest.json",
		"accountant": s.base + s.path + "/accountant",
		"pay":        s.base + "/sim/v1/pay",
		"faults":     s.base + "/sim/v1/faults",
		"received":   s.base + "/sim/v1/received",
		// The switch's side: a retailer's brand, its page, and the reports.
		"switchBrand":     s.rail.prefix + "{retailer}",
		"switchBrandPage": s.rail.base + "/b/{retailer}",
		"switchReports":   s.rail.base + "/reports",
	}
}

// Interface guards
var (
	_ partners.Rail      = (*Rail)(nil)
	_ partners.Offerer   = (*Rail)(nil)
	_ partners.Refunder  = (*Rail)(nil)
	_ partners.Surface   = (*Rail)(nil)
	_ partners.Simulated = (*Rail)(nil)
	_ partners.Starter   = (*Rail)(nil)
)

// authAuditor returns the auditor whose bearer token req carries.
func (r *Rail) authAuditor(req *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(tok))
	for k, name := range r.auditors {
		if subtle.ConstantTimeCompare(k[:], sum[:]) == 1 {
			return name, true
		}
	}
	return "", false
}
