package smtp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

func TestParseMailFixtures(t *testing.T) {
	tests := []struct {
		file          string
		motion        bool
		subject       string
		snapshots     int
		snapshotBytes int
	}{
		{"generic_motion-alarm_base64-jpeg.eml", true, "Motion Detection Alarm", 1, 254},
		{"generic_motion-alarm_gb2312-subject.eml", true, "移动侦测报警", 1, 1960},
		{"generic_motion-alarm_html-inline-cid.eml", true, "Motion Detection Alarm – Kamera Süd", 1, 254},
		{"generic_motion-alarm_text-only.eml", true, "Motion Detection Alarm", 0, 0},
		{"generic_motion-alarm_two-snapshots.eml", true, "Motion Detection Alarm", 2, 254},
	}
	files, _ := filepath.Glob("testdata/mail/*.eml")
	if len(files) != len(tests) {
		t.Errorf("%d fixture mails, %d in the table: every fixture must be listed", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata/mail", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			a, err := ParseMail(bytes.NewReader(raw), DefaultMaxMessageBytes)
			if err != nil {
				t.Fatal(err)
			}
			if a.Motion != tt.motion || a.Subject != tt.subject || a.Text != "smtp: "+tt.subject {
				t.Errorf("motion %v subject %q text %q; want %v %q", a.Motion, a.Subject, a.Text, tt.motion, tt.subject)
			}
			if a.Snapshots != tt.snapshots || len(a.Snapshot) != tt.snapshotBytes {
				t.Errorf("snapshots %d, first %d bytes; want %d, %d", a.Snapshots, len(a.Snapshot), tt.snapshots, tt.snapshotBytes)
			}
			if tt.snapshotBytes > 0 && !bytes.HasPrefix(a.Snapshot, []byte{0xFF, 0xD8, 0xFF}) {
				t.Errorf("snapshot does not start with the JPEG magic")
			}
		})
	}
}

