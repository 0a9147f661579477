package config

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/internal/memlimit"
)

const (
	// minProductionCost is the least bcrypt cost production accepts: below
	// it a leaked hash is cheap to crack.
	minProductionCost = bcrypt.DefaultCost
	maxWorkers        = 1024
	maxPartnerTimeout = Duration(5 * time.Minute)
	// minPartnerWindow is what the scan wait must leave of the retailer's
	// timeout: the partner's answer to a scan in the wait's last moment.
	minPartnerWindow = Duration(10 * time.Second)
	maxWaitReplicas  = 16
	maxWaitTimeout   = Duration(10 * time.Second)
)

// devRailSecrets are the well-known secrets in the development setup's
// rail options: a production configuration copied from it must not carry
// them.
var devRailSecrets = []string{DevILPDFSPPassword, DevOPPeerToken, DevIPPAuditorToken, DevChainXPub}

// devSecretIn returns the key path under n of a scalar holding one of
// devRailSecrets or a development password, or "".
func devSecretIn(n *yaml.Node, path string) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if slices.Contains(devRailSecrets, n.Value) || slices.Contains(devPasswords, n.Value) {
			return strings.TrimPrefix(path, ".")
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := devSecretIn(n.Content[i+1], path+"."+n.Content[i].Value); k != "" {
				return k
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if k := devSecretIn(c, fmt.Sprintf("%s[%d]", path, i)); k != "" {
				return k
			}
		}
	}
	return ""
}

// devPasswords are the well-known passwords of the development setup.
// Production refuses any credential that matches one of them.
var devPasswords = []string{DevRetailerPassword, DevShopPassword, DevPartnerPassword, DevPartnerScanPassword, DevSupportPassword}

// Problem is one reason a configuration is refused.
type Problem struct {
	// Path is the key as written in YAML, e.g. partners[1].base_url.
	Path string
	// Msg says what is wrong and, where it helps, what to do.
	Msg string
}

// String formats the problem as "path: message".
func (p Problem) String() string { return p.Path + ": " + p.Msg }

// ValidationError lists every problem found in a configuration, not just
// the first, so an operator fixes them in one pass.
type ValidationError struct {
	// Problems are in the order of the keys in the file.
	Problems []Problem
}

// Error lists the problems one per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Validate checks a configuration whose defaults are filled in and returns
// a *ValidationError listing every problem, or nil. In production it also
// compares every password hash with the four development passwords, a few
// hundred milliseconds of CPU per hash at cost 10: call it at start-up, not
// per request.
func (c *Config) Validate() error {
	v := &validator{prod: c.Production(), usernames: make(map[string]string)}
	v.top(c)
	v.retailers(c.Retailers)
	v.partners(c.Partners)
	v.offers(c)
	v.checkoutListener(c)
	v.clientCerts(c)
	v.support(c.Support)
	v.devCredentials()
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct {
	prod     bool
	problems []Problem
	// usernames maps every Basic-auth identity to the key that first
	// claimed it: one identity must never be two principals.
	usernames map[string]string
	// hashes are the password hashes to compare with devPasswords.
	hashes []hashed
}

type hashed struct{ path, hash string }

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) top(c *Config) {
	if c.Env != EnvDevelopment && c.Env != EnvProduction {
		v.add("env", "must be %q or %q, got %q", EnvDevelopment, EnvProduction, c.Env)
	}
	if v.prod && c.Development {
		v.add("env", "production refuses the built-in development setup (no config file was given): start with a config file")
	}
	v.hostPort("listen", c.Listen)
	v.hostPort("admin_listen", c.AdminListen)
	if c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		v.add("admin_listen", "must differ from listen (%s)", c.Listen)
	}
	if c.PublicURL != "" {
		v.baseURL("public_url", c.PublicURL)
	}
	if c.DataDir == "" {
		v.add("data_dir", "must not be empty")
	}
	for i, p := range c.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				v.add(fmt.Sprintf("trusted_proxies[%d]", i), "must be an IP address or a CIDR such as 10.0.0.0/8, got %q", p)
			}
		}
	}
	v.tls(c.TLS)
	v.store(c.Store)
	v.positive("retailer_timeout", c.RetailerTimeout)
	v.positive("scan_wait", c.ScanWait)
	if c.ScanWait > 0 && c.RetailerTimeout > 0 && c.ScanWait > c.RetailerTimeout-minPartnerWindow {
		v.add("scan_wait", "must leave at least %s of retailer_timeout (%s) for the partner's answer, got %s: a POS must always hear back in time",
			minPartnerWindow, c.RetailerTimeout, c.ScanWait)
	}
	if c.EarlyScanGrace.Duration < 0 {
		v.add("early_scan_grace", "must be 0s (off) or more, got %s", c.EarlyScanGrace.Duration)
	}
	v.positive("advice_deadline", c.AdviceDeadline)
	v.positive("qr_ttl", c.QRTTL)
	if _, err := memlimit.Parse(c.MemoryLimit); err != nil {
		v.add("memory_limit", "must be auto, off or a size such as 300MiB: %v", err)
	}
	v.saf(c.SAF)
}

