package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestRedactedHidesEverySecret(t *testing.T) {
	secrets := []string{
		"s3cret-store", "s3cret-sentinel", "s3cret-hash-r", "s3cret-plain-r", "s3cret-upstream",
		"s3cret-base-url", "s3cret-hash-scan", "s3cret-plain-scan", "s3cret-hash-support", "s3cret-plain-support",
		testHash, DevRetailerPassword, DevPartnerPassword, DevPartnerScanPassword, DevSupportPassword,
	}
	c := Development()
	c.Store.URL = "redis+sentinel://admin:s3cret-store@s1:26379,s2:26379/mymaster?sentinel_password=s3cret-sentinel&db=0"
	c.Retailers = append(c.Retailers, Retailer{ID: "r", Username: "r", PasswordHash: "s3cret-hash-r"}, Retailer{ID: "r2", Password: "s3cret-plain-r"})
	c.Partners = append(c.Partners, Partner{
		ID: "p", BaseURL: "https://u:s3cret-base-url@p.example/x", Password: "s3cret-upstream",
		ScanPasswordHash: "s3cret-hash-scan", ScanPassword: "s3cret-plain-scan",
	})
	c.Support = append(c.Support, SupportUser{Username: "s", PasswordHash: "s3cret-hash-support"}, SupportUser{Username: "t", Password: "s3cret-plain-support"})
	c.Retailers[1].PasswordHash = testHash
	before := fmt.Sprintf("%+v", c)

	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("yaml.Marshal(Redacted()) contains secret %q:\n%s", s, out)
		}
	}
	for _, kept := range []string{"s1:26379,s2:26379/mymaster", "admin", "db=0", "p.example/x", DevRetailerUsername, "sim-wallet"} {
		if !strings.Contains(string(out), kept) {
			t.Errorf("yaml.Marshal(Redacted()) lacks %q, want only secrets hidden:\n%s", kept, out)
		}
	}
	if after := fmt.Sprintf("%+v", c); after != before {
		t.Errorf("Redacted() changed its receiver:\n%s\nwant\n%s", after, before)
	}
}

// TestRedactedCoversEveryPasswordKey guards the schema: every key that
// names a password or a secret, present or future, must be masked, and
// nothing else.
func TestRedactedCoversEveryPasswordKey(t *testing.T) {
	root := reflect.TypeFor[Config]()
	c := new(Config)
	v := reflect.ValueOf(c).Elem()
	paths := leafPaths(root, nil)
	for _, p := range paths {
		if reflect.TypeFor[string]() == fieldType(root, p) {
			if err := set(v, p, "value-of-"+keyOf(root, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := reflect.ValueOf(c.Redacted()).Elem()
	for _, p := range paths {
		key := keyOf(root, p)
		got := valueAt(r, p)
		if got.Kind() != reflect.String {
			continue
		}
		want := "value-of-" + key
		if strings.Contains(key, "password") || strings.Contains(key, "secret") {
			want = masked
		}
		if got.String() != want {
			t.Errorf("Redacted().%s = %q, want %q", key, got.String(), want)
		}
	}
}

func fieldType(t reflect.Type, path []int) reflect.Type {
	for _, i := range path {
		t = elemOrField(t, i)
	}
	return t
}

func valueAt(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		if v.Kind() == reflect.Slice {
			v = v.Index(i)
		} else {
			v = v.Field(i)
		}
	}
	return v
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"sqlite://./var/qrswitch.db", "sqlite://./var/qrswitch.db"},
		{"redis://r:6379/0", "redis://r:6379/0"},
		{"redis://:pw@r:6379/0", "redis://:****@r:6379/0"},
		{"rediss://user:pw@r:6380/1?dial_timeout=3s", "rediss://user:****@r:6380/1?dial_timeout=3s"},
		{"redis://user@r:6379", "redis://user@r:6379"},
		{"redis://:p/w@d@r:6379/0", "redis://:****@r:6379/0"},
		{"redis+sentinel://s1,s2/m?password=a&sentinel_password=b&db=2", "redis+sentinel://s1,s2/m?password=****&sentinel_password=****&db=2"},
		{"redis+cluster://:s3cret@n1:6379,n2:6379?key_prefix=q:", "redis+cluster://:****@n1:6379,n2:6379?key_prefix=q:"},
		{"redis://r/0?Password=a#frag", "redis://r/0?Password=****#frag"},
		{"https://u:pw@h/x", "https://u:****@h/x"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactedOptions(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("rpc_url: https://u:pw@node.example/\nxpub: xpub6Cpublic\npeer_token: s3cret\nnested: {client_secret: s3cret, confirmations: 12}\ntoken_address: '0xabc'\n"), &doc); err != nil {
		t.Fatal(err)
	}
	c := &Config{Partners: []Partner{{ID: "p", Options: *doc.Content[0]}}}
	out, err := yaml.Marshal(&c.Redacted().Partners[0].Options)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, secret := range []string{"s3cret", "u:pw@"} {
		if strings.Contains(text, secret) {
			t.Errorf("Redacted options = %s, still holding %q", text, secret)
		}
	}
	for _, kept := range []string{"xpub6Cpublic", "confirmations: 12", "0xabc", "node.example"} {
		if !strings.Contains(text, kept) {
			t.Errorf("Redacted options = %s, lost %q", text, kept)
		}
	}
	if strings.Contains(func() string { b, _ := yaml.Marshal(&c.Partners[0].Options); return string(b) }(), masked) {
		t.Error("Redacted changed the configuration it copied")
	}
}
