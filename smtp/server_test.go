package smtp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	netsmtp "net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/lan"
	"github.com/camgate/camgate/internal/testtool"
)

// testServer runs a Server on a free loopback port and collects the alarms it hands over.
type testServer struct {
	srv    *Server
	addr   string
	port   string
	alarms chan Alarm
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ts := &testServer{alarms: make(chan Alarm, 1024)}
	srv, err := NewServer(cfg, func(ctx context.Context, a Alarm) error { ts.alarms <- a; return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	ts.srv = srv
	ts.addr = srv.Addr().String()
	_, ts.port, _ = net.SplitHostPort(ts.addr)
	return ts
}

// waitAlarm returns the next alarm, failing after a generous timeout.
func (ts *testServer) waitAlarm(t testing.TB) Alarm {
	t.Helper()
	select {
	case a := <-ts.alarms:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no alarm delivered")
		return Alarm{}
	}
}

func (ts *testServer) noAlarm(t testing.TB) {
	t.Helper()
	select {
	case a := <-ts.alarms:
		t.Fatalf("unexpected alarm: %+v", a)
	default:
	}
}

// needTool finds a real peer program; in CI its absence is a failure naming the Debian package.
func needTool(t testing.TB, name, debPackage string) string {
	t.Helper()
	return testtool.Need(t, debPackage, name)
}

func swaks(t *testing.T, ts *testServer, args ...string) (string, error) {
	t.Helper()
	bin := needTool(t, "swaks", "swaks")
	base := []string{"--server", "127.0.0.1", "--port", ts.port, "--timeout", "30",
		"--from", "ipcam@cam.example", "--to", "cam-001122334455@camgate.local", "--helo", "ipcam"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).CombinedOutput()
	return string(out), err
}

func TestSwaksCameraMail(t *testing.T) {
	needTool(t, "swaks", "swaks") // here too: the totals checked after the subtests need them all
	jpeg, err := os.ReadFile("testdata/snapshot.jpg")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Username: "camera", Password: "s3cret"})
	tests := []struct {
		name     string
		auth     string
		password string
		wantCode string // in swaks' transcript
		wantMail bool
	}{
		{"AUTH LOGIN", "LOGIN", "s3cret", "235 ", true},
		{"AUTH PLAIN", "PLAIN", "s3cret", "235 ", true},
		{"wrong password", "LOGIN", "guess", "535 ", false},
		{"wrong password PLAIN", "PLAIN", "guess", "535 ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := swaks(t, ts, "--auth", tt.auth, "--auth-user", "camera", "--auth-password", tt.password,
				"--header", "Subject: Motion Detection Alarm", "--body", "Alarm on channel 1",
				"--attach-type", "image/jpeg", "--attach-name", "snap.jpg", "--attach", "@testdata/snapshot.jpg")
			if !strings.Contains(out, tt.wantCode) {
				t.Fatalf("swaks transcript lacks %q (err %v):\n%s", tt.wantCode, err, out)
			}
			if !tt.wantMail {
				if err == nil {
					t.Errorf("swaks succeeded with a wrong password:\n%s", out)
				}
				ts.noAlarm(t)
				return
			}
			if err != nil {
				t.Fatalf("swaks: %v\n%s", err, out)
			}
			a := ts.waitAlarm(t)
			if !a.Motion || a.Subject != "Motion Detection Alarm" || a.Text != "smtp: Motion Detection Alarm" {
				t.Errorf("alarm = motion %v subject %q text %q", a.Motion, a.Subject, a.Text)
			}
			if !bytes.Equal(a.Snapshot, jpeg) {
				t.Errorf("snapshot: %d bytes, want the %d attached", len(a.Snapshot), len(jpeg))
			}
			if len(a.Recipients) != 1 || a.Recipients[0] != "cam-001122334455" {
				t.Errorf("recipients = %q", a.Recipients)
			}
			if a.From != "ipcam@cam.example" || a.RemoteIP.String() != "127.0.0.1" || a.Received.IsZero() {
				t.Errorf("from %q remote %v received %v", a.From, a.RemoteIP, a.Received)
			}
			if !a.Authenticated {
				t.Error("a mail after a good AUTH is not marked Authenticated")
			}
		})
	}
	if st := ts.srv.Stats(); st.AuthFailures != 2 || st.Mails != 2 {
		t.Errorf("stats = %+v, want 2 auth failures and 2 mails", st)
	}
}

