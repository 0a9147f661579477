package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The values of Config.Env.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// The values of RetailerCheckout.Credentials.
const (
	CheckoutCredentialsOptional = "optional"
	CheckoutCredentialsRequired = "required"
)

// The values of SupportUser.Role.
const (
	// RoleViewer may look up transactions and read their traces.
	RoleViewer = "viewer"
	// RoleOperator may also change state, such as replaying dead-lettered
	// advices.
	RoleOperator = "operator"
)

// The credentials of the development setup. The server prints them at start
// and the README documents them; production refuses every one of them.
const (
	DevRetailerID            = "demo-shop"
	DevRetailerUsername      = "demo-shop"
	DevRetailerPassword      = "demo-shop-dev-password"
	DevRetailerInstitutionID = "0001"

	DevPartnerID           = "sim-wallet"
	DevPartnerName         = "Sim Wallet"
	DevPartnerRail         = "electrum"
	DevPartnerBaseURL      = "https://127.0.0.1:9443"
	DevPartnerUsername     = "switch"
	DevPartnerPassword     = "switch-dev-password"
	DevPartnerScanUsername = "sim-wallet"
	DevPartnerScanPassword = "sim-wallet-dev-password"

	// The ILP invoice rail of the development setup: the switch is the
	// merchants' DFSP; the simulator plays the directory and a customer's
	// DFSP that pays invoices from its account in the switch's ledger.
	DevILPPartnerID    = "ilp"
	DevILPBaseURL      = "https://127.0.0.1:9444"
	DevILPDFSPID       = "sim-dfsp"
	DevILPDFSPUsername = "sim-dfsp"
	DevILPDFSPPassword = "sim-dfsp-dev-password"
	DevIPPPartnerID    = "ipp"
	DevIPPBaseURL      = "https://127.0.0.1:9447"
	DevIPPAuditorToken = "ipp-auditor-dev-token"

	// The development setup's token rail: a simulated chain (its id, its
	// token, the currency shops price in) and the extended public key its
	// addresses come from — BIP-32 test vector 1's m/0H/1, whose private
	// key is public, so production refuses it.
	DevChainPartnerID = "chain"
	DevChainBaseURL   = "https://127.0.0.1:9446"
	DevChainID        = 1337
	DevChainToken     = "0x5150000000000000000000000000000000000001"
	DevChainCurrency  = "QTT"
	DevChainXPub      = "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ"

	// The Open Payments rail of the development setup: the switch is the
	// demo retailer's account servicing entity; the simulator plays a
	// customer's wallet whose provider is an ILP peer of the switch.
	DevOPPartnerID = "op"
	DevOPBaseURL   = "https://127.0.0.1:9445"
	DevOPPath      = "/op"
	DevOPPeer      = "sim-ase"
	DevOPPeerToken = "sim-ase-dev-token"

	DevShopID                 = "demo-webshop"
	DevShopUsername           = "demo-webshop"
	DevShopPassword           = "demo-webshop-dev-password"
	DevShopInstitutionID      = "0002"
	DevCheckoutPostbackSecret = "demo-webshop-dev-postback-secret"

	DevSupportUsername = "support"
	DevSupportPassword = "support-dev-password"
	DevSupportRole     = RoleOperator
)

// Defaults filled in by ApplyDefaults.
const (
	defaultListen         = "127.0.0.1:8443"
	defaultAdminListen    = "127.0.0.1:9090"
	defaultDataDir        = "./var"
	defaultStoreFile      = "qrswitch.db"
	defaultRetention      = Duration(2160 * time.Hour)
	defaultTLSReload      = Duration(10 * time.Second)
	defaultWaitTimeout    = Duration(200 * time.Millisecond)
	defaultScanWait       = Duration(40 * time.Second)
	defaultRetailerTimout = Duration(60 * time.Second)
	defaultEarlyScanGrace = Duration(5 * time.Second)
	defaultAdviceDeadline = Duration(168 * time.Hour)
	defaultCheckoutListen = "127.0.0.1:8888"
	defaultCheckoutMax    = "20999984"
	defaultCheckoutExpiry = Duration(30 * time.Minute)
	defaultQRTTL          = Duration(5 * time.Minute)
	defaultSAFInitial     = Duration(time.Second)
	defaultSAFMax         = Duration(60 * time.Second)
	defaultSAFGiveUpAfter = Duration(72 * time.Hour)
	defaultSAFWorkers     = 32
	defaultRail           = "electrum"
	defaultPartnerTimeout = Duration(60 * time.Second)
)

