package uplink

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
)

// MaxPreviewBytes bounds an episode's preview JPEG so that its base64 stays within SPEC §5's
// 64 KB: 48 KiB of JPEG is 64 KiB of base64.
const MaxPreviewBytes = 48 << 10

// maxPreviewPixels refuses to decode a JPEG larger than a 4K camera's: the header says the
// size, and a hostile mail must not make the gateway allocate gigabytes.
const maxPreviewPixels = 3840 * 2160

// Preview returns jpg when it fits MaxPreviewBytes, else jpg scaled down by halves (and
// re-encoded at a lower quality) until it fits. It returns nil for what is not a JPEG it can
// decode: a cut JPEG is no image at all, so an episode goes without a preview rather than
// with a broken one.
func Preview(jpg []byte) []byte {
	if len(jpg) == 0 {
		return nil
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(jpg))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPreviewPixels {
		return nil
	}
	img, err := jpeg.Decode(bytes.NewReader(jpg))
	if err != nil {
		return nil // a cut or broken JPEG would show as a broken image
	}
	if len(jpg) <= MaxPreviewBytes {
		return jpg
	}
	var buf bytes.Buffer
	for quality := 75; ; {
		img = halve(img)
		buf.Reset()
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
			return nil
		}
		if buf.Len() <= MaxPreviewBytes {
			return buf.Bytes()
		}
		if b := img.Bounds(); b.Dx() <= 16 || b.Dy() <= 16 {
			return nil
		}
		quality = max(quality-10, 40)
	}
}

// halve scales img to half its width and height, each pixel the mean of four.
func halve(img image.Image) image.Image {
	b := img.Bounds()
	w, h := max(b.Dx()/2, 1), max(b.Dy()/2, 1)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var r, g, bl uint32
			for _, d := range [4][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
				px := min(b.Min.X+2*x+d[0], b.Max.X-1)
				py := min(b.Min.Y+2*y+d[1], b.Max.Y-1)
				cr, cg, cb, _ := img.At(px, py).RGBA()
				r, g, bl = r+cr, g+cg, bl+cb
			}
			out.SetRGBA(x, y, color.RGBA{uint8(r / 4 >> 8), uint8(g / 4 >> 8), uint8(bl / 4 >> 8), 0xff})
		}
	}
	return out
}