func TestSwaksWithoutAuthWhenNoUsername(t *testing.T) {
	ts := startServer(t, Config{})
	out, err := swaks(t, ts, "--header", "Subject: VIDEO LOSS", "--body", "the camera lost its video signal")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if a := ts.waitAlarm(t); a.Motion || a.Snapshot != nil || a.Authenticated {
		t.Errorf("alarm = %+v, want no motion, no snapshot, not authenticated", a)
	}
	// With no username set any login is taken; it proves nothing, so the mail is not marked.
	out, err = swaks(t, ts, "--auth", "LOGIN", "--auth-user", "anyone", "--auth-password", "anything",
		"--header", "Subject: Motion", "--body", "motion")
	if err != nil {
		t.Fatalf("swaks with AUTH: %v\n%s", err, out)
	}
	if a := ts.waitAlarm(t); a.Authenticated {
		t.Error("a login taken without a configured username marked the mail Authenticated")
	}
}

// client is a raw SMTP client for the cases swaks cannot produce.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	cl := &client{t: t, conn: c, r: bufio.NewReader(c)}
	cl.expect("220")
	return cl
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (c *client) reply() string {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (got %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (c *client) expect(code string) string {
	c.t.Helper()
	line := c.reply()
	if !strings.HasPrefix(line, code) {
		c.t.Fatalf("reply %q, want %s", line, code)
	}
	return line
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) cmd(line, code string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(code)
}

// mail sends one mail whose content is written by body and returns the final reply. body writes
// to a buffer: a write error shows when it is flushed, which is checked.
func (c *client) mail(body func(w io.Writer)) string {
	c.t.Helper()
	c.cmd("MAIL FROM:<cam@cam.example>", "250")
	c.cmd("RCPT TO:<cam-1@camgate>", "250")
	c.cmd("DATA", "354")
	bw := bufio.NewWriterSize(c.conn, 64<<10)
	body(bw)
	_, _ = io.WriteString(bw, "\r\n.\r\n")
	if err := bw.Flush(); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return c.reply()
}

func TestLongLineAccepted(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr)
	c.cmd("EHLO cam", "250")
	long := strings.Repeat("x", 100<<10)
	got := c.mail(func(w io.Writer) {
		fmt.Fprintf(w, "Subject: Motion alarm\r\nX-Long: %s\r\n\r\n%s\r\nend", long, long)
	})
	if !strings.HasPrefix(got, "250") {
		t.Fatalf("100 kB line: %q", got)
	}
	if a := ts.waitAlarm(t); !a.Motion {
		t.Errorf("alarm = %+v", a)
	}
	// Still a healthy session afterwards.
	c.cmd("NOOP", "250")
}

func TestTooLargeRefusedAndServerKeepsServing(t *testing.T) {
	ts := startServer(t, Config{MaxMessageBytes: 1 << 20})
	c := dial(t, ts.addr)
	c.cmd("EHLO cam", "250")
	chunk := strings.Repeat("A", 998) + "\r\n"
	got := c.mail(func(w io.Writer) {
		_, _ = io.WriteString(w, "Subject: Motion\r\n\r\n")
		for n := 0; n < 20<<20; n += len(chunk) {
			_, _ = io.WriteString(w, chunk)
		}
	})
	if !strings.HasPrefix(got, "552") {
		t.Fatalf("20 MB mail: %q, want 552", got)
	}
	ts.noAlarm(t)
	// The same session and a new one both still deliver.
	c.mail(func(w io.Writer) { _, _ = io.WriteString(w, "Subject: Motion\r\n\r\nsmall") })
	ts.waitAlarm(t)
	c2 := dial(t, ts.addr)
	c2.cmd("EHLO cam", "250")
	got = c2.mail(func(w io.Writer) { _, _ = io.WriteString(w, "Subject: Motion\r\n\r\nsmall") })
	if !strings.HasPrefix(got, "250") {
		t.Fatalf("after a 552: %q", got)
	}
	ts.waitAlarm(t)
	if st := ts.srv.Stats(); st.TooLarge != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestGarbageGetsErrorsThenHangUp(t *testing.T) {
	// A command timeout longer than the client's deadline: the hang-up must come from the errors.
	ts := startServer(t, Config{CommandTimeout: 10 * time.Minute})
	tests := []struct {
		name  string
		input string
	}{
		{"HTTP requests", strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2)},
		{"binary", strings.Repeat("\x00\x01\x02\xff\xfe\r\n\x16\x03\x01\x02\x00\r\n", 2)},
		{"unknown verbs", "FOO\r\nBAR\r\nBAZ\r\nQUX\r\nQUUX\r\n"},
		{"endless line", strings.Repeat("Z", 64<<10)},
		{"commands out of order", strings.Repeat("DATA\r\nRCPT TO:<a@b>\r\n", 20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			go func() { _, _ = io.WriteString(c.conn, tt.input) }()
			line := c.reply()
			if line[0] != '5' {
				t.Errorf("first reply %q, want a 5xx error", line)
			}
			// The server hangs up: reading reaches EOF well before the client's deadline.
			_, err := io.Copy(io.Discard, c.r)
			if isTimeout(err) {
				t.Errorf("server did not close the connection: %v", err)
			}
		})
	}
	// And it still serves a camera.
	c := dial(t, ts.addr)
	c.cmd("HELO cam", "250")
	c.mail(func(w io.Writer) { _, _ = io.WriteString(w, "Subject: motion\r\n\r\nx") })
	ts.waitAlarm(t)
}

// Trickling clients occupy every session slot; a camera arriving afterwards still gets its mail
// through, because a new session evicts the one that went longest without completing a command.
func TestCameraGetsThroughTricklingClients(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~15 s")
	}
	const tricklers = 500
	ts := startServer(t, Config{MaxSessions: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range tricklers {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", ts.addr, 10*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			go func() { _, _ = io.Copy(io.Discard, c) }()
			msg := fmt.Sprintf("EHLO trickler%d\r\nNOOP\r\n", i)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for j := 0; ; j = (j + 1) % len(msg) {
				if _, err := c.Write([]byte{msg[j]}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	// Let the tricklers fill every slot and make some progress first.
	deadline := time.Now().Add(10 * time.Second)
	for ts.srv.Stats().Accepted < tricklers && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	if st := ts.srv.Stats(); st.Sessions != 100 {
		t.Logf("sessions open before the camera: %d", st.Sessions)
	}

	for range 3 {
		c := dial(t, ts.addr)
		c.cmd("EHLO camera", "250")
		got := c.mail(func(w io.Writer) { _, _ = io.WriteString(w, "Subject: Motion Detection Alarm\r\n\r\nx") })
		if !strings.HasPrefix(got, "250") {
			t.Fatalf("camera mail: %q", got)
		}
		if a := ts.waitAlarm(t); !a.Motion {
			t.Errorf("alarm = %+v", a)
		}
		c.cmd("QUIT", "221")
	}
	st := ts.srv.Stats()
	if st.Evicted == 0 || st.Sessions > 100 {
		t.Errorf("stats = %+v: want evictions and at most 100 sessions", st)
	}
	cancel()
	wg.Wait()
}

func TestDeniedPeerGetsNoGreeting(t *testing.T) {
	p, err := lan.NewPolicy([]string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Policy: p})
	c, err := net.DialTimeout("tcp", ts.addr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 0 {
		t.Fatalf("denied peer read %q, %v; want nothing and EOF", got, err)
	}
	if st := ts.srv.Stats(); st.Denied != 1 || st.Accepted != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCommandsBeforeAuthRefused(t *testing.T) {
	ts := startServer(t, Config{Username: "u", Password: "p"})
	c := dial(t, ts.addr)
	c.cmd("EHLO cam", "250")
	c.cmd("MAIL FROM:<a@b>", "502")
	c.cmd("AUTH LOGIN", "334")
	c.cmd("dQ==", "334") // "u"
	c.cmd("cA==", "235") // "p"
	c.cmd("MAIL FROM:<a@b>", "250")
}

func TestBDATSizeMatchesGoSMTP(t *testing.T) {
	tests := []struct {
		line string
		size int64
		ok   bool
	}{
		{"BDAT 5", 5, true},
		{"bdat 5 last\r", 5, true},
		{"BDAT 5  LAST", 5, true},
		{"BDAT 4294967295", 4294967295, true},
		{"BDAT 4294967296", 0, false},
		{"BDAT -1", 0, false},
		{"BDAT 5 FOO", 0, false},
		{"BDAT 5 LAST x", 0, false},
		{"BDAT\t5", 0, false},
		{" BDAT 5", 0, false},
		{"BDAT", 0, false},
		{"BDATX 5", 0, false},
	}
	for _, tt := range tests {
		size, ok := bdatSize([]byte(tt.line))
		if size != tt.size || ok != tt.ok {
			t.Errorf("bdatSize(%q) = %d, %v; want %d, %v", tt.line, size, ok, tt.size, tt.ok)
		}
	}
}

// A mail sent with BDAT may hold lines of any length too.
func TestBDATLongLine(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr)
	c.cmd("EHLO cam", "250")
	c.cmd("MAIL FROM:<cam@x>", "250")
	c.cmd("RCPT TO:<cam-2@gw>", "250")
	body := "Subject: Motion\r\n\r\n" + strings.Repeat("z", 100<<10) + "\r\n"
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
	c.expect("250")
	if a := ts.waitAlarm(t); !a.Motion || a.Recipients[0] != "cam-2" {
		t.Errorf("alarm = %+v", a)
	}
	c.cmd("NOOP", "250")
}

// One byte at a time, fast enough to beat any idle timeout, still cannot hold a session: each
// command line has its own deadline, and a busy session has a lifetime.
func TestTricklingSessionsEnd(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		drip  string // sent one byte per 100 ms, repeated
		reply string // the server's last words
	}{
		// bufio hands go-smtp the partial line when the deadline hits; it is refused as a bad
		// command, and go-smtp hangs up after four of them.
		{"a command line never finished", Config{CommandTimeout: time.Second},
			"NOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOP", "500"},
		{"commands finished forever",
			Config{CommandTimeout: time.Second, SessionTimeout: 2 * time.Second}, "NOOP\r\n", "421"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.cfg)
			c := dial(t, ts.addr)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := c.conn.Write([]byte{tt.drip[i%len(tt.drip)]}); err != nil {
						return
					}
				}
			}()
			var last string
			for {
				line, err := c.r.ReadString('\n')
				if err != nil {
					if isTimeout(err) {
						t.Fatalf("session still open after the client's deadline; last reply %q", last)
					}
					break
				}
				last = line
			}
			if !strings.HasPrefix(last, tt.reply) {
				t.Errorf("last reply %q, want %s", last, tt.reply)
			}
		})
	}
}

// A mail whose alarm the handler could not store is answered 451, a transient failure the
// camera retries, never 250; the same mail once the handler stores it gets 250.
func TestMailNotStoredGets451(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	got := make(chan Alarm, 4)
	srv, err := NewServer(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		func(ctx context.Context, a Alarm) error {
			if fail.Load() {
				return errors.New("outbox: no space left on device")
			}
			got <- a
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Run(ctx) }()
	send := func() error {
		return netsmtp.SendMail(srv.Addr().String(), nil, "cam@lan", []string{"porch@gw"},
			[]byte("Subject: Motion Detection Alarm\r\n\r\nmotion\r\n"))
	}
	err = send()
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 451 {
		t.Fatalf("mail not stored: got %v, want a 451 reply", err)
	}
	if st := srv.Stats(); st.Deferred != 1 {
		t.Errorf("Deferred = %d, want 1", st.Deferred)
	}
	fail.Store(false)
	if err := send(); err != nil {
		t.Fatalf("the camera's retry: %v", err)
	}
	if a := <-got; !a.Motion {
		t.Errorf("retry not understood as motion: %+v", a)
	}
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
