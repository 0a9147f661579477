package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// prodYAML is a production configuration that passes every rule except the
// production bcrypt cost, since its hashes are cheap.
func prodYAML() string {
	return fmt.Sprintf(`
env: production
tls: {cert_file: /etc/qrswitch/server.crt, key_file: /etc/qrswitch/server.key}
retailers:
  - {id: shop-1, username: shop-1, password_hash: %[1]q, institution_id: "1234"}
partners:
  - id: wallet-a
    base_url: https://wallet-a.example
    username: switch
    password: upstream-secret
    scan_username: wallet-a
    scan_password_hash: %[1]q
support:
  - {username: alice, password_hash: %[1]q, role: viewer}
`, testHash)
}

// problemsOf returns the problems of a validation error, or nil.
func problemsOf(err error) []Problem {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return nil
}

func hasProblem(err error, path, msg string) bool {
	for _, p := range problemsOf(err) {
		if p.Path == path && strings.Contains(p.Msg, msg) {
			return true
		}
	}
	return false
}

type validationCase struct {
	name string
	yaml string // empty: devYAML
	env  []string
	path string // the key the problem must name
	msg  string // a substring of its message
}

func runValidationCases(t *testing.T, base string, tests []validationCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.yaml
			if text == "" {
				text = base
			}
			_, err := Load(writeConfig(t, text), tt.env)
			if !hasProblem(err, tt.path, tt.msg) {
				t.Errorf("Load(%s) error = %v, want a problem %s: …%s…", tt.name, err, tt.path, tt.msg)
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	tests := []validationCase{
		{"env", "", []string{"QRSWITCH_ENV=staging"}, "env", `must be "development" or "production", got "staging"`},
		{"listen without port", "", []string{"QRSWITCH_LISTEN=8443"}, "listen", "must be host:port"},
		{"listen named port", "", []string{"QRSWITCH_LISTEN=:https"}, "listen", "port must be a number"},
		{"listen port too big", "", []string{"QRSWITCH_LISTEN=127.0.0.1:65536"}, "listen", "port must be a number from 0 to 65535"},
		{"admin_listen", "", []string{"QRSWITCH_ADMIN_LISTEN=localhost"}, "admin_listen", "must be host:port"},
		{"admin_listen same as listen", "", []string{"QRSWITCH_ADMIN_LISTEN=127.0.0.1:8443"}, "admin_listen", "must differ from listen"},
		{"tls key without cert", "", []string{"QRSWITCH_TLS_KEY_FILE=/k.pem"}, "tls.cert_file", "required when tls.key_file is set"},
		{"tls cert without key", "", []string{"QRSWITCH_TLS_CERT_FILE=/c.pem"}, "tls.key_file", "required when tls.cert_file is set"},
		{"store scheme", "", []string{"QRSWITCH_STORE_URL=mysql://db/qrswitch"}, "store.url", `scheme "mysql" is not supported`},
		{"store not a URL", "", []string{"QRSWITCH_STORE_URL=./var/qrswitch.db"}, "store.url", "must be a URL"},
		{"store sqlite without file", "", []string{"QRSWITCH_STORE_URL=sqlite://"}, "store.url", "sqlite:// needs a database file"},
		{"store redis without host", "", []string{"QRSWITCH_STORE_URL=redis:///0"}, "store.url", "redis:// needs a host"},
		{"store sentinel without host", "", []string{"QRSWITCH_STORE_URL=redis+sentinel:///mymaster"}, "store.url", "redis+sentinel:// needs a host"},
		{"store cluster without nodes", "", []string{"QRSWITCH_STORE_URL=redis+cluster://"}, "store.url", "redis+cluster:// needs a host"},
		{"store redis bad port", "", []string{"QRSWITCH_STORE_URL=redis://r:port/0"}, "store.url", "is not a valid URL"},
		{"scan_wait", "", []string{"QRSWITCH_SCAN_WAIT=-1s"}, "scan_wait", "must be greater than 0, got -1s"},
		{"early_scan_grace", "", []string{"QRSWITCH_EARLY_SCAN_GRACE=-5s"}, "early_scan_grace", "must be 0s (off) or more"},
		{"scan_wait leaves the partner no time", "", []string{"QRSWITCH_SCAN_WAIT=55s"}, "scan_wait", "must leave at least 10s of retailer_timeout"},
		{"retailer_timeout", "", []string{"QRSWITCH_RETAILER_TIMEOUT=-1s"}, "retailer_timeout", "must be greater than 0"},
		{"advice_deadline", "", []string{"QRSWITCH_ADVICE_DEADLINE=-1h"}, "advice_deadline", "must be greater than 0"},
		{"offers names a partner", "", []string{"QRSWITCH_RETAILERS_0_OFFERS_0=nobody"}, "retailers[0].offers[0]", "is not a configured partner"},
		{"qr_ttl", "", []string{"QRSWITCH_QR_TTL=-1m"}, "qr_ttl", "must be greater than 0"},
		{"memory_limit not a size", "", []string{"QRSWITCH_MEMORY_LIMIT=lots"}, "memory_limit", `memory size "lots": want a whole number of bytes`},
		{"memory_limit too small", "", []string{"QRSWITCH_MEMORY_LIMIT=16MiB"}, "memory_limit", "is below 32MiB"},
		{"saf.initial_interval", "", []string{"QRSWITCH_SAF_INITIAL_INTERVAL=-1s"}, "saf.initial_interval", "must be greater than 0"},
		{"saf.max_interval", "", []string{"QRSWITCH_SAF_MAX_INTERVAL=-1s"}, "saf.max_interval", "must be greater than 0"},
		{"saf.give_up_after", "", []string{"QRSWITCH_SAF_GIVE_UP_AFTER=-1s"}, "saf.give_up_after", "must be greater than 0"},
		{"saf.max_interval below initial", "", []string{"QRSWITCH_SAF_INITIAL_INTERVAL=10s", "QRSWITCH_SAF_MAX_INTERVAL=5s"}, "saf.max_interval", "must be at least saf.initial_interval (10s), got 5s"},
		{"saf.give_up_after not above max", "", []string{"QRSWITCH_SAF_GIVE_UP_AFTER=60s"}, "saf.give_up_after", "must be longer than saf.max_interval (1m0s), got 1m0s"},
		{"saf.workers too many", "", []string{"QRSWITCH_SAF_WORKERS=1025"}, "saf.workers", "must be from 1 to 1024, got 1025"},
		{"saf.workers negative", "", []string{"QRSWITCH_SAF_WORKERS=-1"}, "saf.workers", "must be from 1 to 1024, got -1"},
		{"no retailers", "partners: [{id: p, base_url: 'https://p', scan_username: p, scan_password: pw}]", nil, "retailers", "at least one retailer"},
		{"no partners", "retailers: [{id: r, username: r, password: pw}]", nil, "partners", "at least one partner"},
		{"retailer id empty", "", []string{"QRSWITCH_RETAILERS_0_ID="}, "retailers[0].id", "required"},
		{"retailer id charset", "", []string{"QRSWITCH_RETAILERS_0_ID=shop 1"}, "retailers[0].id", `"shop 1" may hold only letters, digits`},
		{"retailer id unique", "", []string{"QRSWITCH_RETAILERS_1_ID=shop-1"}, "retailers[1].id", `"shop-1" is already the id of retailers[0].id`},
		{"partner id empty", "", []string{"QRSWITCH_PARTNERS_1_ID="}, "partners[1].id", "required"},
		{"partner id charset", "", []string{"QRSWITCH_PARTNERS_0_ID=wallet/a"}, "partners[0].id", "may hold only"},
		{"partner id unique", "", []string{"QRSWITCH_PARTNERS_1_ID=wallet-a"}, "partners[1].id", "already the id of partners[0].id"},
		{"retailer username empty", "", []string{"QRSWITCH_RETAILERS_0_USERNAME="}, "retailers[0].username", "required"},
		{"retailer username colon", "", []string{"QRSWITCH_RETAILERS_0_USERNAME=shop:1"}, "retailers[0].username", "must not contain ':'"},
		{"retailer usernames unique", "", []string{"QRSWITCH_RETAILERS_1_USERNAME=shop-1"}, "retailers[1].username", `"shop-1" is already used by retailers[0].username`},
		{"scan usernames unique", "", []string{"QRSWITCH_PARTNERS_1_SCAN_USERNAME=wallet-a"}, "partners[1].scan_username", "already used by partners[0].scan_username"},
		{"scan username empty", "", []string{"QRSWITCH_PARTNERS_0_SCAN_USERNAME="}, "partners[0].scan_username", "required"},
		{"retailer and partner share a username", "", []string{"QRSWITCH_PARTNERS_0_SCAN_USERNAME=shop-2"}, "partners[0].scan_username", "already used by retailers[1].username: one Basic-auth identity must never be two principals"},
		{"support usernames unique", "", []string{"QRSWITCH_SUPPORT_1_USERNAME=alice", "QRSWITCH_SUPPORT_1_PASSWORD=pw", "QRSWITCH_SUPPORT_1_ROLE=viewer"}, "support[1].username", "already used by support[0].username"},
		{"support and retailer share a username", "", []string{"QRSWITCH_SUPPORT_0_USERNAME=shop-1"}, "support[0].username", "already used by retailers[0].username"},
		{"support username empty", "", []string{"QRSWITCH_SUPPORT_0_USERNAME="}, "support[0].username", "required"},
		{"retailer hash malformed", "", []string{"QRSWITCH_RETAILERS_0_PASSWORD_HASH=not-a-hash"}, "retailers[0].password_hash", "must be a bcrypt hash"},
		{"scan hash malformed", "", []string{"QRSWITCH_PARTNERS_0_SCAN_PASSWORD_HASH=$2a$10$short"}, "partners[0].scan_password_hash", "must be a bcrypt hash"},
		{"support hash malformed", "", []string{"QRSWITCH_SUPPORT_0_PASSWORD_HASH=secret"}, "support[0].password_hash", "must be a bcrypt hash"},
		{"retailer hash and plaintext", "", []string{"QRSWITCH_RETAILERS_0_PASSWORD=pw"}, "retailers[0].password", "set either password_hash or password, not both"},
		{"retailer neither", "", []string{"QRSWITCH_RETAILERS_1_PASSWORD="}, "retailers[1].password_hash", "required"},
		{"partner scan hash and plaintext", "", []string{"QRSWITCH_PARTNERS_0_SCAN_PASSWORD=pw"}, "partners[0].scan_password", "set either scan_password_hash or scan_password, not both"},
		{"partner scan neither", "", []string{"QRSWITCH_PARTNERS_1_SCAN_PASSWORD="}, "partners[1].scan_password_hash", "required"},
		{"support hash and plaintext", "", []string{"QRSWITCH_SUPPORT_0_PASSWORD=pw"}, "support[0].password", "not both"},
		{"support neither", "", []string{"QRSWITCH_SUPPORT_0_PASSWORD_HASH="}, "support[0].password_hash", "required"},
		{"base_url scheme", "", []string{"QRSWITCH_PARTNERS_1_BASE_URL=ftp://wallet-b.example"}, "partners[1].base_url", "must be an https:// URL"},
		{"base_url no scheme", "", []string{"QRSWITCH_PARTNERS_0_BASE_URL=wallet-a.example"}, "partners[0].base_url", "must be an https:// URL"},
		{"base_url unparsable", "", []string{"QRSWITCH_PARTNERS_0_BASE_URL=https://a:port"}, "partners[0].base_url", "must be an https:// URL"},
		{"base_url without host", "", []string{"QRSWITCH_PARTNERS_0_BASE_URL=https:///qr"}, "partners[0].base_url", "must name a host"},
		{"base_url with credentials", "", []string{"QRSWITCH_PARTNERS_0_BASE_URL=https://u:p@wallet-a.example"}, "partners[0].base_url", "must not hold credentials"},
		{"base_url with query", "", []string{"QRSWITCH_PARTNERS_0_BASE_URL=https://wallet-a.example?x=1"}, "partners[0].base_url", "must not have a query"},
		{"timeout negative", "", []string{"QRSWITCH_PARTNERS_0_TIMEOUT=-1s"}, "partners[0].timeout", "must be greater than 0"},
		{"timeout too long", "", []string{"QRSWITCH_PARTNERS_1_TIMEOUT=5m1s"}, "partners[1].timeout", "must be at most 5m0s, got 5m1s"},
		{"role", "", []string{"QRSWITCH_SUPPORT_0_ROLE=admin"}, "support[0].role", `must be "viewer" or "operator", got "admin"`},
		{"role empty", "", []string{"QRSWITCH_SUPPORT_0_ROLE="}, "support[0].role", `got ""`},
	}
	runValidationCases(t, devYAML(), tests)
}

// TestValidateWithoutDefaults covers rules that Load's defaults always
// satisfy, for callers that build a Config in code.
func TestValidateWithoutDefaults(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		path   string
		msg    string
	}{
		{"rail empty", func(c *Config) { c.Partners[0].Rail = "" }, "partners[0].rail", "required"},
		{"data_dir empty", func(c *Config) { c.DataDir = "" }, "data_dir", "must not be empty"},
		{"client certificate without a client CA", func(c *Config) { c.TLS.ClientCAFile = ""; c.Retailers[0].ClientCert = "pos-1" }, "retailers[0].client_cert", "needs tls.client_ca_file"},
		{"trusted proxy not an address", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "lb.example"} }, "trusted_proxies[1]", "IP address or a CIDR"},
		{"timeout zero", func(c *Config) { c.Partners[0].Timeout = 0 }, "partners[0].timeout", "must be greater than 0, got 0s"},
		{"scan_wait zero", func(c *Config) { c.ScanWait = 0 }, "scan_wait", "must be greater than 0, got 0s"},
		{"workers zero", func(c *Config) { c.SAF.Workers = 0 }, "saf.workers", "got 0"},
		{"listen empty", func(c *Config) { c.Listen = "" }, "listen", "must be host:port"},
		{"store empty", func(c *Config) { c.Store.URL = "" }, "store.url", "must be a URL"},
		{"tls reload_interval negative", func(c *Config) { c.TLS.ReloadInterval = sec(-time.Second) }, "tls.reload_interval", "must be greater than 0"},
		{"retention zero", func(c *Config) { c.Store.Retention = 0 }, "store.retention", "must be greater than 0"},
		{"wait_timeout zero", func(c *Config) { c.Store.WaitTimeout = 0 }, "store.wait_timeout", "must be greater than 0"},
		{"wait_timeout long", func(c *Config) { c.Store.WaitTimeout = sec(time.Minute) }, "store.wait_timeout", "at most 10s"},
		{"wait_replicas negative", func(c *Config) { c.Store.WaitReplicas = -1 }, "store.wait_replicas", "from 0 to 16"},
		{"wait_replicas on sqlite", func(c *Config) { c.Store.WaitReplicas = 1 }, "store.wait_replicas", "needs a Redis store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Development()
			tt.mutate(c)
			if err := c.Validate(); !hasProblem(err, tt.path, tt.msg) {
				t.Errorf("Validate(%s) = %v, want a problem %s: …%s…", tt.name, err, tt.path, tt.msg)
			}
		})
	}
}

