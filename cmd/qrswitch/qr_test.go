package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/qr"
)

const (
	qrTestTranID  = "f82d7f64feea4f2ab24da94aaf5c2941"
	qrTestMinimal = "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941"
	qrTestTwo     = "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c294127260008za.co.mp01105169175130"
	qrTestPix     = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
	// The EMVCo specification's sample, with templates 64 and 91.
	qrTestSample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"
)

func runQRTest(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = runQR(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestQRDecode(t *testing.T) {
	tests := []struct {
		name, payload string
		want          qrDecodeReport
	}{
		{
			name: "electrum minimal", payload: qrTestMinimal,
			want: qrDecodeReport{Scheme: qr.SchemeElectrumMinimal, TranID: qrTestTranID, Objects: []qrObject{
				{Tag: "00", Name: "Payload Format Indicator", Length: 2, Value: "01"},
				{Tag: "26", Name: "Merchant Account Information", Length: 50, Value: "0010za.co.elec0132" + qrTestTranID, Children: []qrObject{
					{Tag: "00", Name: "Globally Unique Identifier", Length: 10, Value: "za.co.elec"},
					{Tag: "01", Name: "Payment Network Specific", Length: 32, Value: qrTestTranID},
				}},
			}},
		},
		{
			name: "pix without electrum", payload: qrTestPix,
			want: qrDecodeReport{Scheme: qr.SchemeEMVCo, Objects: []qrObject{
				{Tag: "00", Name: "Payload Format Indicator", Length: 2, Value: "01"},
				{Tag: "26", Name: "Merchant Account Information", Length: 58, Value: "0014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000", Children: []qrObject{
					{Tag: "00", Name: "Globally Unique Identifier", Length: 14, Value: "br.gov.bcb.pix"},
					{Tag: "01", Name: "Payment Network Specific", Length: 36, Value: "123e4567-e12b-12d1-a456-426655440000"},
				}},
				{Tag: "52", Name: "Merchant Category Code", Length: 4, Value: "0000"},
				{Tag: "53", Name: "Transaction Currency", Length: 3, Value: "986"},
				{Tag: "58", Name: "Country Code", Length: 2, Value: "BR"},
				{Tag: "59", Name: "Merchant Name", Length: 13, Value: "Fulano de Tal"},
				{Tag: "60", Name: "Merchant City", Length: 8, Value: "BRASILIA"},
				{Tag: "62", Name: "Additional Data Field Template", Length: 7, Value: "0503***", Children: []qrObject{
					{Tag: "05", Name: "Reference Label", Length: 3, Value: "***"},
				}},
				{Tag: "63", Name: "CRC", Length: 4, Value: "1D3D"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runQRTest(t, "decode", tt.payload)
			if err != nil {
				t.Fatalf("runQR(decode %q) error = %v", tt.payload, err)
			}
			var got qrDecodeReport
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("runQR(decode %q) printed %q, not JSON: %v", tt.payload, out, err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("runQR(decode %q) = %s, want %s", tt.payload, gotJSON, wantJSON)
			}
			if !strings.Contains(out, "\n  \"objects\": [\n") {
				t.Errorf("runQR(decode %q) output is not indented JSON: %q", tt.payload, out)
			}
		})
	}
}

func TestQRDecodeNestedAndMultiByte(t *testing.T) {
	out, _, err := runQRTest(t, "decode", qrTestSample)
	if err != nil {
		t.Fatalf("runQR(decode sample) error = %v", err)
	}
	var got qrDecodeReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	byTag := map[string]qrObject{}
	for _, o := range got.Objects {
		byTag[o.Tag] = o
	}
	if lang := byTag["64"]; len(lang.Children) != 3 || lang.Children[1].Value != "最佳运输" || lang.Children[1].Length != 4 {
		t.Errorf("runQR(decode sample) template 64 = %+v, want 3 children with 01 = 最佳运输 of length 4", lang)
	}
	if unreserved := byTag["91"]; len(unreserved.Children) != 2 || unreserved.Name != "Unreserved Template" {
		t.Errorf("runQR(decode sample) template 91 = %+v, want an unreserved template with 2 children", unreserved)
	}
	if !strings.Contains(out, "最佳运输") {
		t.Errorf("runQR(decode sample) escapes non-ASCII text: %s", out)
	}
}

func TestQRDecodeInvalid(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"wrong CRC", []string{"decode", strings.TrimSuffix(qrTestPix, "1D3D") + "FFFF"}, qr.ErrCRC},
		{"missing CRC", []string{"decode", strings.TrimSuffix(qrTestPix, "63041D3D")}, qr.ErrNoCRC},
		{"bad length", []string{"decode", "00020126X0"}, qr.ErrLength},
		{"not a payload", []string{"decode", "hello"}, qr.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runQRTest(t, tt.args...)
			if !errors.Is(err, tt.want) {
				t.Errorf("runQR(%q) error = %v, want %v", tt.args, err, tt.want)
			}
			if out != "" {
				t.Errorf("runQR(%q) printed %q for an invalid payload, want nothing", tt.args, out)
			}
		})
	}
}

func TestQRDecodeStdin(t *testing.T) {
	for _, args := range [][]string{{"decode"}, {"decode", "-"}} {
		var out bytes.Buffer
		c := qrCommand{stdin: strings.NewReader(qrTestTwo + "\n"), stdout: &out, stderr: &bytes.Buffer{}}
		if err := c.run(context.Background(), args); err != nil {
			t.Fatalf("run(%q) with the payload on stdin error = %v", args, err)
		}
		if !strings.Contains(out.String(), `"tranId": "`+qrTestTranID+`"`) || !strings.Contains(out.String(), "za.co.mp") {
			t.Errorf("run(%q) with the payload on stdin = %s, want both templates and the tranId", args, out.String())
		}
	}
}

func TestQREncodeFlags(t *testing.T) {
	full := sealedForTest("000201" + "010212" + "26500010za.co.elec0132" + qrTestTranID + "27260008za.co.mp01105169175130" +
		"52045411" + "5303710" + "5406799.95" + "5802ZA" + "5911Corner Shop" + "6009Cape Town" + "62260510INV-0001230708POS00042" + "6304")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "electrum minimal",
			args: []string{"encode", "--scheme", "ELECTRUM_MERCHANT_MINIMAL", "--tran-id", qrTestTranID},
			want: qrTestMinimal,
		},
		{
			name: "electrum minimal with a second provider",
			args: []string{"encode", "--scheme", "ELECTRUM_MERCHANT_MINIMAL", "--tran-id", qrTestTranID, "--provider", "za.co.mp:01=5169175130"},
			want: qrTestTwo,
		},
		{
			name: "EMVCo with alphabetic currency",
			args: []string{"encode", "--tran-id", qrTestTranID, "--provider", "za.co.mp:01=5169175130", "--mcc", "5411", "--currency", "ZAR",
				"--amount", "79995", "--country", "ZA", "--name", "Corner Shop", "--city", "Cape Town", "--reference", "INV-000123", "--terminal", "POS00042"},
			want: full,
		},
		{
			name: "static pseudo EMVCo with zero amount",
			args: []string{"encode", "--scheme", "PSEUDO_EMVCO_MERCHANT", "--static", "--currency", "710", "--amount", "0"},
			want: sealedForTest("000201" + "010211" + "5303710" + "54040.00" + "6304"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runQRTest(t, tt.args...)
			if err != nil {
				t.Fatalf("runQR(%q) error = %v", tt.args, err)
			}
			if out != tt.want+"\n" {
				t.Errorf("runQR(%q) = %q, want %q", tt.args, out, tt.want+"\n")
			}
		})
	}
}