func (v *validator) hostPort(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, "must be host:port, e.g. 127.0.0.1:8443, got %q", addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		v.add(path, "port must be a number from 0 to 65535, got %q", port)
	}
}

func (v *validator) tls(t TLS) {
	v.positive("tls.reload_interval", t.ReloadInterval)
	const fallback = "without it the switch falls back to a self-signed development certificate"
	switch {
	case v.prod:
		if t.CertFile == "" {
			v.add("tls.cert_file", "required in production: %s", fallback)
		}
		if t.KeyFile == "" {
			v.add("tls.key_file", "required in production: %s", fallback)
		}
	case t.CertFile != "" && t.KeyFile == "":
		v.add("tls.key_file", "required when tls.cert_file is set")
	case t.CertFile == "" && t.KeyFile != "":
		v.add("tls.cert_file", "required when tls.key_file is set")
	}
}

func (v *validator) store(s Store) {
	v.storeURL(s.URL)
	v.positive("store.retention", s.Retention)
	if v.positive("store.wait_timeout", s.WaitTimeout) && s.WaitTimeout > maxWaitTimeout {
		v.add("store.wait_timeout", "must be at most %s (every write waits up to it), got %s", maxWaitTimeout, s.WaitTimeout)
	}
	switch {
	case s.WaitReplicas < 0 || s.WaitReplicas > maxWaitReplicas:
		v.add("store.wait_replicas", "must be from 0 to %d, got %d", maxWaitReplicas, s.WaitReplicas)
	case s.WaitReplicas > 0 && strings.HasPrefix(s.URL, "sqlite:"):
		v.add("store.wait_replicas", "needs a Redis store (redis://, rediss://, redis+sentinel://, redis+cluster://): the embedded store has no replicas")
	}
}

// storeURL checks the scheme and the shape every backend needs; the backend
// parses the rest. Messages never echo the URL, which may hold a password.
func (v *validator) storeURL(s string) {
	const path = "store.url"
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		v.add(path, "must be a URL such as sqlite://./var/qrswitch.db or redis://host:6379/0")
		return
	}
	switch scheme {
	case "sqlite":
		if rest == "" {
			v.add(path, "sqlite:// needs a database file, e.g. sqlite://./var/qrswitch.db")
		}
	case "redis", "rediss", "redis+sentinel", "redis+cluster", "rediss+cluster":
		u, err := url.Parse(s)
		switch {
		case err != nil:
			v.add(path, "is not a valid URL: %v", errors.Unwrap(err))
		case u.Host == "":
			v.add(path, "%s:// needs a host, e.g. %s://host:6379/0", scheme, scheme)
		}
	default:
		v.add(path, "scheme %q is not supported: use sqlite://, redis://, rediss://, redis+sentinel:// or redis+cluster://", scheme)
	}
}

