package oer

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestLengthPrefix(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0}}, {127, []byte{127}}, {128, []byte{0x81, 0x80}}, {255, []byte{0x81, 0xff}},
		{256, []byte{0x82, 1, 0}}, {32767, []byte{0x82, 0x7f, 0xff}}, {1 << 16, []byte{0x83, 1, 0, 0}},
	}
	for _, tt := range tests {
		got := AppendLengthPrefix(nil, tt.n)
		if !bytes.Equal(got, tt.want) || LengthPrefixSize(tt.n) != len(tt.want) {
			t.Errorf("AppendLengthPrefix(%d) = %x (size %d), want %x", tt.n, got, LengthPrefixSize(tt.n), tt.want)
		}
		n, err := NewReader(tt.want).LengthPrefix()
		if err != nil || n != tt.n {
			t.Errorf("LengthPrefix(%x) = %d, %v, want %d", tt.want, n, err, tt.n)
		}
	}
	for _, b := range [][]byte{{0x80}, {0x81, 0x7f}, {0x82, 0, 0x80}, {0x85, 1, 0, 0, 0, 0}, {0x81}} {
		if _, err := NewReader(b).LengthPrefix(); err == nil {
			t.Errorf("LengthPrefix(%x) = nil error, want refusal", b)
		}
	}
}

func TestVarUint(t *testing.T) {
	tests := []struct {
		v    uint64
		want []byte
	}{
		{0, []byte{1, 0}}, {255, []byte{1, 0xff}}, {256, []byte{2, 1, 0}},
		{math.MaxUint64, []byte{8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		got := AppendVarUint(nil, tt.v)
		if !bytes.Equal(got, tt.want) || VarUintSize(tt.v) != len(tt.want) {
			t.Errorf("AppendVarUint(%d) = %x, want %x", tt.v, got, tt.want)
		}
		v, err := NewReader(got).VarUint()
		if err != nil || v != tt.v {
			t.Errorf("VarUint(%x) = %d, %v, want %d", got, v, err, tt.v)
		}
	}
	if v, err := NewReader([]byte{3, 0, 0, 5}).VarUint(); err != nil || v != 5 {
		t.Errorf("VarUint(leading zeros) = %d, %v, want 5", v, err)
	}
	if _, err := NewReader([]byte{0}).VarUint(); !errors.Is(err, ErrEmptyUInt) {
		t.Errorf("VarUint(empty) error = %v, want ErrEmptyUInt", err)
	}
	wide := []byte{9, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	if _, err := NewReader(wide).VarUint(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("VarUint(9 octets) error = %v, want ErrTooLarge", err)
	}
	if v, err := NewReader(wide).SaturatingVarUint(); err != nil || v != math.MaxUint64 {
		t.Errorf("SaturatingVarUint(9 octets) = %d, %v, want MaxUint64", v, err)
	}
}