// TestValidateAccepts keeps the rules from refusing what is legitimate.
func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		env  []string
	}{
		{"as written", nil},
		{"http base_url in development", []string{"QRSWITCH_PARTNERS_0_BASE_URL=http://127.0.0.1:9443"}},
		{"base_url with a path", []string{"QRSWITCH_PARTNERS_0_BASE_URL=https://wallet-a.example/electrum/"}},
		{"all interfaces", []string{"QRSWITCH_LISTEN=:8443", "QRSWITCH_ADMIN_LISTEN=[::1]:9090"}},
		{"random ports", []string{"QRSWITCH_LISTEN=127.0.0.1:0", "QRSWITCH_ADMIN_LISTEN=127.0.0.1:0"}},
		{"sqlite absolute", []string{"QRSWITCH_STORE_URL=sqlite:///var/lib/qrswitch/q.db"}},
		{"redis", []string{"QRSWITCH_STORE_URL=redis://:pw@redis:6379/0"}},
		{"rediss", []string{"QRSWITCH_STORE_URL=rediss://redis.internal:6380/1?dial_timeout=3s"}},
		{"sentinel", []string{"QRSWITCH_STORE_URL=redis+sentinel://s1:26379,s2:26379/mymaster"}},
		{"cluster", []string{"QRSWITCH_STORE_URL=redis+cluster://n1:6379,n2:6379,n3:6379"}},
		{"limits", []string{"QRSWITCH_SAF_WORKERS=1024", "QRSWITCH_PARTNERS_0_TIMEOUT=5m", "QRSWITCH_SAF_INITIAL_INTERVAL=60s", "QRSWITCH_SAF_GIVE_UP_AFTER=61s"}},
		{"one worker", []string{"QRSWITCH_SAF_WORKERS=1"}},
		{"ids", []string{"QRSWITCH_RETAILERS_0_ID=Shop_1.a-b"}},
		{"$2b$ and $2y$ hashes", []string{"QRSWITCH_RETAILERS_0_PASSWORD_HASH=$2b" + testHash[3:], "QRSWITCH_SUPPORT_0_PASSWORD_HASH=$2y" + testHash[3:]}},
		{"development credentials in development", []string{"QRSWITCH_RETAILERS_0_PASSWORD_HASH=" + mustHash(DevRetailerPassword)}},
		{"same id for a retailer and a partner", []string{"QRSWITCH_PARTNERS_0_ID=shop-1"}},
		{"upstream username equal to a retailer's", []string{"QRSWITCH_PARTNERS_0_USERNAME=shop-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Load(writeConfig(t, devYAML()), tt.env); err != nil {
				t.Errorf("Load(%s) error = %v, want nil", tt.name, err)
			}
		})
	}
}

