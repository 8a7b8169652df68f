package smtp

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runServer runs a Server with handler h on a free loopback port until the test ends.
func runServer(t *testing.T, cfg Config, h Handler) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}

// writeJPEGMail writes the head of a camera's alarm mail and a base64 JPEG attachment of size
// bytes (random after the JPEG magic, so nothing compresses it), without the final boundary
// and dot: the caller ends it or stalls.
func writeJPEGMail(w io.Writer, size int) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprint(bw, "Subject: Motion Detection Alarm\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"+
		"Alarm event: Motion Detection\r\n--b1\r\nContent-Type: image/jpeg\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n")
	rng := rand.New(rand.NewPCG(uint64(size), 1))
	raw := make([]byte, 57) // 57 bytes are one 76-character base64 line
	for sent := 0; sent < size; sent += len(raw) {
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		if sent == 0 {
			raw[0], raw[1], raw[2] = 0xFF, 0xD8, 0xFF
		}
		fmt.Fprintf(bw, "%s\r\n", base64.StdEncoding.EncodeToString(raw))
	}
	return bw.Flush()
}

// startMail opens a session and leads it into DATA.
func startMail(addr string) (net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	for _, step := range []struct{ send, want string }{
		{"", "220"}, {"EHLO cam\r\n", "250"}, {"MAIL FROM:<cam@lan>\r\n", "250"},
		{"RCPT TO:<cam-1@gw>\r\n", "250"}, {"DATA\r\n", "354"},
	} {
		if _, err := io.WriteString(c, step.send); err != nil {
			c.Close()
			return nil, nil, err
		}
		line, err := lastReplyLine(r)
		if err != nil || !strings.HasPrefix(line, step.want) {
			c.Close()
			return nil, nil, fmt.Errorf("after %q: reply %q, %w", step.send, line, err)
		}
	}
	return c, r, nil
}

func lastReplyLine(r *bufio.Reader) (string, error) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return line, err
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n"), nil
		}
	}
}

// Issue 13 acceptance 5 (SMTP part, in one process): uploads of 1 MiB snapshots that stall
// mid-DATA never hold more than the budget; the stalest are closed to make room; a camera
// that then sends its alarm gets it through with its snapshot, and the budget is all given
// back when the sessions end.
func TestStalledUploadsStayInTheBudget(t *testing.T) {
	const budget = 3 << 20
	alarms := make(chan Alarm, 4)
	srv := runServer(t, Config{MemoryBudget: budget}, func(_ context.Context, a Alarm) error {
		alarms <- a
		return nil
	})
	addr := srv.Addr().String()

	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if m := srv.Stats().MemoryInUse; m > peak.Load() {
				peak.Store(m)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	started := 0
	for range 20 {
		// An upload still being read is fresher than a session at EHLO: such a session may
		// be closed to make room before it reaches DATA. That is one stalled upload fewer.
		c, _, err := startMail(addr)
		if err != nil {
			continue
		}
		started++
		stalled = append(stalled, c)
		_ = writeJPEGMail(c, 1<<20) // the write fails once the server closed the session
	}
	// Until the server has read what the sockets hold: then every upload has stalled.
	for last := int64(-1); last != srv.Stats().MemoryInUse; time.Sleep(300 * time.Millisecond) {
		last = srv.Stats().MemoryInUse
	}
	close(stopSampling)
	<-sampled
	st := srv.Stats()
	t.Logf("after 20 stalled 1 MiB uploads (%d reached DATA): %+v, peak in use %d KiB", started, st, peak.Load()>>10)
	if peak.Load() > budget || st.MemoryInUse > budget {
		t.Fatalf("memory in use reached %d bytes, budget %d", peak.Load(), budget)
	}
	if started < 10 || st.Evicted == 0 {
		t.Errorf("%d uploads reached DATA, %d sessions closed to make room: want most, and some", started, st.Evicted)
	}

	c, r, err := startMail(addr)
	if err != nil {
		t.Fatalf("the camera: %v", err)
	}
	defer c.Close()
	if err := writeJPEGMail(c, 300<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "\r\n--b1--\r\n.\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := lastReplyLine(r); err != nil || !strings.HasPrefix(line, "250") {
		t.Fatalf("the camera's mail: %q, %v", line, err)
	}
	a := <-alarms
	if !a.Motion || len(a.Snapshot) < 300<<10 || len(a.Snapshot) > 301<<10 {
		t.Errorf("alarm: motion %v, snapshot %d bytes, want motion and the 300 KiB snapshot", a.Motion, len(a.Snapshot))
	}

	for _, sc := range stalled {
		sc.Close()
	}
	c.Close()
	eventually(t, "the budget given back", func() bool { return srv.Stats().MemoryInUse == 0 })
}

// sendAlarm sends a small motion mail on a session already in DATA and returns the reply.
func sendAlarm(c net.Conn, r *bufio.Reader) (string, error) {
	if _, err := io.WriteString(c, "Subject: Motion Detection Alarm\r\n\r\nmotion\r\n.\r\n"); err != nil {
		return "", err
	}
	return lastReplyLine(r)
}

// blockedHandler is a Handler that holds the first mail until release is closed.
func blockedHandler() (h Handler, inHandler <-chan struct{}, release chan struct{}) {
	in := make(chan struct{}, 1)
	release = make(chan struct{})
	var once sync.Once
	return func(ctx context.Context, _ Alarm) error {
		once.Do(func() {
			in <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done(): // the server stops: a failed test must not hang
			}
		})
		return nil
	}, in, release
}