// Config is the whole configuration of one switch process, key for key the
// YAML file of the operator contract. A zero (absent) value means the
// default named on the field; ApplyDefaults fills it in.
type Config struct {
	// Env is "development" (the default) or "production". Production
	// refuses plaintext passwords, the development setup, a missing
	// certificate and the well-known development credentials.
	Env string `yaml:"env"`
	// Listen is the host:port of the HTTPS listener that serves retailers,
	// partners' scan notifications and support. Default 127.0.0.1:8443.
	Listen string `yaml:"listen"`
	// AdminListen is the host:port of the plain-HTTP listener for /healthz,
	// /readyz and /metrics. Default 127.0.0.1:9090.
	AdminListen string `yaml:"admin_listen"`
	// PublicURL is the switch's HTTPS base URL as customers' apps and
	// partners reach it (a load balancer's name, say): the rails put it in
	// QR codes (an invoice URL, an incoming payment) and in what they
	// publish. Rails whose URLs go into a QR code's 99-character template
	// refuse to start when it is too long. Default https://{listen}.
	PublicURL string `yaml:"public_url"`
	// DataDir is the directory for local state such as the embedded store.
	// Default ./var.
	DataDir string `yaml:"data_dir"`
	// TrustedProxies are the load balancers (IP addresses or CIDRs) whose
	// X-Forwarded-For / X-Real-IP headers are believed for the client's
	// address, which login throttling and the access log use. Default
	// none: the connection's address is the client's.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TLS names the certificate of the HTTPS listener. Empty means a
	// self-signed development certificate, which production refuses.
	TLS TLS `yaml:"tls"`
	// Store selects the store backend. Default: the embedded SQLite file
	// qrswitch.db under DataDir.
	Store Store `yaml:"store"`
	// RetailerTimeout is how long a POS waits for the answer to a request
	// (the interface's client timeout: 60 s unless agreed otherwise). A
	// payment request is always answered within it: the scan wait must
	// leave at least 10 s of it for the partner, and a partner reached late
	// in the scan wait gets what is left (less 2 s for the answer's way
	// back) instead of its whole timeout. Default 60s.
	RetailerTimeout Duration `yaml:"retailer_timeout"`
	// ScanWait is how long a payment request waits for its scan before it
	// fails (400 NO_SCAN_RECEIVED); at most retailer_timeout − 10s.
	// Default 40s.
	ScanWait Duration `yaml:"scan_wait"`
	// EarlyScanGrace is how long a scan that arrived before its payment
	// request is held for it (the interface declines such a scan; the
	// switch waits for a POS racing its own display). 0s declines them at
	// once, as the interface does. Default 5s.
	EarlyScanGrace OptDuration `yaml:"early_scan_grace"`
	// AdviceDeadline is how long an approved payment waits for the
	// retailer's confirmation or reversal; then it becomes UNSETTLED (a
	// final state support staff search for and settle by hand), and the
	// store's retention applies to it. Default 168h.
	AdviceDeadline Duration `yaml:"advice_deadline"`
	// QRTTL is the expiry of a QR code whose request gives none. Default 5m.
	QRTTL Duration `yaml:"qr_ttl"`
	// MemoryLimit is the Go runtime's soft memory limit: "auto" (the
	// default: GOMEMLIMIT when set, else 80 % of the container's memory
	// limit, else none), "off", or a size such as 300MiB or 1GiB. Near it
	// the collector works harder instead of letting held requests' garbage
	// pile up; see internal/memlimit.
	MemoryLimit string `yaml:"memory_limit"`
	// Checkout is the web shops' listener (0xbtcpay's integration), which
	// runs when a retailer has a checkout.
	Checkout CheckoutListener `yaml:"checkout"`
	// SAF tunes store-and-forward of confirmations and reversals.
	SAF SAF `yaml:"saf"`
	// Retailers are the downstream principals allowed on /qr/v1/*. At least
	// one is required.
	Retailers []Retailer `yaml:"retailers"`
	// Partners are the upstream payment partners. At least one is required.
	Partners []Partner `yaml:"partners"`
	// Support are the staff allowed on the support API and console.
	// Optional.
	Support []SupportUser `yaml:"support"`
	// Development reports that no config file was given: this is the
	// built-in development setup, which production refuses. It cannot be set
	// from YAML or the environment.
	Development bool `yaml:"-"`
}

