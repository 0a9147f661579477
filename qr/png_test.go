package qr_test

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/qr"
)

// zbarimg returns the path of Debian's zbarimg (package zbar-tools), the
// independent decoder the rendering test reads images back with. A missing
// decoder fails the test: the round trip through a real reader is the only
// proof that the switch's codes scan.
func zbarimg(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Fatalf("zbarimg not found (%v): install it with `apt-get install -y zbar-tools`; the PNG round trip needs a real QR decoder", err)
	}
	return path
}

// scan decodes a PNG with zbarimg. --raw prints the data without the
// "QR-Code:" prefix, followed by one newline. zbar reads byte-mode QR data
// as UTF-8 when it is valid UTF-8, so multi-byte characters come back as
// they went in (checked below with Chinese and accented Latin text).
func scan(t *testing.T, bin string, img []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "code.png")
	if err := os.WriteFile(file, img, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--raw", "-q", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("zbarimg %s: %v: %s", file, err, stderr.String())
	}
	out := stdout.String()
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("zbarimg output %q does not end in a newline", out)
	}
	return strings.TrimSuffix(out, "\n")
}

func TestPNGRoundTripThroughZbar(t *testing.T) {
	bin := zbarimg(t)
	full, err := qr.Encode(fullPayload())
	if err != nil {
		t.Fatal(err)
	}
	nonASCII := fullPayload()
	nonASCII.MerchantName = "Café Ñandú 最佳运输"
	nonASCII.City = "北京"
	multi, err := qr.Encode(nonASCII)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload string
		size    int
	}{
		{"electrum minimal at the smallest size", electrumMinimal, qr.MinPNGSize},
		{"electrum minimal", electrumMinimal, 256},
		{"EMVCo dynamic", full, 300},
		{"EMVCo dynamic at the largest size", full, qr.MaxPNGSize},
		{"non-ASCII merchant name", multi, 400},
		{"EMVCo specification sample", emvcoSample, 400},
		{"JPQR with katakana", jpqrSample, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := qr.PNG(tt.payload, tt.size)
			if err != nil {
				t.Fatalf("PNG(%q, %d) error = %v", tt.payload, tt.size, err)
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(img))
			if err != nil {
				t.Fatalf("PNG(%q, %d) is not a PNG: %v", tt.payload, tt.size, err)
			}
			if cfg.Width != tt.size || cfg.Height != tt.size {
				t.Errorf("PNG(%q, %d) is %dx%d, want %dx%d", tt.payload, tt.size, cfg.Width, cfg.Height, tt.size, tt.size)
			}
			if got := scan(t, bin, img); got != tt.payload {
				t.Errorf("zbarimg(PNG(%q, %d)) = %q, want the payload byte for byte", tt.payload, tt.size, got)
			}
		})
	}
}

func TestPNGSizeBounds(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		size    int
	}{
		{"below minimum", electrumMinimal, qr.MinPNGSize - 1},
		{"above maximum", electrumMinimal, qr.MaxPNGSize + 1},
		{"zero", electrumMinimal, 0},
		{"negative", electrumMinimal, -4},
		{"symbol wider than the image", strings.Repeat("x", 500), qr.MinPNGSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := qr.PNG(tt.payload, tt.size); !errors.Is(err, qr.ErrImageSize) {
				t.Errorf("PNG(%d characters, %d) error = %v, want ErrImageSize", len(tt.payload), tt.size, err)
			}
		})
	}
}

func TestPNGTooLongForAQRCode(t *testing.T) {
	if _, err := qr.PNG(strings.Repeat("x", 3000), qr.MaxPNGSize); err == nil {
		t.Error("PNG(3000 characters) error = nil, want the QR capacity error")
	}
}