// serverWithMailInHandler runs a Server with the given budget whose Handler holds the first
// mail, sent on a first session, until release is closed; replied gets that mail's reply.
func serverWithMailInHandler(t *testing.T, budget int64) (
	srv *Server, first net.Conn, replied <-chan string, release chan struct{},
) {
	t.Helper()
	h, inHandler, release := blockedHandler()
	srv = runServer(t, Config{MemoryBudget: budget}, h)
	first, firstR, err := startMail(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	r := make(chan string, 1)
	go func() { line, _ := sendAlarm(first, firstR); r <- line }()
	<-inHandler
	return srv, first, r, release
}

// While the Handler has a mail (such a session is never pushed out: its reply would be lost)
// and the budget holds nothing else that could go, a new connection is told 421 4.3.2 and
// closed, and a mail gets 452 4.3.1 (both: try again later). Once the Handler is done, both
// are served (the connection once the first camera has left: a session idle between mails is
// not closed to make room).
func TestOverBudgetRefusesCleanly(t *testing.T) {
	// The first session and its mail: sessionCost + mailCost + one chunk for its header.
	oneMail := int64(sessionCost + mailCost + budgetChunk)

	t.Run("new connection gets 421", func(t *testing.T) {
		srv, first, replied, release := serverWithMailInHandler(t, oneMail)

		c, err := net.DialTimeout("tcp", srv.Addr().String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(c)
		if !strings.HasPrefix(string(got), "421 4.3.2 ") || err != nil {
			t.Fatalf("a connection with no room: %q, %v; want 421 4.3.2 then EOF", got, err)
		}

		close(release)
		if line := <-replied; !strings.HasPrefix(line, "250") {
			t.Fatalf("the mail in the Handler: %q", line)
		}
		if _, err := io.WriteString(first, "QUIT\r\n"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the first camera's session to end", func() bool { return srv.Stats().MemoryInUse == 0 })
		second, secondR, err := startMail(srv.Addr().String())
		if err != nil {
			t.Fatalf("a new connection once there is room: %v", err)
		}
		defer second.Close()
		if line, err := sendAlarm(second, secondR); err != nil || !strings.HasPrefix(line, "250") {
			t.Fatalf("its mail: %q, %v", line, err)
		}
		if st := srv.Stats(); st.OverBudget != 1 {
			t.Errorf("OverBudget = %d, want 1", st.OverBudget)
		}
	})

	t.Run("mail gets 452", func(t *testing.T) {
		srv, _, replied, release := serverWithMailInHandler(t, oneMail+sessionCost)

		second, secondR, err := startMail(srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		if line, err := sendAlarm(second, secondR); err != nil || !strings.HasPrefix(line, "452 4.3.1 ") {
			t.Fatalf("a mail with no room: %q, %v; want 452 4.3.1", line, err)
		}

		close(release)
		if line := <-replied; !strings.HasPrefix(line, "250") {
			t.Fatalf("the mail in the Handler: %q", line)
		}
		for _, cmd := range []string{"MAIL FROM:<cam@lan>", "RCPT TO:<cam-1@gw>", "DATA"} {
			if _, err := io.WriteString(second, cmd+"\r\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := lastReplyLine(secondR); err != nil {
				t.Fatal(err)
			}
		}
		if line, err := sendAlarm(second, secondR); err != nil || !strings.HasPrefix(line, "250") {
			t.Fatalf("the camera's retry: %q, %v", line, err)
		}
		if st := srv.Stats(); st.OverBudget != 1 {
			t.Errorf("OverBudget = %d, want 1", st.OverBudget)
		}
	})
}

// A part header of many short lines costs go-message far more than its bytes: it is charged,
// and bounded to maxHeaderLines.
func TestPartHeaderOfManyLinesIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: Motion Detection Alarm\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n")
	for range 20000 {
		b.WriteString("X:\r\n")
	}
	b.WriteString("\r\nbody\r\n--b--\r\n")
	a, err := ParseMail(strings.NewReader(b.String()), 0)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "lines") {
		t.Fatalf("err = %v, want ErrMalformed naming the line bound", err)
	}
	if !a.Motion {
		t.Errorf("the subject read before the part still counts: %+v", a)
	}

	// Under a server, the same header is charged before go-message holds it: with a budget that
	// cannot hold it, the mail gets 452 and nothing reaches the Handler.
	srv := runServer(t, Config{MemoryBudget: sessionCost + mailCost + budgetChunk},
		func(context.Context, Alarm) error { t.Error("a mail without room reached the Handler"); return nil })
	c, r, err := startMail(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := strings.Replace(b.String(), strings.Repeat("X:\r\n", 20000), strings.Repeat("X:\r\n", 900), 1)
	if _, err := io.WriteString(c, head+".\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := lastReplyLine(r); err != nil || !strings.HasPrefix(line, "452 4.3.1") {
		t.Fatalf("reply %q, %v; want 452 4.3.1", line, err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A server stopped right after it started returns: go-smtp's Close misses a listener that its
// Serve had not registered yet, so Run closes its own (an agent stopped at once hung on it).
func TestRunStopsRightAfterStart(t *testing.T) {
	for range 50 {
		srv, err := NewServer(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			func(context.Context, Alarm) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

// Mail content counts as progress, every progressBytes: a camera uploading its snapshot is
// fresher than a session that only said EHLO after the camera's DATA, so it is not the one
// closed to make room.
func TestUploadCountsAsProgress(t *testing.T) {
	srv := runServer(t, Config{}, func(context.Context, Alarm) error { return nil })
	camera, _, err := startMail(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer camera.Close()
	time.Sleep(20 * time.Millisecond)
	idle := dial(t, srv.Addr().String())
	idle.cmd("EHLO idle", "250")
	progressOf := func(local net.Addr) int64 {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for sc := range srv.sessions {
			if sc.RemoteAddr().String() == local.String() {
				return sc.progress.Load()
			}
		}
		t.Fatalf("no session for %s", local)
		return 0
	}
	if progressOf(camera.LocalAddr()) >= progressOf(idle.conn.LocalAddr()) {
		t.Fatal("the camera's session is fresher before it sent anything")
	}
	time.Sleep(20 * time.Millisecond)
	if err := writeJPEGMail(camera, 4*progressBytes); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the upload counted as progress", func() bool {
		return progressOf(camera.LocalAddr()) > progressOf(idle.conn.LocalAddr())
	})
}
