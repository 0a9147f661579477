package qr

import (
	"math"
	"testing"
)

func TestFormatMinor(t *testing.T) {
	for _, tt := range []struct {
		minor int64
		exp   int
		want  string
	}{
		{1500, 2, "15.00"}, {-1500, 2, "-15.00"}, {7, 3, "0.007"}, {0, 2, "0.00"}, {42, 0, "42"},
		{-5, 2, "-0.05"}, {math.MinInt64, 2, "-92233720368547758.08"},
	} {
		if got := FormatMinor(tt.minor, tt.exp); got != tt.want {
			t.Errorf("FormatMinor(%d, %d) = %q, want %q", tt.minor, tt.exp, got, tt.want)
		}
	}
}
