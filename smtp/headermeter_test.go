package smtp

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// hostileBlocks is n blocks of a "--" line and 999 one-field header lines, the most lines the
// meter lets a block have: the shape the reviewer sent (some 130 bytes charged per byte).
func hostileBlocks(dashes string, n int) string {
	block := dashes + "\r\n" + strings.Repeat("a:\r\n", 999) + "\r\n"
	return strings.Repeat(block, n)
}

// idleSessions opens n sessions that greet and then sit idle, as cameras that keep their
// connection between alarms do, and checks they are all still open at the end of the test.
func idleSessions(t *testing.T, addr string, n int) {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		r := bufio.NewReader(c)
		if line, err := lastReplyLine(r); err != nil || !strings.HasPrefix(line, "220") {
			t.Fatalf("idle session %d: greeting %q, %v", i, line, err)
		}
		if _, err := io.WriteString(c, "EHLO cam\r\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := lastReplyLine(r); err != nil || !strings.HasPrefix(line, "250") {
			t.Fatalf("idle session %d: EHLO %q, %v", i, line, err)
		}
	}
	t.Cleanup(func() {
		closed := 0
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
				closed++
			}
			c.Close()
		}
		if closed > 0 {
			t.Errorf("%d of %d idle camera sessions were closed", closed, n)
		}
	})
}

// The reviewer's mail: a small mail whose body is "--" lines each followed by a thousand short
// header-like lines. Charged by its lines it cost a hundred times its size and closed other
// sessions to make room. A body that no declared boundary splits holds no header in go-message,
// so now it costs what it holds and is delivered; the same blocks as the real parts of a
// multipart do hold headers, and a mail whose headers find no room is refused with 452 - in
// neither case is a camera's idle session closed for it.
func TestHostileHeaderMailClosesNoOtherSession(t *testing.T) {
	const budget = 4 << 20
	cases := []struct {
		name, mail, want string
	}{
		{"dashes in a plain body", "Subject: Motion Detection Alarm\r\n\r\n" + hostileBlocks("--", 44), "250"},
		{"the same blocks as parts", "Subject: Motion Detection Alarm\r\n" +
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + hostileBlocks("--b", 44) + "--b--\r\n", "452 4.3.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := runServer(t, Config{MemoryBudget: budget}, func(context.Context, Alarm) error { return nil })
			idleSessions(t, srv.Addr().String(), 20)
			hostile, r, err := startMail(srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer hostile.Close()
			go func() { _, _ = io.WriteString(hostile, c.mail+".\r\n") }()
			if line, err := lastReplyLine(r); err != nil || !strings.HasPrefix(line, c.want) {
				t.Errorf("the mail of %d bytes: %q, %v; want %s", len(c.mail), line, err, c.want)
			}
			if st := srv.Stats(); st.Evicted != 0 {
				t.Errorf("%d sessions closed to make room for it, want none", st.Evicted)
			}
		})
	}
}

// The meter takes as header blocks what go-message reads as headers: the message's, and a part's
// after a line that is a boundary of an open multipart as go-message's reader tells one. Other
// lines that begin with "--" are body text.
func TestHeaderMeterFollowsDeclaredBoundaries(t *testing.T) {
	const head = "Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
	cases := []struct {
		name   string
		mail   string
		blocks int
	}{
		{"not multipart", "Subject: x\r\n\r\n--\r\nA: 1\r\n\r\n--b\r\n", 1},
		{"two parts", head + "--b\r\nA: 1\r\n\r\nx\r\n--b\r\nB: 2\r\n\r\ny\r\n--b--\r\n", 3},
		{"a boundary with blanks after it", head + "--b \t\r\nA: 1\r\n\r\nx\r\n--b--\r\n", 2},
		{"LF line ends", "Content-Type: multipart/mixed; boundary=b\n\n--b\nA: 1\n\nx\n--b--\n", 2},
		{"the boundary as a prefix of a longer line", head + "--b\r\n\r\n--bx\r\n--b-\r\n-- b\r\n", 2},
		{"no parts after the close", head + "--b\r\n\r\nx\r\n--b--\r\n--b\r\nA: 1\r\n\r\n", 2},
		{"the key in any case, blanks before the colon, folded",
			"CONTENT-type \t:\r\n multipart/mixed;\r\n\tboundary=q\r\n\r\n--q\r\n\r\n", 2},
		{"the first Content-Type is the one", "Content-Type: text/plain\r\n" +
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n", 1},
		{"a key that only begins like it", "Content-Typed: multipart/mixed; boundary=b\r\n" +
			"Content-Type: multipart/mixed; boundary=c\r\n\r\n--b\r\n\r\n--c\r\n\r\n", 2},
		{"RFC 2231 boundary", "Content-Type: multipart/mixed; boundary*0=ab; boundary*1=cd\r\n\r\n" +
			"--ab\r\n\r\n--abcd\r\n\r\n", 2},
		{"no boundary parameter: go-message splits at bare --", "Content-Type: multipart/mixed\r\n\r\n" +
			"--\r\n\r\n--x\r\n\r\n", 2},
		{"an outer boundary ends the inner multipart", head +
			"--b\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\n" +
			"--b\r\n\r\n--i\r\n\r\n", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newHeaderMeter(strings.NewReader(c.mail), nil)
			if _, err := io.ReadAll(m); err != nil {
				t.Fatal(err)
			}
			if m.blocks != c.blocks {
				t.Errorf("%d header blocks, want %d", m.blocks, c.blocks)
			}
			if n := goMessageHeaders(c.mail); n > m.blocks {
				t.Errorf("go-message read %d headers, the meter charged %d", n, m.blocks)
			}
		})
	}
}

// A part's header stays charged while go-message may hold it, and is given back once the next
// part's header has replaced it and go-message has read past it: the mail is charged its
// largest headers at once, not all its headers together.
func TestHeaderMeterChargesThePeakNotTheSum(t *testing.T) {
	heavy := strings.Repeat("a:\r\n", 900) + "\r\n"
	padding := strings.Repeat("x\r\n", releaseLag/3+1)
	mail := "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	for range 10 {
		mail += "--b\r\n" + heavy + padding
	}
	mail += "--b--\r\n"
	m := newHeaderMeter(strings.NewReader(mail), nil)
	peak := int64(0)
	buf := make([]byte, 4096)
	for {
		_, err := m.Read(buf)
		peak = max(peak, m.held)
		if err != nil {
			break
		}
	}
	part := int64(900*(headerLineCost+4*headerByteCost) + headerLineCost + 2*headerByteCost)
	if peak < 2*part || peak > 3*part {
		t.Errorf("peak charge %d bytes for ten parts of %d: want about two parts' (the one read and the one "+
			"it replaced)", peak, part)
	}
}
