package web

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// loginFrom posts a code to the running server from the loopback address src (127.0.0.2
// stands in for another LAN host: on Linux all of 127/8 is on lo) and returns the status.
func loginFrom(t *testing.T, s *Server, src, code string) int {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 30 * time.Second}
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:       d.DialContext,
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost,
		"http://"+s.Addr().String()+"/api/login", bytes.NewReader([]byte(`{"code":"`+code+`"}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := cl.Do(req)
	if err != nil {
		t.Fatalf("login from %s: %v", src, err)
	}
	defer res.Body.Close()
	return res.StatusCode
}

// Issue 13, acceptance 6: a LAN device spending its wrong codes does not lock the owner out.
func TestWrongCodesFromOneHostDoNotLockOutAnother(t *testing.T) {
	s := startServer(t, nil)
	for i := 1; i <= clientFailures; i++ {
		if got := loginFrom(t, s, "127.0.0.2", "0000-0000"); got != http.StatusUnauthorized {
			t.Fatalf("wrong code %d from 127.0.0.2: status %d, want 401", i, got)
		}
	}
	if got := loginFrom(t, s, "127.0.0.1", testCode); got != http.StatusOK {
		t.Fatalf("right code from 127.0.0.1 after 9 wrong ones from 127.0.0.2: status %d, want 200", got)
	}
	if got := loginFrom(t, s, "127.0.0.2", "0000-0000"); got != http.StatusTooManyRequests {
		t.Errorf("10th wrong code from 127.0.0.2: status %d, want 429", got)
	}
}

// However many addresses guess, the per-client table stays bounded, and a client that finds it
// full is still held by the global bound.
func TestLoginLimiterTableIsBounded(t *testing.T) {
	l := newLoginLimiter()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	refused := 0
	for i := range 20 * maxLimitedClients {
		// Ten new addresses a second: the window holds 600 of them, the global bound 300.
		now = now.Add(100 * time.Millisecond)
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.attempt(a, now); !ok {
			refused++
		}
		if n := len(l.perClient); n > maxLimitedClients {
			t.Fatalf("after %d clients the table holds %d, bound %d", i+1, n, maxLimitedClients)
		}
		if n := len(l.all); n > allFailures {
			t.Fatalf("after %d clients the global window holds %d, bound %d", i+1, n, allFailures)
		}
	}
	if refused == 0 {
		t.Error("600 new addresses a minute: none refused, want the global bound to hold")
	}

	// A table full of live clients: a newcomer is not tracked, but counts against the global bound.
	l = newLoginLimiter()
	for i := range maxLimitedClients {
		l.perClient[netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32)] = []time.Time{now}
	}
	newcomer := netip.MustParseAddr("10.2.0.1")
	for i := range allFailures {
		if ok, _ := l.attempt(newcomer, now); !ok {
			t.Fatalf("attempt %d of an untracked client refused before the global bound", i+1)
		}
	}
	if ok, _ := l.attempt(newcomer, now); ok {
		t.Error("an untracked client passed the global bound")
	}
	if n := len(l.perClient); n > maxLimitedClients {
		t.Errorf("table holds %d, bound %d", n, maxLimitedClients)
	}
}

// A new setup code (camgate pair-code --rotate) ends every session at the next request, the old
// code no longer logs in and the new one does; without a readable code nobody logs in.
func TestNewSetupCodeEndsEverySession(t *testing.T) {
	var mu sync.Mutex
	code, codeErr := testCode, error(nil)
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Backend: newFakeBackend(), Logger: slog.New(slog.DiscardHandler),
		Code: func() (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return code, codeErr
		}})
	if err != nil {
		t.Fatal(err)
	}
	set := func(c string, e error) {
		mu.Lock()
		defer mu.Unlock()
		code, codeErr = c, e
	}
	owner, other := newClient(t, s), newClient(t, s)
	other.remote = "192.168.1.11:1000"
	mustStatus(t, owner.login(testCode), http.StatusOK)
	mustStatus(t, other.login(testCode), http.StatusOK)
	mustStatus(t, owner.do("GET", "/api/status", nil), http.StatusOK)

	const rotated = "8765-4321"
	set(rotated, nil)
	mustStatus(t, owner.do("GET", "/api/status", nil), http.StatusUnauthorized)
	if w := other.do("GET", "/api/session", nil); w.Code != http.StatusOK ||
		!strings.Contains(w.Body.String(), `"logged_in":false`) {
		t.Errorf("GET /api/session after the code changed: %d %s, want logged_in false", w.Code, w.Body.String())
	}
	if n := s.sessions.count(); n != 0 {
		t.Errorf("%d sessions live after the code changed, want 0", n)
	}
	mustStatus(t, owner.login(testCode), http.StatusUnauthorized)
	mustStatus(t, owner.login(rotated), http.StatusOK)
	mustStatus(t, owner.do("GET", "/api/status", nil), http.StatusOK)

	set("", errors.New("setup-code: no such file"))
	mustStatus(t, owner.do("GET", "/api/status", nil), http.StatusInternalServerError)
	mustStatus(t, other.login(rotated), http.StatusInternalServerError)
}
