package smtp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink that sessions of many goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Issue 13: 200 wrong AUTHs from one address in a loop. The first authFailuresAllowed are
// examined and refused (535); every later one, even with the right password, gets 454 4.7.0
// unexamined; the log has two lines, not two hundred; another address logs in meanwhile
// (swaks from 127.0.0.2); and once the window has passed, the first address may try again.
func TestAuthFailuresThrottledPerAddress(t *testing.T) {
	var logs syncBuffer
	var clockMu sync.Mutex
	now := time.Now()
	srv := runServer(t, Config{Username: "camgate", Password: "right-one",
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))},
		func(context.Context, Alarm) error { return nil })
	srv.throttle.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	addr := srv.Addr().String()

	plain := func(user, pass string) string {
		return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + "\r\n"
	}
	replies := map[string]int{}
	var c net.Conn
	var r *bufio.Reader
	for i := range 200 {
		if c == nil { // a session is closed after ten 5xx replies: a guesser reconnects
			var err error
			if c, err = net.DialTimeout("tcp", addr, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			r = bufio.NewReader(c)
			if _, err := lastReplyLine(r); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, "EHLO guesser\r\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := lastReplyLine(r); err != nil {
				t.Fatal(err)
			}
		}
		guess := plain("camgate", fmt.Sprintf("guess-%d", i))
		if i == 150 {
			guess = plain("camgate", "right-one") // throttled is throttled, right or wrong
		}
		line := ""
		if _, err := io.WriteString(c, guess); err == nil {
			line, _ = lastReplyLine(r)
		}
		if len(line) < 9 {
			c.Close()
			c = nil
			continue
		}
		replies[line[:9]]++
	}
	if replies["535 5.7.8"] != authFailuresAllowed || replies["454 4.7.0"] < 200-authFailuresAllowed-10 {
		t.Errorf("replies %v: want %d × 535 then 454 for the rest", replies, authFailuresAllowed)
	}
	t.Logf("replies to 200 guesses: %v", replies)
	if got := strings.Count(logs.String(), "\n"); got != 2 {
		t.Errorf("%d log lines for 200 guesses, want 2 (first failure, throttled):\n%s", got, logs.String())
	}
	st := srv.Stats()
	answered := uint64(replies["535 5.7.8"] + replies["454 4.7.0"])
	if st.AuthFailures != authFailuresAllowed || st.AuthThrottled+st.AuthFailures != answered {
		t.Errorf("stats %+v, replies %v", st, replies)
	}

	// Another address is not held back: swaks from 127.0.0.2 logs in and mails.
	bin := needTool(t, "swaks", "swaks")
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, "--server", "127.0.0.1", "--port", port, "--local-interface", "127.0.0.2",
		"--timeout", "30", "--to", "cam-1@gw", "--from", "cam@lan", "--auth", "PLAIN",
		"--auth-user", "camgate", "--auth-password", "right-one", "--header", "Subject: Motion").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "235 ") {
		t.Fatalf("swaks from 127.0.0.2 while 127.0.0.1 is throttled: %v\n%s", err, out)
	}

	// A minute on, the window has ended: 127.0.0.1's right password is looked at again.
	clockMu.Lock()
	now = now.Add(authWindow)
	clockMu.Unlock()
	cl := dial(t, addr)
	cl.cmd("EHLO camera", "250")
	cl.cmd(strings.TrimSuffix(plain("camgate", "right-one"), "\r\n"), "235")
}

// The table of addresses stays bounded however many addresses fail, and forgets ended windows
// first.
func TestAuthThrottleTableIsBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := newAuthThrottle(func() time.Time { return now })
	first := netip.MustParseAddr("fd00::1")
	for range authFailuresAllowed {
		th.attempt(first)
	}
	if th.allowed(first) {
		t.Fatal("an address past the limit is still allowed")
	}
	for i := range 3 * maxThrottledAddrs {
		now = now.Add(time.Millisecond)
		a := netip.AddrFrom16([16]byte{0xfd, 1, 6: byte(i >> 8), 7: byte(i)}) // each in its own /64
		th.attempt(a)
	}
	if n := len(th.addrs); n > maxThrottledAddrs {
		t.Fatalf("%d addresses kept, bound %d", n, maxThrottledAddrs)
	}
}

