package smtp

import (
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// CharsetReader converts the legacy charsets IP cameras write their alarm mails in to UTF-8.
//
// It is meant for go-message's message.CharsetReader, which the program sets once at start
// (cmd/camgate does). go-message's own charset package would register every charset x/text
// knows, about 1 MiB of tables: too much for a router's flash, for encodings no camera uses.
func CharsetReader(label string, input io.Reader) (io.Reader, error) {
	enc, ok := lookupCharset(label)
	if !ok {
		return nil, fmt.Errorf("charset %q: not one camera mail uses", label)
	}
	if enc == nil {
		return input, nil
	}
	return enc.NewDecoder().Reader(input), nil
}

// lookupCharset maps a MIME charset label to its decoder; nil means the text is UTF-8 already.
func lookupCharset(label string) (encoding.Encoding, bool) {
	l := strings.ToLower(strings.TrimSpace(label))
	l = strings.TrimPrefix(l, "x-")
	switch l {
	case "utf-8", "utf8", "us-ascii", "ascii", "":
		return nil, true
	case "gb2312", "gbk", "gb18030", "cp936", "euc-cn", "csgb2312", "chinese", "ms936", "windows-936":
		// GB18030 is a superset of GBK, itself a superset of GB2312: firmware labels them loosely.
		return simplifiedchinese.GB18030, true
	case "hz-gb-2312":
		return simplifiedchinese.HZGB2312, true
	case "big5", "big5-hkscs", "cp950", "csbig5":
		return traditionalchinese.Big5, true
	case "windows-1251", "cp1251":
		return charmap.Windows1251, true
	case "koi8-r", "cskoi8r":
		return charmap.KOI8R, true
	case "koi8-u":
		return charmap.KOI8U, true
	case "iso-8859-5", "cyrillic":
		return charmap.ISO8859_5, true
	case "iso-8859-1", "latin1", "l1", "cp819":
		return charmap.ISO8859_1, true
	case "iso-8859-2", "latin2":
		return charmap.ISO8859_2, true
	case "iso-8859-15", "latin-9":
		return charmap.ISO8859_15, true
	case "windows-1250", "cp1250":
		return charmap.Windows1250, true
	case "windows-1252", "cp1252":
		return charmap.Windows1252, true
	}
	return nil, false
}