func encode(t *testing.T, enc encoding.Encoding, s string) string {
	t.Helper()
	out, err := enc.NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// Subjects and bodies as cameras with Chinese, Taiwanese and Russian firmware write them.
func TestParseMailCharsets(t *testing.T) {
	gbk := simplifiedchinese.GBK
	tests := []struct {
		name    string
		mail    string
		subject string
		motion  bool
	}{
		{
			"GB2312 base64 subject (Hikvision)",
			"Subject: =?GB2312?B?" + b64(encode(t, gbk, "移动侦测")) + "?=\r\n\r\nx\r\n",
			"移动侦测", true,
		},
		{
			"GBK quoted-printable subject",
			"Subject: =?GBK?Q?" + qEncode(encode(t, gbk, "报警")) + "?=\r\n\r\nx\r\n",
			"报警", true,
		},
		{
			"GB2312 base64 body, neutral subject (Dahua)",
			"Subject: IPC\r\nContent-Type: text/plain; charset=GB2312\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
				b64(encode(t, gbk, "报警类型: 动态检测")) + "\r\n",
			"IPC", true,
		},
		{
			"raw 8-bit GBK subject, no RFC 2047",
			"Subject: " + encode(t, gbk, "移动侦测报警") + "\r\n\r\nx\r\n",
			"移动侦测报警", true,
		},
		{
			"Big5 subject",
			"Subject: =?Big5?B?" + b64(encode(t, traditionalchinese.Big5, "移動偵測")) + "?=\r\n\r\nx\r\n",
			"移動偵測", true,
		},
		{
			"windows-1251 subject",
			"Subject: =?windows-1251?B?" + b64(encode(t, charmap.Windows1251, "Обнаружено движение")) + "?=\r\n\r\nx\r\n",
			"Обнаружено движение", true,
		},
		{
			"KOI8-R quoted-printable body",
			"Subject: Camera 1\r\nContent-Type: text/plain; charset=KOI8-R\r\n" +
				"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qEncode(encode(t, charmap.KOI8R, "ТРЕВОГА")) + "\r\n",
			"Camera 1", true,
		},
		{
			"UTF-8 subject, upper case",
			"Subject: =?UTF-8?B?" + b64("MOTION DETECTED") + "?=\r\n\r\nx\r\n",
			"MOTION DETECTED", true,
		},
		{
			"no motion words",
			"Subject: Video loss\r\n\r\nchannel 2 lost its signal\r\n",
			"Video loss", false,
		},
		{
			"unknown charset still yields a subject",
			"Subject: Motion\r\nContent-Type: text/plain; charset=x-unheard-of\r\n\r\nbody\r\n",
			"Motion", true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseMail(strings.NewReader(tt.mail), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if a.Subject != tt.subject || a.Motion != tt.motion {
				t.Errorf("subject %q motion %v; want %q %v", a.Subject, a.Motion, tt.subject, tt.motion)
			}
		})
	}
}

// qEncode writes every byte as =XX, valid in both RFC 2047 Q words and quoted-printable bodies.
func qEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString("=" + strings.ToUpper(hex2(s[i])))
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func TestParseMailStructure(t *testing.T) {
	jpeg, err := os.ReadFile("testdata/snapshot.jpg")
	if err != nil {
		t.Fatal(err)
	}
	jpegB64 := base64.StdEncoding.EncodeToString(jpeg)
	big := base64.StdEncoding.EncodeToString(append([]byte{0xFF, 0xD8, 0xFF}, make([]byte, MaxSnapshotBytes)...))
	nest := func(depth int, inner string) string {
		s := inner
		for i := range depth {
			bd := "b" + string(rune('a'+i%26)) + strings.Repeat("x", i)
			s = "Content-Type: multipart/mixed; boundary=" + bd + "\r\n\r\n--" + bd + "\r\n" + s + "\r\n--" + bd + "--\r\n"
		}
		return s
	}
	jpegPart := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + jpegB64 + "\r\n"
	wholeJPEG := "Subject: x\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	tests := []struct {
		name          string
		mail          string
		wantErr       error
		snapshots     int
		snapshotBytes int
		motion        bool
	}{
		{"nested multiparts keep the JPEG", "Subject: Alarm\r\n" + nest(4, jpegPart), nil, 1, len(jpeg), true},
		{"nesting beyond the bound is malformed, not a crash", "Subject: Alarm\r\n" + nest(maxDepth+4, jpegPart),
			ErrMalformed, 0, 0, true},
		{"a whole-mail JPEG", wholeJPEG + jpegB64 + "\r\n", nil, 1, len(jpeg), false},
		{"a non-JPEG image is not a snapshot", "Subject: x\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n", nil, 0, 0, false},
		{"a JPEG over the bound is counted, not kept", wholeJPEG + big + "\r\n", nil, 1, 0, false},
		{"body names motion, subject empty", "\r\nMotion on channel 3\r\n", nil, 0, 0, true},
		{"no header at all", "", nil, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseMail(strings.NewReader(tt.mail), 10<<20)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if a.Snapshots != tt.snapshots || len(a.Snapshot) != tt.snapshotBytes || a.Motion != tt.motion {
				t.Errorf("snapshots %d (%d bytes) motion %v; want %d (%d bytes) %v",
					a.Snapshots, len(a.Snapshot), a.Motion, tt.snapshots, tt.snapshotBytes, tt.motion)
			}
		})
	}
}

func TestParseMailSizeLimit(t *testing.T) {
	mail := "Subject: Motion\r\n\r\n" + strings.Repeat("y", 1000)
	tests := []struct {
		max     int64
		wantErr error
	}{
		{int64(len(mail)), nil},
		{int64(len(mail)) - 1, ErrMessageTooLarge},
		{100, ErrMessageTooLarge},
	}
	for _, tt := range tests {
		r := strings.NewReader(mail)
		_, err := ParseMail(r, tt.max)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("max %d: err = %v, want %v", tt.max, err, tt.wantErr)
		}
		if tt.wantErr == nil && r.Len() != 0 {
			t.Errorf("max %d: %d bytes left unread", tt.max, r.Len())
		}
	}
}

func TestParseMailDescription(t *testing.T) {
	long := strings.Repeat("я", 500)
	a, err := ParseMail(strings.NewReader("Subject: "+long+"\r\n\r\nx"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := []rune(strings.TrimPrefix(a.Text, "smtp: ")); len(got) != maxDescription {
		t.Errorf("description of %d runes, want %d", len(got), maxDescription)
	}
}