// TLS names the certificate files of the HTTPS listener. Paths are read by
// the server at start and on reload.
type TLS struct {
	// CertFile is the PEM certificate chain. Default empty: a self-signed
	// development certificate (development only).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Required with CertFile.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of CAs whose client certificates are
	// verified (mutual TLS). Default empty: no client certificates asked.
	ClientCAFile string `yaml:"client_ca_file"`
	// ReloadInterval is how often CertFile and KeyFile are checked for a
	// change (a new file, size or modification time) and reloaded, without
	// a restart or SIGHUP; greater than 0. Default 10s.
	ReloadInterval Duration `yaml:"reload_interval"`
}

// Store selects the store backend by URL.
type Store struct {
	// URL is sqlite://PATH (embedded, one replica), redis://,
	// rediss://, redis+sentinel:// or redis+cluster:// (shared by many
	// replicas). The
	// backend parses everything after the scheme. Default
	// sqlite://DATA_DIR/qrswitch.db. It may hold a password: log Redacted.
	URL string `yaml:"url"`
	// Retention is how long a finished payment, with its advices and
	// trace, is kept after it finished; greater than 0. Default 2160h (90
	// days). Both stores apply it (a janitor every minute); payments not
	// final, and those with an advice not final, are kept.
	Retention Duration `yaml:"retention"`
	// WaitReplicas is how many Redis replicas must acknowledge every write
	// before the switch answers it (Redis WAIT); when fewer do within
	// WaitTimeout the request is answered 503. 0 to 16; Redis only.
	// Default 0: answer once the master applied it.
	WaitReplicas int `yaml:"wait_replicas"`
	// WaitTimeout bounds that wait; greater than 0, at most 10s. Default
	// 200ms.
	WaitTimeout Duration `yaml:"wait_timeout"`
}

// SAF tunes store-and-forward: advices are retried with exponential backoff
// and jitter until a final outcome, and dead-lettered after GiveUpAfter.
type SAF struct {
	// InitialInterval is the first retry delay. Default 1s.
	InitialInterval Duration `yaml:"initial_interval"`
	// MaxInterval caps the retry delay; at least InitialInterval.
	// Default 60s.
	MaxInterval Duration `yaml:"max_interval"`
	// GiveUpAfter is the age at which an advice still without a final
	// outcome moves to the dead letters that support can replay; longer
	// than MaxInterval. Default 72h.
	GiveUpAfter Duration `yaml:"give_up_after"`
	// Workers is the number of advices sent in parallel, 1 to 1024.
	// Default 32.
	Workers int `yaml:"workers"`
}