func (v *validator) positive(path string, d Duration) bool {
	if d <= 0 {
		v.add(path, "must be greater than 0, got %s", d)
		return false
	}
	return true
}

func (v *validator) saf(s SAF) {
	initial := v.positive("saf.initial_interval", s.InitialInterval)
	maximum := v.positive("saf.max_interval", s.MaxInterval)
	giveUp := v.positive("saf.give_up_after", s.GiveUpAfter)
	if initial && maximum && s.MaxInterval < s.InitialInterval {
		v.add("saf.max_interval", "must be at least saf.initial_interval (%s), got %s", s.InitialInterval, s.MaxInterval)
	}
	if maximum && giveUp && s.GiveUpAfter <= s.MaxInterval {
		v.add("saf.give_up_after", "must be longer than saf.max_interval (%s), got %s", s.MaxInterval, s.GiveUpAfter)
	}
	if s.Workers < 1 || s.Workers > maxWorkers {
		v.add("saf.workers", "must be from 1 to %d, got %d", maxWorkers, s.Workers)
	}
}

func (v *validator) retailers(rs []Retailer) {
	if len(rs) == 0 {
		v.add("retailers", "at least one retailer is required")
	}
	ids := make(map[string]string)
	for i, r := range rs {
		base := fmt.Sprintf("retailers[%d]", i)
		v.id(base+".id", r.ID, ids)
		v.username(base+".username", r.Username)
		v.credential(base, "password_hash", r.PasswordHash, "password", r.Password)
		v.checkout(base+".checkout", &r.Checkout)
	}
}

// checkout checks a retailer's web-shop checkout, when it has one.
func (v *validator) checkout(base string, c *RetailerCheckout) {
	if !c.Enabled() {
		if c.Currency != "" || c.PostbackSecret != "" {
			v.add(base+".allow", "required for a checkout: the addresses the shop's server calls from")
		}
		return
	}
	for i, a := range c.Allow {
		if net.ParseIP(a) == nil {
			if _, _, err := net.ParseCIDR(a); err != nil {
				v.add(fmt.Sprintf("%s.allow[%d]", base, i), "must be an IP address or a CIDR, got %q", a)
			}
		}
	}
	if c.Credentials != CheckoutCredentialsOptional && c.Credentials != CheckoutCredentialsRequired {
		v.add(base+".credentials", "must be %q or %q, got %q", CheckoutCredentialsOptional, CheckoutCredentialsRequired, c.Credentials)
	}
	if c.Currency == "" {
		v.add(base+".currency", "required: an ISO 4217 numeric code (710) or a token rail's currency code")
	}
	if m, ok := new(big.Rat).SetString(c.MaxAmount); !ok || m.Sign() <= 0 || strings.ContainsAny(c.MaxAmount, "eE/") {
		v.add(base+".max_amount", "must be a positive decimal such as 20999984, got %q", c.MaxAmount)
	}
	switch {
	case c.Expiry <= 0:
		v.add(base+".expiry", "must be greater than 0, got %s", c.Expiry)
	case c.Expiry > Duration(24*time.Hour):
		v.add(base+".expiry", "must be at most 24h, got %s", c.Expiry)
	}
	if len(c.PostbackSecret) < 16 {
		v.add(base+".postback_secret", "required, at least 16 characters: postbacks are signed with it (HMAC-SHA256)")
	} else if v.prod && c.PostbackSecret == DevCheckoutPostbackSecret {
		v.add(base+".postback_secret", "is the development setup's: refused in production")
	}
	if c.Merchant.Name == "" || c.Merchant.City == "" || c.Merchant.Country == "" {
		v.add(base+".merchant", "name, city and country are required: they go on the checkout's QR code")
	}
	if len(c.Merchant.MCC) != 4 || strings.Trim(c.Merchant.MCC, "0123456789") != "" {
		v.add(base+".merchant.mcc", "must be 4 digits, got %q", c.Merchant.MCC)
	}
}

