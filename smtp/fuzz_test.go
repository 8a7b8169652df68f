package smtp

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
)

// FuzzParseMail: any input parses within its bounds, without a panic, and the result keeps the
// promises of Alarm (valid UTF-8 text, a bounded JPEG snapshot).
func FuzzParseMail(f *testing.F) {
	f.Add([]byte("Subject: Motion Detection Alarm\r\n\r\nbody\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 20
		a, err := ParseMail(bytes.NewReader(data), limit)
		if err != nil && len(data) <= limit && !strings.Contains(err.Error(), ErrMalformed.Error()) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if len(a.Snapshot) > MaxSnapshotBytes {
			t.Fatalf("snapshot of %d bytes", len(a.Snapshot))
		}
		if a.Snapshot != nil && !bytes.HasPrefix(a.Snapshot, []byte{0xFF, 0xD8, 0xFF}) {
			t.Fatal("snapshot without the JPEG magic")
		}
		if a.Snapshot != nil && a.Snapshots == 0 {
			t.Fatal("snapshot kept but not counted")
		}
		if !strings.HasPrefix(a.Text, "smtp: ") || !isValidUTF8(a.Text) || !isValidUTF8(a.Subject) {
			t.Fatalf("text %q subject %q", a.Text, a.Subject)
		}
	})
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }

// FuzzSMTPSession drives a whole session on loopback with arbitrary client bytes: the server
// must answer or hang up, never panic or hang, and keep serving the next client.
func FuzzSMTPSession(f *testing.F) {
	f.Add([]byte("EHLO cam\r\nMAIL FROM:<a@b>\r\nRCPT TO:<cam-1@x>\r\nDATA\r\nSubject: Motion\r\n\r\nx\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("EHLO cam\r\nAUTH LOGIN\r\ndQ==\r\ncA==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n" +
		"BDAT 5 LAST\r\nab\r\ncQUIT\r\n"))
	ts := startServer(f, Config{CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, MaxMessageBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		go func() {
			_, _ = c.Write(data) // the server may hang up before it has read everything
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		if isTimeout(err) {
			t.Fatalf("session did not end after the client's EOF; read %q", out)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("220 ")) {
			t.Fatalf("first reply %q, want the greeting", out)
		}
		for len(ts.alarms) > 0 {
			<-ts.alarms
		}
	})
}

// FuzzHeaderMeter: the meter's verdict on a mail does not depend on how the reads cut it, it
// never lets a header block past its bounds, and what it passes is the input unchanged.
func FuzzHeaderMeter(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n--b\r\nA: 1\r\n\r\nbody\r\n--b--\r\n"), uint8(1))
	f.Add([]byte("X:\r\n"+strings.Repeat("Y:\n", maxHeaderLines+1)+"\r\n"), uint8(7))
	f.Add([]byte("\r\n--\r\n"+strings.Repeat("z", maxHeaderBytes+1)), uint8(200))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-type : multipart/related;\r\n"+
		" boundary*0=\"i\"\r\n\r\n--i \r\nA: 1\r\n\r\n--i--x\r\n--o--\r\n--o\r\n\r\n"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		whole := newHeaderMeter(bytes.NewReader(data), nil)
		wholeOut, wholeErr := io.ReadAll(whole)
		cut := newHeaderMeter(&stepReader{data: data, step: max(int(step), 1)}, nil)
		cutOut, cutErr := io.ReadAll(cut)
		if (wholeErr == nil) != (cutErr == nil) || !bytes.Equal(wholeOut, cutOut) {
			t.Fatalf("whole: %d bytes, %v; cut every %d: %d bytes, %v", len(wholeOut), wholeErr, step, len(cutOut), cutErr)
		}
		if !bytes.HasPrefix(data, wholeOut) {
			t.Fatal("the meter changed what it passed")
		}
		if whole.blockBytes > maxHeaderBytes+1 || whole.blockLines > maxHeaderLines+1 {
			t.Fatalf("a header block of %d bytes, %d lines passed", whole.blockBytes, whole.blockLines)
		}
		if n := goMessageHeaders(string(data)); n > whole.blocks {
			t.Fatalf("go-message read %d headers, the meter charged %d", n, whole.blocks)
		}
	})
}

// goMessageHeaders is how many headers go-message reads of mail, through a meter that charges
// nothing, walking the parts as parse does.
func goMessageHeaders(mail string) int {
	e, _ := message.ReadWithOptions(newHeaderMeter(strings.NewReader(mail), nil),
		&message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if e == nil {
		return 0
	}
	n := 1
	var walk func(e *message.Entity, depth int)
	walk = func(e *message.Entity, depth int) {
		mr := e.MultipartReader()
		if mr == nil || depth >= maxDepth {
			return
		}
		for {
			part, _ := mr.NextPart() // a part with an unknown charset still counts, as in walk
			if part == nil {
				return
			}
			n++
			walk(part, depth+1)
		}
	}
	walk(e, 0)
	return n
}

// stepReader hands out data step bytes at a time.
type stepReader struct {
	data []byte
	step int
}

func (r *stepReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.data)
	r.data = r.data[n:]
	return n, nil
}
