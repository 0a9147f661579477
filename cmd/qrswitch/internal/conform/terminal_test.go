package conform

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os/exec"
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/internal/openapi/contract"
)

func load(t testing.TB) *contract.Document {
	t.Helper()
	d, err := contract.Load()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// terminalImage turns terminalQR's text back into an image, scale pixels
// per module, with a quiet zone, as a person's phone sees the terminal.
func terminalImage(text string, scale int) *image.Gray {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	width := len([]rune(lines[0]))
	img := image.NewGray(image.Rect(0, 0, (width+2*quietZone)*scale, (2*len(lines)+2*quietZone)*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	dark := func(col, row int) {
		for dy := range scale {
			for dx := range scale {
				img.SetGray((col+quietZone)*scale+dx, (row+quietZone)*scale+dy, color.Gray{})
			}
		}
	}
	for i, line := range lines {
		for col, r := range []rune(line) {
			if r == ' ' || r == '▄' { // top module dark
				dark(col, 2*i)
			}
			if r == ' ' || r == '▀' { // bottom module dark
				dark(col, 2*i+1)
			}
		}
	}
	return img
}

// TestTerminalQR reads the terminal rendering back with zbarimg, a real QR
// decoder, as a phone would read the screen.
func TestTerminalQR(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Fatalf("zbarimg not found (%v): install it with `apt-get install -y zbar-tools`; the terminal QR code is read back with a real decoder", err)
	}
	k := &kit{o: Options{Amount: 79995, Currency: "710"}}
	for i := 0; i < 3; i++ {
		c, err := k.newCode()
		if err != nil {
			t.Fatal(err)
		}
		art, err := terminalQR(c.payload)
		if err != nil {
			t.Fatalf("terminalQR = %v", err)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, terminalImage(art, 4)); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(zbar, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", "-")
		cmd.Stdin = &b
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("zbarimg could not read the terminal QR code: %v\n%s", err, art)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != c.payload {
			t.Fatalf("zbarimg read %q, want the payload %q", got, c.payload)
		}
	}
}