// Retailer is a downstream principal: a retailer's POS or back end calling
// /qr/v1/* with HTTP Basic auth.
type Retailer struct {
	// ID names the retailer in store keys, traces and metric labels:
	// required, unique, letters, digits, '.', '_' and '-' only.
	ID string `yaml:"id"`
	// Username is the Basic-auth user. Required; unique among every
	// principal (retailers, partners' scan users, support).
	Username string `yaml:"username"`
	// PasswordHash is the bcrypt hash of the Basic-auth password; cost 10 or
	// more in production.
	PasswordHash string `yaml:"password_hash"`
	// Password is the plaintext twin of PasswordHash, accepted in
	// development only. Set exactly one of the two.
	Password string `yaml:"password"`
	// InstitutionID is the retailer's originator institution id in the
	// Electrum messages, e.g. "1234". Quote it in YAML to keep leading
	// zeros.
	InstitutionID string `yaml:"institution_id"`
	// ClientCert, when set, is the name (subject common name or a DNS
	// name) of the client certificate this retailer must present, signed
	// by tls.client_ca_file, on top of its Basic-auth password: mutual TLS
	// for this principal. Default empty: the password alone.
	ClientCert string `yaml:"client_cert"`
	// Offers lists the partners (ids) whose pull rails offer on this
	// retailer's QR codes. Default: every partner with a pull rail.
	Offers []string `yaml:"offers"`
	// Checkout makes the retailer a web shop too: its server starts
	// payments on the checkout listener. Absent (no allow list): none.
	Checkout RetailerCheckout `yaml:"checkout"`
}

// CheckoutListener is where web shops call: start_payment and the public
// status of a payment, as 0xbtcpay serves them.
type CheckoutListener struct {
	// Listen is its host:port. Default 127.0.0.1:8888 (0xbtcpay's port).
	Listen string `yaml:"listen"`
	// TLS serves it over HTTPS with the switch's certificate. Default
	// false: plain HTTP, as 0xbtcpay, for a TLS proxy on the same host;
	// production refuses plain HTTP on an address that is not loopback.
	TLS bool `yaml:"tls"`
}

// RetailerCheckout is a retailer's web-shop checkout.
type RetailerCheckout struct {
	// Allow lists the IP addresses or CIDRs the shop's server calls from;
	// a start_payment from anywhere else gets 403 before its body is read.
	// Required for a checkout.
	Allow []string `yaml:"allow"`
	// Credentials is "optional" (the default: an allowed address is
	// enough, as with 0xbtcpay) or "required": start_payment must also
	// carry the retailer's Basic-auth credentials.
	Credentials string `yaml:"credentials"`
	// Currency is the unit of the shop's prices: an ISO 4217 numeric code
	// ("710") or a token rail's currency code (its partner's
	// options.currency). Required.
	Currency string `yaml:"currency"`
	// MaxAmount bounds an amount, as a decimal string. Default "20999984"
	// (0xbtcpay's bound, the supply of its token).
	MaxAmount string `yaml:"max_amount"`
	// Expiry is how long a checkout may be paid. Default 30m, at most 24h.
	Expiry Duration `yaml:"expiry"`
	// PostbackSecret signs postbacks (HMAC-SHA256); at least 16
	// characters. Plaintext, since it must be used: prefer
	// QRSWITCH_RETAILERS_<i>_CHECKOUT_POSTBACK_SECRET. Required.
	PostbackSecret string `yaml:"postback_secret"`
	// Merchant names the shop on its checkouts' QR codes.
	Merchant CheckoutMerchant `yaml:"merchant"`
}

// Enabled reports whether the retailer has a checkout.
func (c *RetailerCheckout) Enabled() bool { return len(c.Allow) > 0 }

// CheckoutMerchant is the merchant data of a shop's QR codes (EMVCo tags
// 52, 58, 59, 60).
type CheckoutMerchant struct {
	Name    string `yaml:"name"`    // at most 25 characters
	City    string `yaml:"city"`    // at most 15
	Country string `yaml:"country"` // ISO 3166 alpha-2
	MCC     string `yaml:"mcc"`     // 4 digits; default 5999
}

