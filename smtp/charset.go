package smtp

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/transform"
)

//go:generate go run gen_charsets.go

// CharsetReader converts the legacy charsets IP cameras write their alarm mails in to UTF-8.
//
// It is meant for go-message's message.CharsetReader, which the program sets once at start
// (cmd/camgate does). go-message's own charset package would register every charset x/text
// knows, about 1 MiB of tables: too much for a router's flash, for encodings no camera uses.
// The single-byte charsets are tables generated from x/text's (charsets_table.go): x/text's
// charmap package links all forty of its charmaps, 128 KiB of the mipsel binary.
func CharsetReader(label string, input io.Reader) (io.Reader, error) {
	if high, ok := lookupSingleByte(label); ok {
		return transform.NewReader(input, singleByte{high: high}), nil
	}
	enc, ok := lookupCharset(label)
	if !ok {
		return nil, fmt.Errorf("charset %q: not one camera mail uses", label)
	}
	if enc == nil {
		return input, nil
	}
	return enc.NewDecoder().Reader(input), nil
}

func normalLabel(label string) string {
	return strings.TrimPrefix(strings.ToLower(strings.TrimSpace(label)), "x-")
}

// lookupCharset maps a MIME charset label to its decoder; nil means the text is UTF-8 already.
func lookupCharset(label string) (encoding.Encoding, bool) {
	switch normalLabel(label) {
	case "utf-8", "utf8", "us-ascii", "ascii", "":
		return nil, true
	case "gb2312", "gbk", "gb18030", "cp936", "euc-cn", "csgb2312", "chinese", "ms936", "windows-936":
		// GB18030 is a superset of GBK, itself a superset of GB2312: firmware labels them loosely.
		return simplifiedchinese.GB18030, true
	case "hz-gb-2312":
		return simplifiedchinese.HZGB2312, true
	case "big5", "big5-hkscs", "cp950", "csbig5":
		return traditionalchinese.Big5, true
	}
	return nil, false
}

// lookupSingleByte maps a MIME charset label to the upper half of its single-byte charset.
func lookupSingleByte(label string) (*upperHalf, bool) {
	switch normalLabel(label) {
	case "windows-1251", "cp1251":
		return &windows1251, true
	case "koi8-r", "cskoi8r":
		return &koi8R, true
	case "koi8-u":
		return &koi8U, true
	case "iso-8859-5", "cyrillic":
		return &iso8859_5, true
	case "iso-8859-1", "latin1", "l1", "cp819":
		return &iso8859_1, true
	case "iso-8859-2", "latin2":
		return &iso8859_2, true
	case "iso-8859-15", "latin-9":
		return &iso8859_15, true
	case "windows-1250", "cp1250":
		return &windows1250, true
	case "windows-1252", "cp1252":
		return &windows1252, true
	}
	return nil, false
}

// upperHalf is what bytes 0x80 to 0xFF of a single-byte charset decode to; bytes below are
// ASCII in every charset here, and a byte the charset leaves undefined decodes to U+FFFD.
type upperHalf [128]uint16

// singleByte decodes a single-byte charset to UTF-8.
type singleByte struct {
	transform.NopResetter
	high *upperHalf
}

func (d singleByte) Transform(dst, src []byte, _ bool) (nDst, nSrc int, err error) {
	for ; nSrc < len(src); nSrc++ {
		c := src[nSrc]
		if c < utf8.RuneSelf {
			if nDst == len(dst) {
				return nDst, nSrc, transform.ErrShortDst
			}
			dst[nDst] = c
			nDst++
			continue
		}
		r := rune(d.high[c-0x80])
		if nDst+utf8.RuneLen(r) > len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		nDst += utf8.EncodeRune(dst[nDst:], r)
	}
	return nDst, nSrc, nil
}
