package smtp

import (
	"net/netip"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/camgate/camgate/internal/lan"
)

// Bounds of the AUTH failure throttle (issue 13: 200 guesses took 0.02 s, one log line each).
const (
	// authFailuresAllowed wrong logins from one address open its window; more within it are
	// refused before the credentials are looked at.
	authFailuresAllowed = 5
	authWindow          = time.Minute
	// maxThrottledAddrs bounds the table. A full table forgets the address whose window began
	// first; an attacker with many addresses gains guesses, never memory.
	maxThrottledAddrs = 1024
)

// errAuthThrottled answers AUTH from an address with too many recent failures (RFC 4954 §6:
// 454 4.7.0 temporary authentication failure).
var errAuthThrottled = &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
	Message: "Too many authentication failures, try again later"}

// authThrottle counts AUTH attempts per client (lan.ClientKey: an IPv6 client by its /64, as
// the page's login does) in fixed windows. An attempt counts when it starts and is taken back
// when its credentials were right, so parallel sessions of one client cannot have more guesses
// looked at than one session in a loop. Sessions of any number of goroutines ask it; it holds
// no lock while anything else happens.
type authThrottle struct {
	now func() time.Time

	mu    sync.Mutex
	addrs map[netip.Prefix]*authWindowState
}

type authWindowState struct {
	start    time.Time
	failures int // attempts not taken back
}

// authTry is one attempt counted in a client's window.
type authTry struct {
	key   netip.Prefix
	start time.Time // of the window it counts in
	n     int       // attempts counted in that window, this one included
}

func newAuthThrottle(now func() time.Time) *authThrottle {
	return &authThrottle{now: now, addrs: make(map[netip.Prefix]*authWindowState)}
}

// allowed reports whether addr may try to log in now.
func (t *authThrottle) allowed(addr netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.addrs[lan.ClientKey(addr)]
	return !ok || t.now().Sub(w.start) >= authWindow || w.failures < authFailuresAllowed
}

// attempt counts a login attempt of addr, as a failure until forgive takes it back, or reports
// false when addr's window is closed: n of 1 opens a window, authFailuresAllowed closes it to
// further tries until it ends.
func (t *authThrottle) attempt(addr netip.Addr) (try authTry, ok bool) {
	now := t.now()
	k := lan.ClientKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	w, open := t.addrs[k]
	if open && now.Sub(w.start) >= authWindow {
		open = false
	}
	if open && w.failures >= authFailuresAllowed {
		return authTry{}, false
	}
	if !open {
		if len(t.addrs) >= maxThrottledAddrs {
			t.forgetOldest(now)
		}
		w = &authWindowState{start: now}
		t.addrs[k] = w
	}
	w.failures++
	return authTry{key: k, start: w.start, n: w.failures}, true
}

// forgive takes back try: its credentials were right.
func (t *authThrottle) forgive(try authTry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w, ok := t.addrs[try.key]; ok && w.start.Equal(try.start) && w.failures > 0 {
		w.failures--
	}
}

// forgetOldest drops every ended window, or if none has ended the one that began first.
func (t *authThrottle) forgetOldest(now time.Time) {
	var oldest netip.Prefix
	for a, w := range t.addrs {
		if now.Sub(w.start) >= authWindow {
			delete(t.addrs, a)
			continue
		}
		if !oldest.IsValid() || w.start.Before(t.addrs[oldest].start) {
			oldest = a
		}
	}
	if len(t.addrs) >= maxThrottledAddrs {
		delete(t.addrs, oldest)
	}
}