// Partner is an upstream payment partner: the switch reaches it through its
// rail, and it may call the switch (Electrum partners notify scans).
type Partner struct {
	// ID names the partner in store keys, traces and metric labels, and is
	// the partner institution id expected in its scans: required, unique,
	// letters, digits, '.', '_' and '-' only.
	ID string `yaml:"id"`
	// Name is the display name in logs and the support console.
	Name string `yaml:"name"`
	// Rail is the registered name of the adapter that speaks to the partner.
	// Default electrum.
	Rail string `yaml:"rail"`
	// BaseURL is where the rail sends requests, e.g. the electrum rail calls
	// {base_url}/qr/v1/payments. https:// (http:// in development only).
	// Required by the rails that call an HTTP API there (electrum); in the
	// development setup, a rail's simulator listens on its host.
	BaseURL string `yaml:"base_url"`
	// Username is the Basic-auth user the switch presents upstream.
	Username string `yaml:"username"`
	// Password is the Basic-auth password the switch presents upstream. It
	// is plaintext in production too, since it must be sent; prefer
	// QRSWITCH_PARTNERS_<i>_PASSWORD over writing it in the file.
	Password string `yaml:"password"`
	// CAFile is a PEM bundle trusted for the partner's certificate. Default
	// empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// Timeout bounds one upstream exchange; no answer in time is an unknown
	// outcome. Greater than 0, at most 5m. Default 60s.
	Timeout Duration `yaml:"timeout"`
	// ScanUsername is the Basic-auth user the partner presents when it
	// calls the switch (electrum: on /qr/v1/scans). Required by the rails
	// whose partner calls the switch with Basic auth; unique among every
	// principal.
	ScanUsername string `yaml:"scan_username"`
	// ScanPasswordHash is the bcrypt hash of the partner's scan password;
	// cost 10 or more in production.
	ScanPasswordHash string `yaml:"scan_password_hash"`
	// ScanPassword is the plaintext twin of ScanPasswordHash, accepted in
	// development only. Set exactly one of the two.
	ScanPassword string `yaml:"scan_password"`
	// ClientCert, when set, is the name (subject common name or a DNS
	// name) of the client certificate the partner must present on
	// /qr/v1/scans, signed by tls.client_ca_file, on top of its scan
	// password. Default empty: the password alone.
	ClientCert string `yaml:"client_cert"`
	// Options are the rail's own settings, decoded by the rail (an unknown
	// key is refused at start): see each rail's section of the README.
	// Environment overrides reach them too, one key per variable:
	// QRSWITCH_PARTNERS_<i>_OPTIONS_<KEY>.
	Options yaml.Node `yaml:"options"`
}

// SupportUser is a member of support staff using the support API, console
// and CLI with HTTP Basic auth.
type SupportUser struct {
	// Username is the Basic-auth user. Required; unique among every
	// principal.
	Username string `yaml:"username"`
	// PasswordHash is the bcrypt hash of the password; cost 10 or more in
	// production.
	PasswordHash string `yaml:"password_hash"`
	// Password is the plaintext twin of PasswordHash, accepted in
	// development only. Set exactly one of the two.
	Password string `yaml:"password"`
	// Role is "viewer" or "operator" (RoleViewer, RoleOperator). Required.
	Role string `yaml:"role"`
}

// Duration is a time.Duration written in Go syntax ("1500ms", "60s", "72h")
// in YAML and in environment variables. A bare number other than 0 is
// refused, so a unit is never guessed.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d in Go syntax, e.g. "1m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration in Go syntax and reports a bad one with its
// line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 60s, got a %s", n.Line, kindName(n.Kind))}}
	}
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	return nil
}

// MarshalText writes d in Go syntax, so JSON logs show "1m0s", not
// nanoseconds.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration in Go syntax; environment overrides use it.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: use Go syntax such as 1500ms, 60s or 72h", b)
	}
	*d = Duration(v)
	return nil
}

// OptDuration is a Duration whose zero is a setting of its own: a key
// absent from the file (Set false) takes its default, while "0s" is kept.
type OptDuration struct {
	Duration
	Set bool
}

// UnmarshalYAML reads a duration and marks it set.
func (d *OptDuration) UnmarshalYAML(n *yaml.Node) error {
	if err := d.Duration.UnmarshalYAML(n); err != nil {
		return err
	}
	d.Set = true
	return nil
}

// UnmarshalText reads a duration and marks it set; environment overrides
// use it.
func (d *OptDuration) UnmarshalText(b []byte) error {
	if err := d.Duration.UnmarshalText(b); err != nil {
		return err
	}
	d.Set = true
	return nil
}

