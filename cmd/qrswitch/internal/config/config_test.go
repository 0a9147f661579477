package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// The bcrypt hashes in ../deploy/qrswitch.yaml (cost 10, of unrecorded random
// passwords).
const (
	fullShopHash    = "$2a$10$Htbu3U6wsZUUWuWaCNk5cunCO4NYnmrk9pM2UIDQ8sUKRGnZyFipm"
	fullWalletHash  = "$2a$10$PXUqAd/Qky17TPWytUR3K.hwt4yZ5ggo9rNI7Qr2wcSXlMUuhnfpG"
	fullSupportHash = "$2a$10$doaIGQm8w17AUJeVR02AMekuCzisszQIDQSUZo1HJGAEHqF3lQjCG"
)

// testHash is a cheap bcrypt hash for tests that do not exercise the
// production cost rule.
var testHash = mustHash("test-password")

func mustHash(password string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}

// writeConfig writes a config file for one test and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qrswitch.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sec(d time.Duration) Duration { return Duration(d) }

func TestLoadFullSample(t *testing.T) {
	want := &Config{
		Env:            EnvProduction,
		Listen:         "0.0.0.0:8443",
		AdminListen:    "127.0.0.1:9090",
		PublicURL:      "https://qr.example.com",
		DataDir:        "/var/lib/qrswitch",
		TrustedProxies: []string{"10.0.0.0/8"},
		TLS: TLS{
			CertFile:       "/etc/qrswitch/tls/server.crt",
			KeyFile:        "/etc/qrswitch/tls/server.key",
			ClientCAFile:   "/etc/qrswitch/tls/clients-ca.pem",
			ReloadInterval: sec(10 * time.Second),
		},
		Store:           Store{URL: "rediss://redis.internal:6380/0", Retention: sec(2160 * time.Hour), WaitReplicas: 1, WaitTimeout: sec(200 * time.Millisecond)},
		RetailerTimeout: sec(60 * time.Second),
		ScanWait:        sec(40 * time.Second),
		EarlyScanGrace:  OptDuration{Duration: sec(5 * time.Second), Set: true},
		AdviceDeadline:  sec(168 * time.Hour),
		QRTTL:           sec(5 * time.Minute),
		MemoryLimit:     "auto",
		Checkout:        CheckoutListener{Listen: "127.0.0.1:8888"},
		SAF: SAF{
			InitialInterval: sec(time.Second),
			MaxInterval:     sec(60 * time.Second),
			GiveUpAfter:     sec(72 * time.Hour),
			Workers:         32,
		},
		Retailers: []Retailer{
			{ID: "shop-1", Username: "shop-1", PasswordHash: fullShopHash, InstitutionID: "0042", ClientCert: "pos.shop-1.example", Offers: []string{"wallet-a"},
				Checkout: RetailerCheckout{Allow: []string{"10.20.0.5"}, Credentials: "required", Currency: "710", MaxAmount: "1000000",
					Expiry: sec(30 * time.Minute), PostbackSecret: "set-me-from-QRSWITCH_RETAILERS_0_CHECKOUT_POSTBACK_SECRET",
					Merchant: CheckoutMerchant{Name: "Shop One", City: "Cape Town", Country: "ZA", MCC: "5999"}}},
		},
		Partners: []Partner{{
			ID: "wallet-a", Name: "Wallet A", Rail: "electrum",
			BaseURL:  "https://api.wallet-a.example/electrum",
			Username: "switch", Password: "set-me-from-QRSWITCH_PARTNERS_0_PASSWORD",
			CAFile:           "/etc/qrswitch/partners/wallet-a-ca.pem",
			Timeout:          sec(60 * time.Second),
			ScanUsername:     "wallet-a",
			ScanPasswordHash: fullWalletHash,
			ClientCert:       "gateway.wallet-a.example",
		}},
		Support: []SupportUser{
			{Username: "alice", PasswordHash: fullSupportHash, Role: RoleOperator},
		},
	}
	got, err := Load("../../../../deploy/qrswitch.yaml", nil)
	if err != nil {
		t.Fatalf("Load(../../../../deploy/qrswitch.yaml) error = %v, want nil", err)
	}
	if got.Partners[0].Options.Kind != yaml.MappingNode {
		t.Fatalf("partners[0].options = %+v, want the (empty) mapping of the sample", got.Partners[0].Options)
	}
	got.Partners[0].Options = yaml.Node{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(../../../../deploy/qrswitch.yaml) =\n%+v\nwant\n%+v", got, want)
	}
}

