package smtp

import (
	"net/netip"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
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

// authThrottle counts AUTH failures per client address in fixed windows. Sessions of any number
// of goroutines ask it; it holds no lock while anything else happens.
type authThrottle struct {
	now func() time.Time

	mu    sync.Mutex
	addrs map[netip.Addr]*authWindowState
}

type authWindowState struct {
	start    time.Time
	failures int
}

func newAuthThrottle(now func() time.Time) *authThrottle {
	return &authThrottle{now: now, addrs: make(map[netip.Addr]*authWindowState)}
}

// allowed reports whether addr may try to log in now.
func (t *authThrottle) allowed(addr netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.addrs[addr]
	return !ok || t.now().Sub(w.start) >= authWindow || w.failures < authFailuresAllowed
}

// failed records a wrong login from addr and returns the failures in its window so far: 1
// opens a window, authFailuresAllowed closes it to further tries until the window ends.
func (t *authThrottle) failed(addr netip.Addr) int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.addrs[addr]
	if ok && now.Sub(w.start) >= authWindow {
		ok = false
	}
	if !ok {
		if len(t.addrs) >= maxThrottledAddrs {
			t.forgetOldest(now)
		}
		w = &authWindowState{start: now}
		t.addrs[addr] = w
	}
	w.failures++
	return w.failures
}

// forgetOldest drops every ended window, or if none has ended the one that began first.
func (t *authThrottle) forgetOldest(now time.Time) {
	var oldest netip.Addr
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
