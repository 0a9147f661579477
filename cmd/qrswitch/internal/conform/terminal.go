package conform

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"strings"

	"github.com/qrswitch/qrswitch/qr"
)

// quietZone is the light border of a QR symbol, in modules, as package qr
// renders it.
const quietZone = 4

// modules returns payload's QR symbol as a grid of modules (true: dark),
// quiet zone included. It reads the symbol back from qr.PNG, which draws
// every module as the same whole number of pixels, centred: the top-left
// finder pattern's top edge is a run of 7 dark modules, which gives the
// module's size, and the quiet zone before it the symbol's origin.
func modules(payload string) ([][]bool, error) {
	b, err := qr.PNG(payload, qr.MaxPNGSize)
	if err != nil {
		return nil, err
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reading the rendered QR code: %w", err)
	}
	bounds := img.Bounds()
	dark := func(x, y int) bool {
		r, g, b, _ := img.At(x, y).RGBA()
		return r+g+b < 3*0x8000
	}
	x0, y0 := -1, -1
	for y := bounds.Min.Y; y < bounds.Max.Y && y0 < 0; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			if dark(x, y) {
				x0, y0 = x, y
				break
			}
		}
	}
	if x0 < 0 {
		return nil, errors.New("the rendered QR code is blank")
	}
	run := 0
	for x := x0; x < bounds.Max.X && dark(x, y0); x++ {
		run++
	}
	scale := run / 7
	origin := x0 - quietZone*scale
	if scale == 0 || run%7 != 0 || origin < 0 || y0-quietZone*scale != origin {
		return nil, errors.New("the rendered QR code has no finder pattern where expected")
	}
	n := (bounds.Dx() - 2*origin) / scale
	grid := make([][]bool, n)
	for row := range grid {
		grid[row] = make([]bool, n)
		for col := range grid[row] {
			grid[row][col] = dark(origin+col*scale+scale/2, origin+row*scale+scale/2)
		}
	}
	return grid, nil
}

// terminalQR renders payload's QR code for a terminal, two rows of modules
// per line with half blocks, light modules drawn as blocks: for the light
// text on a dark background of most terminals (as qrencode -t UTF8 does).
func terminalQR(payload string) (string, error) {
	grid, err := modules(payload)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for row := 0; row < len(grid); row += 2 {
		for col := range grid[row] {
			top := !grid[row][col]
			bottom := row+1 >= len(grid) || !grid[row+1][col] // past the end: light
			switch {
			case top && bottom:
				sb.WriteString("█")
			case top:
				sb.WriteString("▀")
			case bottom:
				sb.WriteString("▄")
			default:
				sb.WriteString(" ")
			}
		}
		sb.WriteString("\n")
	}
	return sb.String(), nil
}
