package config

import (
	"gopkg.in/yaml.v3"

	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// devYAML is a valid development configuration with two of each principal,
// mixing hashes and plaintext twins.
func devYAML() string {
	return fmt.Sprintf(`
listen: 127.0.0.1:8443
retailers:
  - {id: shop-1, username: shop-1, password_hash: %[1]q, institution_id: "1234"}
  - {id: shop-2, username: shop-2, password: shop-2-password, institution_id: "1235"}
partners:
  - id: wallet-a
    name: Wallet A
    base_url: https://wallet-a.example
    username: switch
    password: upstream-secret
    scan_username: wallet-a
    scan_password_hash: %[1]q
  - id: wallet-b
    base_url: http://127.0.0.1:9443
    scan_username: wallet-b
    scan_password: wallet-b-password
support:
  - {username: alice, password_hash: %[1]q, role: viewer}
`, testHash)
}

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name string
		file bool // load devYAML; otherwise the development setup
		env  []string
		got  func(*Config) any
		want any
	}{
		{"scalar", true, []string{"QRSWITCH_LISTEN=0.0.0.0:8443"}, func(c *Config) any { return c.Listen }, "0.0.0.0:8443"},
		{"scalar with underscore in key", true, []string{"QRSWITCH_ADMIN_LISTEN=127.0.0.1:9999"}, func(c *Config) any { return c.AdminListen }, "127.0.0.1:9999"},
		{"empty value clears", true, []string{"QRSWITCH_PARTNERS_0_NAME="}, func(c *Config) any { return c.Partners[0].Name }, ""},
		{"value with =", true, []string{"QRSWITCH_PARTNERS_0_PASSWORD=a=b"}, func(c *Config) any { return c.Partners[0].Password }, "a=b"},
		{"nested", true, []string{"QRSWITCH_TLS_CERT_FILE=/c.pem", "QRSWITCH_TLS_KEY_FILE=/k.pem"}, func(c *Config) any { return c.TLS }, TLS{CertFile: "/c.pem", KeyFile: "/k.pem", ReloadInterval: sec(10 * time.Second)}},
		{"nested store", true, []string{"QRSWITCH_STORE_URL=redis://r:6379/0"}, func(c *Config) any { return c.Store.URL }, "redis://r:6379/0"},
		{"duration", true, []string{"QRSWITCH_SCAN_WAIT=1500ms"}, func(c *Config) any { return c.ScanWait }, sec(1500 * time.Millisecond)},
		{"nested duration", true, []string{"QRSWITCH_SAF_GIVE_UP_AFTER=96h"}, func(c *Config) any { return c.SAF.GiveUpAfter }, sec(96 * time.Hour)},
		{"int", true, []string{"QRSWITCH_SAF_WORKERS=8"}, func(c *Config) any { return c.SAF.Workers }, 8},
		{"list index", true, []string{"QRSWITCH_PARTNERS_0_BASE_URL=https://other.example"}, func(c *Config) any { return c.Partners[0].BaseURL }, "https://other.example"},
		{"list index, key prefixed by another key", true, []string{"QRSWITCH_PARTNERS_1_SCAN_PASSWORD_HASH=" + testHash, "QRSWITCH_PARTNERS_1_SCAN_PASSWORD="},
			func(c *Config) any { return []string{c.Partners[1].ScanPasswordHash, c.Partners[1].ScanPassword} }, []string{testHash, ""}},
		{"list index second element", true, []string{"QRSWITCH_RETAILERS_1_PASSWORD_HASH=" + testHash, "QRSWITCH_RETAILERS_1_PASSWORD="},
			func(c *Config) any { return c.Retailers[1].PasswordHash }, testHash},
		{"list append", true, []string{
			"QRSWITCH_PARTNERS_2_ID=wallet-c",
			"QRSWITCH_PARTNERS_2_BASE_URL=https://wallet-c.example",
			"QRSWITCH_PARTNERS_2_SCAN_USERNAME=wallet-c",
			"QRSWITCH_PARTNERS_2_SCAN_PASSWORD_HASH=" + testHash,
		}, func(c *Config) any { return c.Partners[2] }, Partner{
			ID: "wallet-c", Rail: "electrum", BaseURL: "https://wallet-c.example", Timeout: sec(60 * time.Second),
			ScanUsername: "wallet-c", ScanPasswordHash: testHash,
		}},
		{"list append twice, any order", true, []string{
			"QRSWITCH_SUPPORT_2_USERNAME=carol", "QRSWITCH_SUPPORT_2_PASSWORD=pw", "QRSWITCH_SUPPORT_2_ROLE=viewer",
			"QRSWITCH_SUPPORT_1_USERNAME=bob", "QRSWITCH_SUPPORT_1_PASSWORD=pw", "QRSWITCH_SUPPORT_1_ROLE=operator",
		}, func(c *Config) any { return c.Support[1:] }, []SupportUser{
			{Username: "bob", Password: "pw", Role: RoleOperator},
			{Username: "carol", Password: "pw", Role: RoleViewer},
		}},
		{"list append to the development setup", false, []string{
			"QRSWITCH_RETAILERS_2_ID=shop-9", "QRSWITCH_RETAILERS_2_USERNAME=shop-9", "QRSWITCH_RETAILERS_2_PASSWORD=pw",
		}, func(c *Config) any { return c.Retailers[2] }, Retailer{ID: "shop-9", Username: "shop-9", Password: "pw"}},
		{"development setup", false, []string{"QRSWITCH_LISTEN=127.0.0.1:18443"}, func(c *Config) any { return c.Listen }, "127.0.0.1:18443"},
		{"data_dir moves the default store", false, []string{"QRSWITCH_DATA_DIR=/tmp/q"}, func(c *Config) any { return c.Store.URL }, "sqlite:///tmp/q/qrswitch.db"},
		{"data_dir leaves an explicit store", false, []string{"QRSWITCH_DATA_DIR=/tmp/q", "QRSWITCH_STORE_URL=sqlite:///data/s.db"}, func(c *Config) any { return c.Store.URL }, "sqlite:///data/s.db"},
		{"other variables ignored", true, []string{"PATH=/bin", "qrswitch_listen=x", "QRSWITCH", "HOME=/root"}, func(c *Config) any { return c.Listen }, "127.0.0.1:8443"},
		{"first occurrence wins", true, []string{"QRSWITCH_LISTEN=127.0.0.1:1", "QRSWITCH_LISTEN=127.0.0.1:2"}, func(c *Config) any { return c.Listen }, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file {
				path = writeConfig(t, devYAML())
			}
			c, err := Load(path, tt.env)
			if err != nil {
				t.Fatalf("Load(%s) error = %v, want nil", tt.name, err)
			}
			if got := tt.got(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load(%s) = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

func TestEnvOverrideErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		want    []string // every variable named, each with its message
		unknown bool     // errors.Is(err, ErrUnknownVar)
	}{
		{"typo", []string{"QRSWITCH_LISTN=x"}, []string{"QRSWITCH_LISTN: names no configuration key"}, true},
		{"section", []string{"QRSWITCH_TLS=x"}, []string{"QRSWITCH_TLS: names no"}, true},
		{"list", []string{"QRSWITCH_PARTNERS=x"}, []string{"QRSWITCH_PARTNERS: names no"}, true},
		{"list element", []string{"QRSWITCH_PARTNERS_0=x"}, []string{"QRSWITCH_PARTNERS_0: names no"}, true},
		{"not an index", []string{"QRSWITCH_PARTNERS_A_ID=x"}, []string{"QRSWITCH_PARTNERS_A_ID: names no"}, true},
		{"leading zero index", []string{"QRSWITCH_PARTNERS_01_ID=x"}, []string{"QRSWITCH_PARTNERS_01_ID: names no"}, true},
		{"trailing underscore", []string{"QRSWITCH_LISTEN_=x"}, []string{"QRSWITCH_LISTEN_: names no"}, true},
		{"below a value", []string{"QRSWITCH_SAF_WORKERS_MAX=x"}, []string{"QRSWITCH_SAF_WORKERS_MAX: names no"}, true},
		{"prefix only", []string{"QRSWITCH_=x"}, []string{"QRSWITCH_: names no"}, true},
		{"lower-case key", []string{"QRSWITCH_listen=x"}, []string{"QRSWITCH_listen: names no"}, true},
		{"not from the environment", []string{"QRSWITCH_DEVELOPMENT=true"}, []string{"QRSWITCH_DEVELOPMENT: names no"}, true},
		{"bad duration", []string{"QRSWITCH_SCAN_WAIT=soon"}, []string{`QRSWITCH_SCAN_WAIT (scan_wait): invalid duration "soon"`}, false},
		{"unitless duration", []string{"QRSWITCH_PARTNERS_0_TIMEOUT=30"}, []string{`QRSWITCH_PARTNERS_0_TIMEOUT (partners[0].timeout): invalid duration "30"`}, false},
		{"bad int", []string{"QRSWITCH_SAF_WORKERS=many"}, []string{`QRSWITCH_SAF_WORKERS (saf.workers): invalid integer "many"`}, false},
		{"empty int", []string{"QRSWITCH_SAF_WORKERS="}, []string{`QRSWITCH_SAF_WORKERS (saf.workers): invalid integer ""`}, false},
		{"int overflow", []string{"QRSWITCH_SAF_WORKERS=99999999999999999999"}, []string{"QRSWITCH_SAF_WORKERS (saf.workers): invalid integer"}, false},
		{"index past the append slot", []string{"QRSWITCH_PARTNERS_3_ID=x"}, []string{"QRSWITCH_PARTNERS_3_ID (partners[3].id): index 3 is out of range: the list has 2 element(s), and index 2 would append one"}, false},
		{"every problem reported", []string{"QRSWITCH_SCAN_WAIT=soon", "QRSWITCH_LISTN=x", "QRSWITCH_RETAILERS_7_ID=x"}, []string{
			"QRSWITCH_SCAN_WAIT (scan_wait)", "QRSWITCH_LISTN: names no", "QRSWITCH_RETAILERS_7_ID (retailers[7].id): index 7",
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, devYAML()), tt.env)
			if err == nil {
				t.Fatalf("Load(%s) error = nil, want %q", tt.name, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%s) error = %v, want it to contain %q", tt.name, err, w)
				}
			}
			if errors.Is(err, ErrUnknownVar) != tt.unknown {
				t.Errorf("Load(%s): errors.Is(err, ErrUnknownVar) = %v, want %v", tt.name, !tt.unknown, tt.unknown)
			}
			var ee *EnvError
			if !errors.As(err, &ee) {
				t.Errorf("Load(%s) error = %T, want an *EnvError", tt.name, err)
			}
		})
	}
}