// TestFullSampleHasEveryKey keeps the sample complete, so the deploy copy
// documents every key of Config. The plaintext twins, refused in
// production, appear as comments.
func TestFullSampleHasEveryKey(t *testing.T) {
	text, err := os.ReadFile("../../../../deploy/qrswitch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	commented := map[string]bool{"retailers.password": true, "partners.scan_password": true, "support.password": true}
	if p, _ := doc["partners"].([]any); len(p) == 0 || p[0].(map[string]any)["options"] == nil {
		t.Errorf("../../../../deploy/qrswitch.yaml lacks partners.options")
	}
	root := reflect.TypeFor[Config]()
	for _, path := range leafPaths(root, nil) {
		key := strings.ReplaceAll(keyOf(root, path), "[0]", "")
		parts := strings.Split(key, ".")
		if commented[key] {
			if !strings.Contains(string(text), "# "+parts[len(parts)-1]+":") {
				t.Errorf("../../../../deploy/qrswitch.yaml lacks a comment showing %s", key)
			}
			continue
		}
		node := any(doc)
		for _, part := range parts {
			if list, ok := node.([]any); ok && len(list) > 0 {
				node = list[0]
			}
			m, _ := node.(map[string]any)
			var ok bool
			if node, ok = m[part]; !ok {
				t.Errorf("../../../../deploy/qrswitch.yaml lacks %s", key)
				break
			}
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	const minimal = `
retailers:
  - {id: shop-1, username: shop-1, password: pw, institution_id: "1"}
partners:
  - {id: wallet-a, base_url: "https://wallet-a.example", scan_username: wallet-a, scan_password: pw}
`
	tests := []struct {
		name string
		yaml string
		got  func(*Config) any
		want any
	}{
		{"env", minimal, func(c *Config) any { return c.Env }, EnvDevelopment},
		{"listen", minimal, func(c *Config) any { return c.Listen }, "127.0.0.1:8443"},
		{"admin_listen", minimal, func(c *Config) any { return c.AdminListen }, "127.0.0.1:9090"},
		{"data_dir", minimal, func(c *Config) any { return c.DataDir }, "./var"},
		{"store.url", minimal, func(c *Config) any { return c.Store.URL }, "sqlite://./var/qrswitch.db"},
		{"store.url follows data_dir", minimal + "data_dir: /srv/qrswitch/\n", func(c *Config) any { return c.Store.URL }, "sqlite:///srv/qrswitch/qrswitch.db"},
		{"store.url explicit", minimal + "data_dir: /srv\nstore: {url: \"redis://r:6379/0\"}\n", func(c *Config) any { return c.Store.URL }, "redis://r:6379/0"},
		{"store.retention", minimal, func(c *Config) any { return c.Store.Retention }, sec(2160 * time.Hour)},
		{"store.wait_replicas", minimal, func(c *Config) any { return c.Store.WaitReplicas }, 0},
		{"store.wait_timeout", minimal, func(c *Config) any { return c.Store.WaitTimeout }, sec(200 * time.Millisecond)},
		{"retailer_timeout", minimal, func(c *Config) any { return c.RetailerTimeout }, sec(60 * time.Second)},
		{"scan_wait", minimal, func(c *Config) any { return c.ScanWait }, sec(40 * time.Second)},
		{"early_scan_grace", minimal, func(c *Config) any { return c.EarlyScanGrace.Duration }, sec(5 * time.Second)},
		{"early_scan_grace 0s turns it off", minimal + "early_scan_grace: 0s\n", func(c *Config) any { return c.EarlyScanGrace }, OptDuration{Set: true}},
		{"early_scan_grace 0s from the environment", minimal, func(c *Config) any { return c.EarlyScanGrace }, OptDuration{Set: true}},
		{"advice_deadline", minimal, func(c *Config) any { return c.AdviceDeadline }, sec(168 * time.Hour)},
		{"qr_ttl", minimal, func(c *Config) any { return c.QRTTL }, sec(5 * time.Minute)},
		{"memory_limit", minimal, func(c *Config) any { return c.MemoryLimit }, "auto"},
		{"saf.initial_interval", minimal, func(c *Config) any { return c.SAF.InitialInterval }, sec(time.Second)},
		{"saf.max_interval", minimal, func(c *Config) any { return c.SAF.MaxInterval }, sec(60 * time.Second)},
		{"saf.give_up_after", minimal, func(c *Config) any { return c.SAF.GiveUpAfter }, sec(72 * time.Hour)},
		{"saf.workers", minimal, func(c *Config) any { return c.SAF.Workers }, 32},
		{"zero means default", minimal + "saf: {workers: 0}\nscan_wait: 0\n", func(c *Config) any { return []any{c.SAF.Workers, c.ScanWait} }, []any{32, sec(40 * time.Second)}},
		{"base_url optional", strings.Replace(minimal, `base_url: "https://wallet-a.example", `, "", 1), func(c *Config) any { return c.Partners[0].BaseURL }, ""},
		{"partners[0].rail", minimal, func(c *Config) any { return c.Partners[0].Rail }, "electrum"},
		{"partners[0].timeout", minimal, func(c *Config) any { return c.Partners[0].Timeout }, sec(60 * time.Second)},
		{"tls empty", minimal, func(c *Config) any { return c.TLS }, TLS{ReloadInterval: sec(10 * time.Second)}},
		{"support empty", minimal, func(c *Config) any { return len(c.Support) }, 0},
		{"development false with a file", minimal, func(c *Config) any { return c.Development }, false},
		{"unquoted institution_id keeps its digits", strings.Replace(minimal, `"1"`, "0001", 1), func(c *Config) any { return c.Retailers[0].InstitutionID }, "0001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env []string
			if strings.Contains(tt.name, "environment") {
				env = []string{"QRSWITCH_EARLY_SCAN_GRACE=0s"}
			}
			c, err := Load(writeConfig(t, tt.yaml), env)
			if err != nil {
				t.Fatalf("Load(%s) error = %v, want nil", tt.name, err)
			}
			if got := tt.got(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load(%s): %s = %v, want %v", tt.name, tt.name, got, tt.want)
			}
		})
	}
}

func TestLoadYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "env: development\nlisen: 127.0.0.1:1\n", []string{"line 2", "lisen"}},
		{"unknown nested key", "saf:\n  workers: 4\n  worker: 5\n", []string{"line 3", "worker"}},
		{"unknown list element key", "partners:\n  - id: a\n    base_ur1: https://a\n", []string{"line 3", "base_ur1"}},
		{"development is not a key", "development: true\n", []string{"line 1", "development"}},
		{"unitless duration", "scan_wait: 60\n", []string{"line 1", `invalid duration "60"`}},
		{"bad duration", "saf:\n  max_interval: soon\n", []string{"line 2", `invalid duration "soon"`}},
		{"duration as a mapping", "qr_ttl: {minutes: 5}\n", []string{"line 1", "want a duration"}},
		{"wrong type", "saf: {workers: many}\n", []string{"line 1", "many"}},
		{"duplicate key", "listen: a:1\nlisten: b:2\n", []string{"listen", "already defined"}},
		{"two documents", "env: development\n---\nenv: production\n", []string{"more than one YAML document"}},
		{"not yaml", "env: [unclosed\n", []string{"line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.yaml), nil)
			if err == nil {
				t.Fatalf("Load(%s) error = nil, want one mentioning %q", tt.name, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%s) error = %v, want it to mention %q", tt.name, err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(absent.yaml) error = %v, want fs.ErrNotExist", err)
	}
}

func TestDevelopmentSetup(t *testing.T) {
	want := &Config{
		Env:             EnvDevelopment,
		Listen:          "127.0.0.1:8443",
		AdminListen:     "127.0.0.1:9090",
		DataDir:         "./var",
		TLS:             TLS{ReloadInterval: sec(10 * time.Second)},
		Store:           Store{URL: "sqlite://./var/qrswitch.db", Retention: sec(2160 * time.Hour), WaitTimeout: sec(200 * time.Millisecond)},
		RetailerTimeout: sec(60 * time.Second),
		ScanWait:        sec(40 * time.Second),
		EarlyScanGrace:  OptDuration{Duration: sec(5 * time.Second), Set: true},
		AdviceDeadline:  sec(168 * time.Hour),
		QRTTL:           sec(5 * time.Minute),
		MemoryLimit:     "auto",
		SAF: SAF{
			InitialInterval: sec(time.Second),
			MaxInterval:     sec(60 * time.Second),
			GiveUpAfter:     sec(72 * time.Hour),
			Workers:         32,
		},
		Checkout: CheckoutListener{Listen: "127.0.0.1:8888"},
		Retailers: []Retailer{{
			ID: "demo-shop", Username: "demo-shop", Password: "demo-shop-dev-password", InstitutionID: "0001",
		}, {
			ID: "demo-webshop", Username: "demo-webshop", Password: "demo-webshop-dev-password", InstitutionID: "0002",
			Checkout: RetailerCheckout{Allow: []string{"127.0.0.1/32", "::1/128"}, Credentials: "optional", Currency: "QTT",
				MaxAmount: "20999984", Expiry: sec(30 * time.Minute), PostbackSecret: "demo-webshop-dev-postback-secret",
				Merchant: CheckoutMerchant{Name: "Demo Web Shop", City: "Cape Town", Country: "ZA", MCC: "5999"}},
		}},
		Partners: []Partner{{
			ID: "sim-wallet", Name: "Sim Wallet", Rail: "electrum", BaseURL: "https://127.0.0.1:9443",
			Username: "switch", Password: "switch-dev-password", Timeout: sec(60 * time.Second),
			ScanUsername: "sim-wallet", ScanPassword: "sim-wallet-dev-password",
		}, {
			ID: "ilp", Name: "ILP invoices", Rail: "ilpinvoice", BaseURL: "https://127.0.0.1:9444", Timeout: sec(60 * time.Second),
		}, {
			ID: "op", Name: "Open Payments", Rail: "openpayments", BaseURL: "https://127.0.0.1:9445", Timeout: sec(60 * time.Second),
		}, {
			ID: "ipp", Name: "IPP", Rail: "ipp", BaseURL: "https://127.0.0.1:9447", Timeout: sec(60 * time.Second),
		}, {
			ID: "chain", Name: "Token chain", Rail: "cryptopay", BaseURL: "https://127.0.0.1:9446", Timeout: sec(60 * time.Second),
		}},
		Support:     []SupportUser{{Username: "support", Password: "support-dev-password", Role: RoleOperator}},
		Development: true,
	}
	// The rails' options are the rails' to read: compared as the maps they
	// decode to, then left out of the comparison of the rest.
	wantOptions := map[string]any{
		"currency": "710", "ledger_prefix": "test.qrswitch.", "identifier_type": "msisdn", "fee_fixed": "0.50",
		"dfsps": []any{map[string]any{"id": "sim-dfsp", "name": "Sim DFSP", "balance": "100000.00", "username": "sim-dfsp", "password": "sim-dfsp-dev-password"}},
	}
	wantOPOptions := map[string]any{
		"path": "/op", "ilp_address": "test.qrswitch",
		"rates":   []any{map[string]any{"from": "USD", "to": "ZAR", "rate": "18.50"}},
		"wallets": []any{map[string]any{"retailer": "demo-shop", "name": "demo-shop", "public_name": "Demo Shop", "asset_code": "ZAR", "asset_scale": 2}},
		"peers":   []any{map[string]any{"name": "sim-ase", "token": "sim-ase-dev-token", "address": "test.qrswitch.sim-ase", "asset_code": "ZAR", "asset_scale": 2}},
	}
	options := func(c *Config) *Config {
		t.Helper()
		wantIPPOptions := map[string]any{"currency": "710", "auditors": []any{map[string]any{"name": "auditor", "token": "ipp-auditor-dev-token"}}}
		wantChainOptions := map[string]any{"ws_url": "auto", "chain_id": 1337, "token_address": "0x5150000000000000000000000000000000000001",
			"token_decimals": 6, "currency": "QTT", "xpub": DevChainXPub, "confirmations": 2, "poll_interval": "1s",
			"rates": []any{map[string]any{"currency": "710", "tokens": "1"}}}
		for i, want := range map[int]map[string]any{1: wantOptions, 2: wantOPOptions, 3: wantIPPOptions, 4: wantChainOptions} {
			var m map[string]any
			if err := c.Partners[i].Options.Decode(&m); err != nil || !reflect.DeepEqual(m, want) {
				t.Errorf("development partner %s options = %v (%v), want %v", c.Partners[i].ID, m, err, want)
			}
			c.Partners[i].Options = yaml.Node{}
		}
		return c
	}
	got, err := Load("", nil)
	if err != nil {
		t.Fatalf(`Load("") error = %v, want nil`, err)
	}
	if !reflect.DeepEqual(options(got), want) {
		t.Errorf("Load(\"\") =\n%+v\nwant\n%+v", got, want)
	}
	if dev := options(Development()); !reflect.DeepEqual(dev, want) {
		t.Errorf("Development() =\n%+v\nwant\n%+v", dev, want)
	}
	if err := Development().Validate(); err != nil {
		t.Errorf("Development().Validate() = %v, want nil", err)
	}
	// Each call returns its own setup: a caller editing one must not edit
	// the next.
	a := Development()
	a.Retailers[0].ID = "edited"
	if b := Development(); b.Retailers[0].ID != DevRetailerID {
		t.Errorf("Development() after editing an earlier result: retailers[0].id = %q, want %q", b.Retailers[0].ID, DevRetailerID)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		yaml string
		want time.Duration
	}{
		{"1500ms", 1500 * time.Millisecond},
		{"60s", time.Minute},
		{"72h", 72 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{`"5m"`, 5 * time.Minute},
		{"0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			var d Duration
			if err := yaml.Unmarshal([]byte(tt.yaml), &d); err != nil {
				t.Fatalf("yaml.Unmarshal(%s) error = %v, want nil", tt.yaml, err)
			}
			if d.D() != tt.want {
				t.Errorf("yaml.Unmarshal(%s) = %v, want %v", tt.yaml, d.D(), tt.want)
			}
			out, err := yaml.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := yaml.Unmarshal(out, &back); err != nil || back != d {
				t.Errorf("yaml round trip of %v = %v (%s), %v, want %v", d, back, out, err, d)
			}
		})
	}
	if b, _ := Duration(90 * time.Second).MarshalText(); string(b) != "1m30s" {
		t.Errorf("Duration(90s).MarshalText() = %s, want 1m30s", b)
	}
}