func (v *validator) partners(ps []Partner) {
	if len(ps) == 0 {
		v.add("partners", "at least one partner is required")
	}
	ids := make(map[string]string)
	for i, p := range ps {
		base := fmt.Sprintf("partners[%d]", i)
		v.id(base+".id", p.ID, ids)
		if p.Rail == "" {
			v.add(base+".rail", "required, e.g. electrum")
		}
		if p.BaseURL != "" {
			v.baseURL(base+".base_url", p.BaseURL)
		}
		if p.Options.Kind != 0 && p.Options.Kind != yaml.MappingNode {
			v.add(base+".options", "must be a mapping of the rail's option keys")
		}
		if v.prod && slices.Contains(devPasswords, p.Password) {
			v.add(base+".password", "is a well-known development password: refused in production")
		}
		if v.prod {
			if key := devSecretIn(&p.Options, ""); key != "" {
				v.add(base+".options."+key, "is a well-known secret of the development setup: refused in production")
			}
		}
		switch {
		case p.Timeout <= 0:
			v.add(base+".timeout", "must be greater than 0, got %s", p.Timeout)
		case p.Timeout > maxPartnerTimeout:
			v.add(base+".timeout", "must be at most %s, got %s", maxPartnerTimeout, p.Timeout)
		}
		// Inbound credentials are optional here: the rails whose partner
		// calls the switch with Basic auth require them at start-up.
		if p.ScanUsername != "" || p.ScanPasswordHash != "" || p.ScanPassword != "" {
			v.username(base+".scan_username", p.ScanUsername)
			v.credential(base, "scan_password_hash", p.ScanPasswordHash, "scan_password", p.ScanPassword)
		}
	}
}

// checkoutListener checks the web shops' listener when a retailer has a
// checkout: plain HTTP only on loopback in production.
func (v *validator) checkoutListener(c *Config) {
	if !slices.ContainsFunc(c.Retailers, func(r Retailer) bool { return r.Checkout.Enabled() }) {
		return
	}
	v.hostPort("checkout.listen", c.Checkout.Listen)
	if c.Checkout.Listen == c.Listen || c.Checkout.Listen == c.AdminListen {
		if !strings.HasSuffix(c.Checkout.Listen, ":0") {
			v.add("checkout.listen", "must differ from listen and admin_listen")
		}
	}
	if v.prod && !c.Checkout.TLS {
		host, _, _ := net.SplitHostPort(c.Checkout.Listen)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			v.add("checkout.tls", "plain HTTP on %s is refused in production: set tls: true, or listen on loopback behind a TLS proxy", c.Checkout.Listen)
		}
	}
}

// offers checks that retailers name configured partners as offering on
// their codes.
func (v *validator) offers(c *Config) {
	known := make(map[string]bool, len(c.Partners))
	for _, p := range c.Partners {
		known[p.ID] = true
	}
	for i, r := range c.Retailers {
		for j, id := range r.Offers {
			if !known[id] {
				v.add(fmt.Sprintf("retailers[%d].offers[%d]", i, j), "%q is not a configured partner", id)
			}
		}
	}
}

// clientCerts checks that principals asked to present client certificates
// can: the listener verifies them only against tls.client_ca_file.
func (v *validator) clientCerts(c *Config) {
	check := func(path, name string) {
		switch {
		case name == "":
		case strings.TrimSpace(name) != name:
			v.add(path, "must not start or end with spaces, got %q", name)
		case c.TLS.ClientCAFile == "":
			v.add(path, "needs tls.client_ca_file: client certificates are verified against it")
		}
	}
	for i, r := range c.Retailers {
		check(fmt.Sprintf("retailers[%d].client_cert", i), r.ClientCert)
	}
	for i, p := range c.Partners {
		check(fmt.Sprintf("partners[%d].client_cert", i), p.ClientCert)
	}
}