func TestProductionRefusals(t *testing.T) {
	tests := []validationCase{
		{"plaintext retailer password", "", []string{"QRSWITCH_RETAILERS_0_PASSWORD_HASH=", "QRSWITCH_RETAILERS_0_PASSWORD=pw"}, "retailers[0].password", "plaintext passwords are refused in production: set password_hash"},
		{"plaintext beside a hash", "", []string{"QRSWITCH_RETAILERS_0_PASSWORD=pw"}, "retailers[0].password", "refused in production"},
		{"plaintext scan password", "", []string{"QRSWITCH_PARTNERS_0_SCAN_PASSWORD_HASH=", "QRSWITCH_PARTNERS_0_SCAN_PASSWORD=pw"}, "partners[0].scan_password", "plaintext passwords are refused in production: set scan_password_hash"},
		{"plaintext support password", "", []string{"QRSWITCH_SUPPORT_0_PASSWORD_HASH=", "QRSWITCH_SUPPORT_0_PASSWORD=pw"}, "support[0].password", "refused in production"},
		{"missing certificate", "", []string{"QRSWITCH_TLS_CERT_FILE="}, "tls.cert_file", "required in production: without it the switch falls back to a self-signed development certificate"},
		{"missing key", "", []string{"QRSWITCH_TLS_KEY_FILE="}, "tls.key_file", "required in production"},
		{"http base_url", "", []string{"QRSWITCH_PARTNERS_0_BASE_URL=http://wallet-a.example"}, "partners[0].base_url", "must be an https:// URL: http:// is allowed in development only"},
		{"cheap hash", "", nil, "retailers[0].password_hash", "bcrypt cost 4 is below 10, the minimum in production"},
		{"development retailer password hashed", "", []string{"QRSWITCH_RETAILERS_0_PASSWORD_HASH=" + mustHash(DevRetailerPassword)}, "retailers[0].password_hash", "well-known development password"},
		{"development scan password hashed", "", []string{"QRSWITCH_PARTNERS_0_SCAN_PASSWORD_HASH=" + mustHash(DevPartnerScanPassword)}, "partners[0].scan_password_hash", "well-known development password"},
		{"development support password hashed", "", []string{"QRSWITCH_SUPPORT_0_PASSWORD_HASH=" + mustHash(DevSupportPassword)}, "support[0].password_hash", "well-known development password"},
		{"another role's development password", "", []string{"QRSWITCH_SUPPORT_0_PASSWORD_HASH=" + mustHash(DevRetailerPassword)}, "support[0].password_hash", "well-known development password"},
		{"development upstream password", "", []string{"QRSWITCH_PARTNERS_0_PASSWORD=" + DevPartnerPassword}, "partners[0].password", "well-known development password"},
		{"development rail secret in options", "", []string{"QRSWITCH_PARTNERS_0_OPTIONS_TOKEN=" + DevOPPeerToken}, "partners[0].options.token", "well-known secret of the development setup"},
	}
	runValidationCases(t, prodYAML(), tests)
}