// MarshalYAML writes the duration.
func (d OptDuration) MarshalYAML() (any, error) { return d.Duration.MarshalYAML() }

// MarshalText writes the duration.
func (d OptDuration) MarshalText() ([]byte, error) { return d.Duration.MarshalText() }

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}

// Load reads the configuration file at path (strictly: an unknown key is an
// error naming it and its line), applies the QRSWITCH_* overrides found in
// environ (formatted like os.Environ), fills in defaults and validates the
// result. An empty path selects the development setup, to which the
// overrides apply too.
//
// The error is an *EnvError (several joined) when an override is unknown or
// malformed, and wraps a *ValidationError listing every problem otherwise.
// In production, validation compares every password hash with the four
// development passwords: at bcrypt cost 10 that is a few hundred
// milliseconds of CPU per hash, spread over the CPUs.
func Load(path string, environ []string) (*Config, error) {
	c, source := development(), "development setup"
	if path != "" {
		var err error
		if c, err = readFile(path); err != nil {
			return nil, err
		}
		source = path
	}
	if err := c.applyEnv(environ); err != nil {
		return nil, fmt.Errorf("applying environment to %s: %w", source, err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

func readFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	c := new(Config)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	// A second document would be silently ignored: an operator who
	// concatenated two files must hear about it.
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("more than one YAML document")
		}
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return c, nil
}

// Development returns the built-in development setup, defaults filled in:
// the embedded store under ./var, a self-signed certificate, the demo
// retailer, the built-in simulated partner and one support operator, with
// the Dev* credentials. Load("", environ) returns it with environment
// overrides applied.
func Development() *Config {
	c := development()
	c.ApplyDefaults()
	return c
}

// development returns the development setup before defaults, so that an
// override of data_dir still moves the default store.
func development() *Config {
	return &Config{
		Env:         EnvDevelopment,
		Development: true,
		Retailers: []Retailer{{
			ID:            DevRetailerID,
			Username:      DevRetailerUsername,
			Password:      DevRetailerPassword,
			InstitutionID: DevRetailerInstitutionID,
		}, {
			ID:            DevShopID,
			Username:      DevShopUsername,
			Password:      DevShopPassword,
			InstitutionID: DevShopInstitutionID,
			Checkout: RetailerCheckout{
				Allow:          []string{"127.0.0.1/32", "::1/128"},
				Currency:       DevChainCurrency,
				PostbackSecret: DevCheckoutPostbackSecret,
				Merchant:       CheckoutMerchant{Name: "Demo Web Shop", City: "Cape Town", Country: "ZA"},
			},
		}},
		Partners: []Partner{{
			ID:           DevPartnerID,
			Name:         DevPartnerName,
			Rail:         DevPartnerRail,
			BaseURL:      DevPartnerBaseURL,
			Username:     DevPartnerUsername,
			Password:     DevPartnerPassword,
			Timeout:      defaultPartnerTimeout,
			ScanUsername: DevPartnerScanUsername,
			ScanPassword: DevPartnerScanPassword,
		}, {
			ID:      DevILPPartnerID,
			Name:    "ILP invoices",
			Rail:    "ilpinvoice",
			BaseURL: DevILPBaseURL,
			Timeout: defaultPartnerTimeout,
			Options: devOptions(`
currency: "710"
ledger_prefix: test.qrswitch.
identifier_type: msisdn
fee_fixed: "0.50"
dfsps:
  - id: ` + DevILPDFSPID + `
    name: Sim DFSP
    balance: "100000.00"
    username: ` + DevILPDFSPUsername + `
    password: ` + DevILPDFSPPassword + `
`),
		}, {
			ID:      DevOPPartnerID,
			Name:    "Open Payments",
			Rail:    "openpayments",
			BaseURL: DevOPBaseURL,
			Timeout: defaultPartnerTimeout,
			Options: devOptions(`
path: ` + DevOPPath + `
ilp_address: test.qrswitch
rates: [{from: USD, to: ZAR, rate: "18.50"}]
wallets:
  - {retailer: ` + DevRetailerID + `, name: ` + DevRetailerID + `, public_name: Demo Shop, asset_code: ZAR, asset_scale: 2}
peers:
  - {name: ` + DevOPPeer + `, token: ` + DevOPPeerToken + `, address: test.qrswitch.` + DevOPPeer + `, asset_code: ZAR, asset_scale: 2}
`),
		}, {
			ID:      DevIPPPartnerID,
			Name:    "IPP",
			Rail:    "ipp",
			BaseURL: DevIPPBaseURL,
			Timeout: defaultPartnerTimeout,
			Options: devOptions(`
currency: "710"
auditors: [{name: auditor, token: ` + DevIPPAuditorToken + `}]
`),
		}, {
			ID:      DevChainPartnerID,
			Name:    "Token chain",
			Rail:    "cryptopay",
			BaseURL: DevChainBaseURL,
			Timeout: defaultPartnerTimeout,
			Options: devOptions(`
ws_url: auto
chain_id: ` + strconv.Itoa(DevChainID) + `
token_address: "` + DevChainToken + `"
token_decimals: 6
currency: ` + DevChainCurrency + `
xpub: ` + DevChainXPub + `
confirmations: 2
poll_interval: 1s
rates: [{currency: "710", tokens: "1"}]
`),
		}},
		Support: []SupportUser{{
			Username: DevSupportUsername,
			Password: DevSupportPassword,
			Role:     DevSupportRole,
		}},
	}
}

// devOptions is a rail's options of the development setup, written as the
// YAML an operator would write.
func devOptions(doc string) yaml.Node {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		panic("config: development options: " + err.Error())
	}
	return *n.Content[0]
}