// leafPaths lists every key of t that the environment can set, taking
// index 0 for lists.
func leafPaths(t reflect.Type, prefix []int) [][]int {
	if t == yamlNodeType {
		return nil // a rail's options: the rail's keys, see TestOptionOverrides
	}
	if settable(t) {
		return [][]int{slices.Clone(prefix)}
	}
	var out [][]int
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if yamlKey(t.Field(i)) != "" {
				out = append(out, leafPaths(t.Field(i).Type, append(prefix, i))...)
			}
		}
	case reflect.Slice:
		out = leafPaths(t.Elem(), append(prefix, 0))
	}
	return out
}

// TestEveryKeyHasOneVariable guards the schema: each key, present or
// future, must be reachable by exactly one variable and land on itself.
func TestEveryKeyHasOneVariable(t *testing.T) {
	root := reflect.TypeFor[Config]()
	paths := leafPaths(root, nil)
	if len(paths) < 30 {
		t.Fatalf("leafPaths(Config) found %d keys, want every key of the schema", len(paths))
	}
	for _, p := range paths {
		key := keyOf(root, p)
		name := strings.ToUpper(strings.NewReplacer("[", "_", "]", "", ".", "_").Replace(key))
		got := resolve(root, name)
		if len(got) != 1 || !slices.Equal(got[0], p) {
			t.Errorf("resolve(%s%s) = %v, want exactly [%v] (%s)", EnvPrefix, name, got, p, key)
		}
	}
}