// Many sessions of one address each start AUTH LOGIN before any of them has failed, so all of
// them pass the throttle's first look; then they send wrong passwords at once, and the last
// one the right password. An attempt counts when its password arrives, before it is looked at:
// at most authFailuresAllowed passwords are compared (535), the rest get 454 4.7.0 unexamined,
// the right one included - a burst cannot buy more guesses than a loop.
func TestParallelAuthGuessesAreCountedBeforeTheyAreChecked(t *testing.T) {
	const sessions = 40
	srv := runServer(t, Config{Username: "camgate", Password: "right-one"},
		func(context.Context, Alarm) error { return nil })
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	clients := make([]*client, sessions)
	for i := range clients {
		clients[i] = dial(t, srv.Addr().String())
		clients[i].cmd("EHLO guesser", "250")
		clients[i].cmd("AUTH LOGIN", "334")
		clients[i].cmd(b64("camgate"), "334")
	}
	var wg sync.WaitGroup
	replies := make([]string, sessions)
	start := make(chan struct{})
	for i, cl := range clients[:sessions-1] {
		wg.Go(func() {
			<-start
			if _, err := io.WriteString(cl.conn, b64(fmt.Sprintf("guess-%d", i))+"\r\n"); err == nil {
				replies[i], _ = lastReplyLine(cl.r)
			}
		})
	}
	close(start)
	wg.Wait()
	last := clients[sessions-1]
	if _, err := io.WriteString(last.conn, b64("right-one")+"\r\n"); err != nil {
		t.Fatal(err)
	}
	replies[sessions-1], _ = lastReplyLine(last.r)
	count := map[string]int{}
	for _, line := range replies {
		count[line[:min(len(line), 9)]]++
	}
	st := srv.Stats()
	if count["535 5.7.8"] > authFailuresAllowed || st.AuthFailures > authFailuresAllowed ||
		count["535 5.7.8"]+count["454 4.7.0"] != sessions {
		t.Errorf("replies %v, %d examined: want at most %d examined (535), the rest 454",
			count, st.AuthFailures, authFailuresAllowed)
	}
	if !strings.HasPrefix(replies[sessions-1], "454 4.7.0") {
		t.Errorf("the right password after %d wrong ones: %q, want 454 4.7.0 unexamined", sessions-1, replies[sessions-1])
	}
}

// An IPv6 client is one client per /64, as at the page's login: a device may use any address
// of its /64, and taking a fresh one must not buy fresh guesses. IPv4 is per address.
func TestAuthThrottleKeysIPv6By64(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := newAuthThrottle(func() time.Time { return now })
	for i := range authFailuresAllowed {
		a := netip.AddrFrom16([16]byte{0xfd, 0, 15: byte(i + 1)}) // fd00::1 … fd00::5
		if _, ok := th.attempt(a); !ok {
			t.Fatalf("attempt %d refused, want %d allowed", i+1, authFailuresAllowed)
		}
	}
	for _, c := range []struct {
		addr    string
		allowed bool
	}{
		{"fd00::1", false},
		{"fd00::ffff:1234:5678", false}, // the same /64
		{"fd00:0:0:1::1", true},         // the next /64
		{"10.0.0.1", true},
		{"::ffff:10.0.0.1", true}, // the same IPv4 client, mapped
	} {
		if got := th.allowed(netip.MustParseAddr(c.addr)); got != c.allowed {
			t.Errorf("%s allowed = %v, want %v", c.addr, got, c.allowed)
		}
	}
	for range authFailuresAllowed {
		th.attempt(netip.MustParseAddr("10.0.0.1"))
	}
	if th.allowed(netip.MustParseAddr("::ffff:10.0.0.1")) || th.allowed(netip.MustParseAddr("10.0.0.1")) {
		t.Error("an IPv4 client past the limit is still allowed, plain or mapped")
	}
	if !th.allowed(netip.MustParseAddr("10.0.0.2")) {
		t.Error("another IPv4 address is held back")
	}
}