// ApplyDefaults fills every zero field with its default. The default store
// follows DataDir, so set DataDir first. Load calls it after the
// environment overrides.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Env, EnvDevelopment)
	setDefault(&c.Listen, defaultListen)
	setDefault(&c.AdminListen, defaultAdminListen)
	setDefault(&c.DataDir, defaultDataDir)
	setDefault(&c.Store.URL, "sqlite://"+strings.TrimRight(c.DataDir, "/")+"/"+defaultStoreFile)
	setDefault(&c.Store.Retention, defaultRetention)
	setDefault(&c.TLS.ReloadInterval, defaultTLSReload)
	setDefault(&c.Store.WaitTimeout, defaultWaitTimeout)
	setDefault(&c.RetailerTimeout, defaultRetailerTimout)
	setDefault(&c.ScanWait, defaultScanWait)
	setDefault(&c.AdviceDeadline, defaultAdviceDeadline)
	if !c.EarlyScanGrace.Set {
		c.EarlyScanGrace = OptDuration{Duration: defaultEarlyScanGrace, Set: true}
	}
	setDefault(&c.QRTTL, defaultQRTTL)
	setDefault(&c.MemoryLimit, "auto")
	setDefault(&c.Checkout.Listen, defaultCheckoutListen)
	for i := range c.Retailers {
		x := &c.Retailers[i].Checkout
		if !x.Enabled() {
			continue
		}
		setDefault(&x.Credentials, CheckoutCredentialsOptional)
		setDefault(&x.MaxAmount, defaultCheckoutMax)
		setDefault(&x.Expiry, defaultCheckoutExpiry)
		setDefault(&x.Merchant.MCC, "5999")
	}
	setDefault(&c.SAF.InitialInterval, defaultSAFInitial)
	setDefault(&c.SAF.MaxInterval, defaultSAFMax)
	setDefault(&c.SAF.GiveUpAfter, defaultSAFGiveUpAfter)
	setDefault(&c.SAF.Workers, defaultSAFWorkers)
	for i := range c.Partners {
		setDefault(&c.Partners[i].Rail, defaultRail)
		setDefault(&c.Partners[i].Timeout, defaultPartnerTimeout)
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Production reports whether c runs with production rules (env: production).
func (c *Config) Production() bool { return c.Env == EnvProduction }