func (v *validator) support(us []SupportUser) {
	for i, u := range us {
		base := fmt.Sprintf("support[%d]", i)
		v.username(base+".username", u.Username)
		v.credential(base, "password_hash", u.PasswordHash, "password", u.Password)
		if u.Role != RoleViewer && u.Role != RoleOperator {
			v.add(base+".role", "must be %q or %q, got %q", RoleViewer, RoleOperator, u.Role)
		}
	}
}

// id checks an id that appears in store keys and metric labels.
func (v *validator) id(path, id string, seen map[string]string) {
	switch {
	case id == "":
		v.add(path, "required")
		return
	case strings.TrimLeft(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != "":
		v.add(path, "%q may hold only letters, digits, '.', '_' and '-': ids appear in store keys and metric labels", id)
	}
	if first, dup := seen[id]; dup {
		v.add(path, "%q is already the id of %s", id, first)
		return
	}
	seen[id] = path
}

// username checks a Basic-auth identity, unique across retailers, partners'
// scan users and support.
func (v *validator) username(path, name string) {
	switch {
	case name == "":
		v.add(path, "required")
		return
	case strings.Contains(name, ":"):
		v.add(path, "must not contain ':': HTTP Basic auth splits the user from the password there")
	}
	if first, dup := v.usernames[name]; dup {
		v.add(path, "%q is already used by %s: one Basic-auth identity must never be two principals", name, first)
		return
	}
	v.usernames[name] = path
}

// credential checks the secret of a principal: exactly one of a bcrypt hash
// and its plaintext twin, the twin in development only.
func (v *validator) credential(base, hashKey, hash, plainKey, plain string) {
	switch {
	case v.prod && plain != "":
		v.add(base+"."+plainKey, "plaintext passwords are refused in production: set %s to a bcrypt hash instead", hashKey)
	case hash != "" && plain != "":
		v.add(base+"."+plainKey, "set either %s or %s, not both", hashKey, plainKey)
	case hash == "" && plain == "":
		v.add(base+"."+hashKey, "required: a bcrypt hash (%s, in plaintext, is accepted in development only)", plainKey)
	}
	if hash == "" {
		return
	}
	cost, err := bcrypt.Cost([]byte(hash))
	switch {
	case err != nil:
		v.add(base+"."+hashKey, "must be a bcrypt hash such as $2a$10$…: %v", err)
		return
	case v.prod && cost < minProductionCost:
		v.add(base+"."+hashKey, "bcrypt cost %d is below %d, the minimum in production", cost, minProductionCost)
	}
	if v.prod {
		v.hashes = append(v.hashes, hashed{path: base + "." + hashKey, hash: hash})
	}
}

func (v *validator) baseURL(path, s string) {
	if s == "" {
		v.add(path, "required: an https:// URL")
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.add(path, "must be an https:// URL: %v", errors.Unwrap(err))
		return
	case u.Scheme == "http" && v.prod:
		v.add(path, "must be an https:// URL: http:// is allowed in development only")
		return
	case u.Scheme != "https" && u.Scheme != "http":
		v.add(path, "must be an https:// URL")
		return
	}
	switch {
	case u.Host == "":
		v.add(path, "must name a host")
	case u.User != nil:
		v.add(path, "must not hold credentials: set username and password instead")
	case u.RawQuery != "" || u.Fragment != "":
		v.add(path, "must not have a query or fragment: the rail appends its paths to it")
	}
}

// devCredentials refuses, in production, every hash that verifies against a
// development password. bcrypt is slow by design, so the comparisons run on
// every CPU; they finish before Validate returns.
func (v *validator) devCredentials() {
	hit := make([]bool, len(v.hashes))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, h := range v.hashes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, p := range devPasswords {
				if bcrypt.CompareHashAndPassword([]byte(h.hash), []byte(p)) == nil {
					hit[i] = true
					return
				}
			}
		})
	}
	wg.Wait()
	for i, h := range v.hashes {
		if hit[i] {
			v.add(h.path, "is the hash of a well-known development password: refused in production")
		}
	}
}