// TestOptionOverrides checks QRSWITCH_PARTNERS_<i>_OPTIONS_<KEY>: a rail's
// option set, added, or given to a partner appended by the environment,
// and the rail's options refused when they are not a mapping.
func TestOptionOverrides(t *testing.T) {
	const base = `
retailers:
  - {id: shop-1, username: shop-1, password: pw, institution_id: "1"}
partners:
  - id: chain
    rail: cryptopay
    options: {rpc_url: "http://127.0.0.1:8545", confirmations: 1}
`
	c, err := Load(writeConfig(t, base), []string{
		"QRSWITCH_PARTNERS_0_OPTIONS_CONFIRMATIONS=12",
		"QRSWITCH_PARTNERS_0_OPTIONS_WS_URL=ws://127.0.0.1:8546",
		"QRSWITCH_PARTNERS_1_ID=wallet-b", "QRSWITCH_PARTNERS_1_OPTIONS_TOKEN=secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := func(n yaml.Node) map[string]string {
		var m map[string]string
		if err := n.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got, want := opts(c.Partners[0].Options), map[string]string{"rpc_url": "http://127.0.0.1:8545", "confirmations": "12", "ws_url": "ws://127.0.0.1:8546"}; !reflect.DeepEqual(got, want) {
		t.Errorf("partners[0].options = %v, want %v", got, want)
	}
	if got := opts(c.Partners[1].Options); got["token"] != "secret" || c.Partners[1].ID != "wallet-b" {
		t.Errorf("appended partner = %+v, options %v", c.Partners[1], got)
	}
	if _, err := Load(writeConfig(t, strings.Replace(base, `options: {rpc_url: "http://127.0.0.1:8545", confirmations: 1}`, "options: [1, 2]", 1)), nil); !hasProblem(err, "partners[0].options", "must be a mapping") {
		t.Errorf("options as a list: %v, want a problem", err)
	}
	if _, err := Load(writeConfig(t, base), []string{"QRSWITCH_PARTNERS_5_OPTIONS_X=1"}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("option of a partner far past the end: %v, want an out-of-range error", err)
	}
}
