package openpayments_test

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/openpayments"
)

// TestOptionsRefused: New refuses options that would fail later, naming
// the key.
func TestOptionsRefused(t *testing.T) {
	const secret = `stream_secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="` + "\n"
	const wallet = "wallets: [{retailer: s, asset_code: USD, asset_scale: 2}]\n"
	for _, c := range []struct {
		name, options, public, want string
		dev                         bool
	}{
		{"unknown key", secret + "colour: blue\n", "https://sw.example", "colour", false},
		{"no secret in production", wallet, "https://sw.example", "stream_secret", false},
		{"short secret", `stream_secret: "c2hvcnQ="` + "\n", "https://sw.example", "stream_secret", false},
		{"reserved wallet name", secret + "wallets: [{retailer: s, name: quotes, asset_code: USD}]\n", "https://sw.example", "name", false},
		{"lower-case asset", secret + "wallets: [{retailer: s, asset_code: usd}]\n", "https://sw.example", "asset_code", false},
		{"fee over 100%", secret + "wallets: [{retailer: s, asset_code: USD, fee_bps: 10001}]\n", "https://sw.example", "fee_bps", false},
		{"two wallets one retailer", secret + "wallets: [{retailer: s, asset_code: USD}, {retailer: s, name: t, asset_code: USD}]\n", "https://sw.example", "retailer", false},
		{"peer without token", secret + "peers: [{name: p}]\n", "https://sw.example", "token", false},
		{"bad ILP address", secret + "ilp_address: \"not an address\"\n", "https://sw.example", "ilp_address", false},
		{"URL too long for a QR template", secret + wallet, "https://a-very-long-host-name.payments.example.com", "99", true},
		{"path with trailing slash", secret + "path: /op/\n", "https://sw.example", "path", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(c.options), &node); err != nil {
				t.Fatal(err)
			}
			_, err := openpayments.New(partners.Config{PartnerID: "op", Options: node.Content[0], PublicURL: c.public, Development: c.dev, Logger: zerolog.Nop()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New(%q) = %v, want an error naming %q", c.options, err, c.want)
			}
		})
	}
	var node yaml.Node
	yaml.Unmarshal([]byte(wallet), &node)
	if _, err := openpayments.New(partners.Config{PartnerID: "op", Options: node.Content[0], PublicURL: "https://sw.example", Development: true, Logger: zerolog.Nop()}); err != nil {
		t.Fatalf("New in development without a secret = %v, want a derived secret", err)
	}
}
