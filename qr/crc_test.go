package qr_test

import (
	"strings"
	"testing"

	"github.com/qrswitch/qrswitch/qr"
)

func TestCRC16(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint16
	}{
		// The catalogue check value of CRC-16/CCITT-FALSE (CRC-16/IBM-3740).
		{"check value", "123456789", 0x29B1},
		{"empty is the init value", "", 0xFFFF},
		{"pix BCB", strings.TrimSuffix(pixBCB, "1D3D"), 0x1D3D},
		{"EMVCo sample over UTF-8 bytes", strings.TrimSuffix(emvcoSample, "A13A"), 0xA13A},
		{"JPQR over UTF-8 bytes", strings.TrimSuffix(jpqrSample, "DEE9"), 0xDEE9},
		{"promptpay", strings.TrimSuffix(promptPayAmount, "E469"), 0xE469},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := qr.CRC16([]byte(tt.in)); got != tt.want {
				t.Errorf("CRC16(%q) = %04X, want %04X", tt.in, got, tt.want)
			}
		})
	}
}

func TestCRC16DoesNotAllocate(t *testing.T) {
	b := []byte(emvcoSample)
	if n := testing.AllocsPerRun(100, func() { qr.CRC16(b) }); n != 0 {
		t.Errorf("CRC16 allocates %v times per call, want 0", n)
	}
}

func TestAppendEncodeDoesNotAllocate(t *testing.T) {
	p := fullPayload()
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := qr.AppendEncode(buf[:0], p); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendEncode with room in dst allocates %v times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = qr.Encode(p) }); n > 1 {
		t.Errorf("Encode allocates %v times per call, want at most 1 (the string)", n)
	}
}
