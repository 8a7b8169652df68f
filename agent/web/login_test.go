package web

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
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