func TestProductionRefusesDevelopmentSetup(t *testing.T) {
	_, err := Load("", []string{"QRSWITCH_ENV=production"})
	for _, want := range []Problem{
		{"env", "production refuses the built-in development setup"},
		{"tls.cert_file", "self-signed development certificate"},
		{"retailers[0].password", "refused in production"},
		{"partners[0].scan_password", "refused in production"},
		{"support[0].password", "refused in production"},
		{"partners[0].password", "well-known development password"},
	} {
		if !hasProblem(err, want.Path, want.Msg) {
			t.Errorf(`Load("", QRSWITCH_ENV=production) error = %v, want a problem %s`, err, want)
		}
	}
}

// TestProductionOnlyCost checks that prodYAML breaks no production rule but
// the cost one, so the refusal cases above each test one rule.
func TestProductionOnlyCost(t *testing.T) {
	_, err := Load(writeConfig(t, prodYAML()), nil)
	ps := problemsOf(err)
	if len(ps) != 3 {
		t.Fatalf("Load(prodYAML) error = %v, want three cost problems", err)
	}
	for _, p := range ps {
		if !strings.Contains(p.Msg, "bcrypt cost 4 is below 10") {
			t.Errorf("Load(prodYAML) problem %s, want only cost problems", p)
		}
	}
}

