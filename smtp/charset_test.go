package smtp

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"golang.org/x/text/encoding/charmap"
)

// singleByteCharsets is every single-byte label camera mail may name, with the x/text charmap
// that charsets_table.go was generated from.
var singleByteCharsets = []struct {
	label string
	cm    *charmap.Charmap
}{
	{"windows-1251", charmap.Windows1251}, {"CP1251", charmap.Windows1251},
	{"koi8-r", charmap.KOI8R}, {"csKOI8R", charmap.KOI8R}, {"koi8-u", charmap.KOI8U},
	{"ISO-8859-5", charmap.ISO8859_5}, {"cyrillic", charmap.ISO8859_5},
	{"iso-8859-1", charmap.ISO8859_1}, {"latin1", charmap.ISO8859_1}, {"l1", charmap.ISO8859_1},
	{"cp819", charmap.ISO8859_1},
	{"iso-8859-2", charmap.ISO8859_2}, {"latin2", charmap.ISO8859_2},
	{"iso-8859-15", charmap.ISO8859_15}, {"latin-9", charmap.ISO8859_15},
	{"windows-1250", charmap.Windows1250}, {"cp1250", charmap.Windows1250},
	{"windows-1252", charmap.Windows1252}, {"x-cp1252", charmap.Windows1252},
}

// decodeBoth decodes b as label with CharsetReader, reading a byte at a time so that every
// short-buffer path is taken, and with x/text's charmap.
func decodeBoth(t *testing.T, label string, cm *charmap.Charmap, b []byte) (ours, xtext []byte) {
	t.Helper()
	r, err := CharsetReader(label, iotest.OneByteReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("CharsetReader(%q): %v", label, err)
	}
	ours, err = io.ReadAll(iotest.OneByteReader(r))
	if err != nil {
		t.Fatalf("decode %q: %v", label, err)
	}
	xtext, err = cm.NewDecoder().Bytes(b)
	if err != nil {
		t.Fatalf("x/text decode %s: %v", cm, err)
	}
	return ours, xtext
}

// Each single-byte charset decodes every byte exactly as x/text's charmap of the same name,
// undefined bytes to U+FFFD included: the generated tables are x/text's, not a guess.
func TestSingleByteCharsetsMatchXText(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, c := range singleByteCharsets {
		ours, xtext := decodeBoth(t, c.label, c.cm, all)
		if !bytes.Equal(ours, xtext) {
			t.Errorf("%s decodes bytes 0..255 to %q, x/text's %s to %q", c.label, ours, c.cm, xtext)
		}
	}
}

// FuzzSingleByteCharset: any bytes in any single-byte charset decode as x/text decodes them.
func FuzzSingleByteCharset(f *testing.F) {
	f.Add(uint8(0), []byte("\xf0\xd2\xc9\xd7\xc5\xd4"))
	f.Add(uint8(2), []byte("Camera 1: \xd4\xd2\xc5\xd7\xcf\xc7\xc1"))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		c := singleByteCharsets[int(which)%len(singleByteCharsets)]
		if ours, xtext := decodeBoth(t, c.label, c.cm, b); !bytes.Equal(ours, xtext) {
			t.Fatalf("%s decodes %q to %q, x/text's %s to %q", c.label, b, ours, c.cm, xtext)
		}
	})
}
