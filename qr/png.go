package qr

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"

	qrcode "github.com/skip2/go-qrcode"
)

// Bounds of PNG's size, in pixels per edge.
const (
	// MinPNGSize is the smallest image PNG renders: below it a payload of
	// a typical length no longer gets a whole pixel per module.
	MinPNGSize = 64
	// MaxPNGSize is the largest image PNG renders: it keeps the memory a
	// request can make the switch spend bounded (about 1 MiB of pixels)
	// and is more than any screen or printer needs for a payment code.
	MaxPNGSize = 1024
)

// ErrImageSize reports a size outside MinPNGSize to MaxPNGSize, or too
// small for the payload's QR symbol.
var ErrImageSize = errors.New("image size out of range")

// recovery is the error correction level of rendered codes. Medium restores
// up to about 15% of damaged modules, which covers the scratched sticker, the
// crumpled slip and the glare on a POS screen that payment codes meet; Low
// (7%) fails on those, while Quartile and High make the symbol one or more
// versions denser for our 60–250 character payloads, so each module gets
// fewer pixels at a given image size and phone cameras find the code harder
// to read. Medium is what payment QR codes commonly use.
const recovery = qrcode.Medium

var palette = color.Palette{color.White, color.Black}

// PNG renders payload as a size×size pixel PNG QR code (error correction
// level Medium, 4-module quiet zone). Every module is the same whole number
// of pixels, the largest that fits, and the symbol is centred, because
// modules stretched to fractional widths blur and scan worse. The size must
// be from MinPNGSize to MaxPNGSize and large enough for the symbol (a
// payload of 100 characters needs 45 pixels); otherwise the error wraps
// ErrImageSize.
func PNG(payload string, size int) ([]byte, error) {
	if size < MinPNGSize || size > MaxPNGSize {
		return nil, fmt.Errorf("qr: %w: %d pixels, want %d to %d", ErrImageSize, size, MinPNGSize, MaxPNGSize)
	}
	q, err := qrcode.New(payload, recovery)
	if err != nil {
		return nil, fmt.Errorf("qr: building QR symbol for %d bytes: %w", len(payload), err)
	}
	bitmap := q.Bitmap()
	modules := len(bitmap)
	scale := size / modules
	if scale < 1 {
		return nil, fmt.Errorf("qr: %w: the symbol is %d modules wide, more than %d pixels", ErrImageSize, modules, size)
	}
	img := image.NewPaletted(image.Rect(0, 0, size, size), palette)
	offset := (size - modules*scale) / 2
	for y, row := range bitmap {
		line := img.Pix[(offset+y*scale)*img.Stride:]
		for x, dark := range row {
			if !dark {
				continue
			}
			px := line[offset+x*scale : offset+(x+1)*scale]
			for i := range px {
				px[i] = 1
			}
		}
		first := line[:size]
		for i := 1; i < scale; i++ {
			copy(img.Pix[(offset+y*scale+i)*img.Stride:][:size], first)
		}
	}
	var b bytes.Buffer
	b.Grow(size * size / 32)
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("qr: encoding PNG: %w", err)
	}
	return b.Bytes(), nil
}