func TestQREncodeJSON(t *testing.T) {
	const input = `{"scheme": "EMVCO_MERCHANT", "tranId": "` + qrTestTranID + `",
		"accounts": [{"guid": "za.co.mp", "fields": [{"tag": "01", "value": "5169175130"}]}],
		"mcc": "5411", "currency": "ZAR", "amount": 79995, "country": "ZA",
		"merchantName": "Corner Shop", "city": "Cape Town", "referenceLabel": "INV-000123", "terminalLabel": "POS00042"}`
	fromFlags, _, err := runQRTest(t, "encode", "--tran-id", qrTestTranID, "--provider", "za.co.mp:01=5169175130", "--mcc", "5411",
		"--currency", "710", "--amount", "79995", "--country", "ZA", "--name", "Corner Shop", "--city", "Cape Town",
		"--reference", "INV-000123", "--terminal", "POS00042")
	if err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(file, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runQRTest(t, "encode", "--json", file)
	if err != nil || out != fromFlags {
		t.Errorf("runQR(encode --json %s) = %q, %v; want %q as from flags", file, out, err, fromFlags)
	}

	var stdout bytes.Buffer
	c := qrCommand{stdin: strings.NewReader(input), stdout: &stdout, stderr: &bytes.Buffer{}}
	if err := c.run(context.Background(), []string{"encode", "--json", "-"}); err != nil || stdout.String() != fromFlags {
		t.Errorf("run(encode --json -) = %q, %v; want %q as from flags", stdout.String(), err, fromFlags)
	}
}

func TestQREncodePNG(t *testing.T) {
	file := filepath.Join(t.TempDir(), "code.png")
	out, _, err := runQRTest(t, "encode", "--scheme", "ELECTRUM_MERCHANT_MINIMAL", "--tran-id", qrTestTranID, "--png", file, "--size", "128")
	if err != nil {
		t.Fatalf("runQR(encode --png) error = %v", err)
	}
	if out != qrTestMinimal+"\n" {
		t.Errorf("runQR(encode --png) printed %q, want the payload", out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("runQR(encode --png %s) wrote no file: %v", file, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width != 128 || cfg.Height != 128 {
		t.Errorf("runQR(encode --png --size 128) wrote %dx%d, %v; want a 128x128 PNG", cfg.Width, cfg.Height, err)
	}

	out, _, err = runQRTest(t, "encode", "--scheme", "ELECTRUM_MERCHANT_MINIMAL", "--tran-id", qrTestTranID, "--png", "-")
	if err != nil || !strings.HasPrefix(out, "\x89PNG\r\n") {
		t.Errorf("runQR(encode --png -) = %d bytes starting %q, %v; want a PNG on stdout", len(out), out[:min(len(out), 8)], err)
	}
}

func TestQREncodeErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.json")
	if err := os.WriteFile(typo, []byte(`{"scheme": "EMVCO_MERCHANT", "merchant_name": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		// want is the sentinel the error wraps, nil when any error will do.
		want error
		// mention is a text the error must contain.
		mention string
	}{
		{"name too long", []string{"encode", "--scheme", "PSEUDO_EMVCO_MERCHANT", "--name", strings.Repeat("n", 26)}, qr.ErrTooLong, "MerchantName"},
		{"EMVCo without fields", []string{"encode", "--tran-id", "t"}, qr.ErrMissing, "MCC"},
		{"unknown scheme", []string{"encode", "--scheme", "EMV", "--tran-id", "t"}, qr.ErrScheme, "Scheme"},
		{"unknown currency", []string{"encode", "--scheme", "PSEUDO_EMVCO_MERCHANT", "--currency", "XYZ"}, qr.ErrInvalid, "Currency"},
		{"image too small", []string{"encode", "--scheme", "ELECTRUM_MERCHANT_MINIMAL", "--tran-id", "t", "--png", filepath.Join(dir, "x.png"), "--size", "10"}, qr.ErrImageSize, "size"},
		{"json and flags", []string{"encode", "--json", typo, "--mcc", "5411"}, nil, "--json"},
		{"unknown JSON key", []string{"encode", "--json", typo}, nil, "merchant_name"},
		{"missing JSON file", []string{"encode", "--json", filepath.Join(dir, "none.json")}, os.ErrNotExist, "none.json"},
		{"bad provider", []string{"encode", "--provider", "za.co.mp:01"}, nil, "SUBTAG=VALUE"},
		{"unknown flag", []string{"encode", "--nme", "x"}, nil, "nme"},
		{"stray argument", []string{"encode", "x"}, nil, "unexpected argument"},
		{"two payloads", []string{"decode", "a", "b"}, nil, "quote"},
		{"no command", nil, nil, "missing command"},
		{"unknown command", []string{"render"}, nil, "render"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runQRTest(t, tt.args...)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("runQR(%q) error = %v, want an error wrapping %v that mentions %q", tt.args, err, tt.want, tt.mention)
			}
		})
	}
}

func TestQRHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"decode", "-h"}, {"encode", "-h"}} {
		out, errOut, err := runQRTest(t, args...)
		if err != nil {
			t.Errorf("runQR(%q) error = %v, want nil", args, err)
		}
		if !strings.Contains(out+errOut, "usage: qrswitch qr") {
			t.Errorf("runQR(%q) printed %q, want the usage", args, out+errOut)
		}
	}
}

// sealedForTest appends the CRC to a payload ending in "6304".
func sealedForTest(s string) string {
	const hex = "0123456789ABCDEF"
	c := qr.CRC16([]byte(s))
	return s + string([]byte{hex[c>>12], hex[c>>8&15], hex[c>>4&15], hex[c&15]})
}