func TestValidationErrorReport(t *testing.T) {
	_, err := Load(writeConfig(t, devYAML()), []string{
		"QRSWITCH_ENV=staging",
		"QRSWITCH_SAF_WORKERS=2000",
		"QRSWITCH_PARTNERS_1_BASE_URL=ftp://x",
		"QRSWITCH_STORE_URL=redis://:hunter2@/0",
	})
	want := []string{
		`env: must be "development" or "production", got "staging"`,
		"store.url: redis:// needs a host",
		"saf.workers: must be from 1 to 1024, got 2000",
		"partners[1].base_url: must be an https:// URL",
	}
	if got := problemsOf(err); len(got) != len(want) {
		t.Fatalf("Load(four problems) error = %v, want %d problems", err, len(want))
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 1+len(want) || !strings.HasSuffix(lines[0], "invalid configuration:") {
		t.Fatalf("Load(four problems) error = %q, want a heading and one line per problem", err)
	}
	for i, w := range want {
		if got := strings.TrimSpace(lines[i+1]); !strings.HasPrefix(got, w) {
			t.Errorf("Load(four problems) error line %d = %q, want it to start %q", i+1, got, w)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Load(four problems) error = %v, want the store password left out", err)
	}
}

// TestDevSecretIn: each development rail's options are found to hold a
// well-known secret, named by its key path; options without one are not.
func TestDevSecretIn(t *testing.T) {
	want := map[string]string{DevILPPartnerID: "dfsps[0].password", DevOPPartnerID: "peers[0].token", DevIPPPartnerID: "auditors[0].token", DevChainPartnerID: "xpub"}
	for _, p := range Development().Partners {
		if got := devSecretIn(&p.Options, ""); got != want[p.ID] {
			t.Errorf("devSecretIn(partner %s options) = %q, want %q", p.ID, got, want[p.ID])
		}
	}
}
