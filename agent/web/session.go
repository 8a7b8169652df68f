package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/lan"
)

const (
	// sessionIdle ends a session nobody used for this long; sessionMax ends any session, so a
	// phone left logged in does not stay a key to the gateway forever.
	sessionIdle = 2 * time.Hour
	sessionMax  = 24 * time.Hour
	// maxSessions bounds memory against a LAN device logging in in a loop; the oldest session
	// goes first.
	maxSessions = 64

	// A client may get clientFailures wrong codes in loginWindow; its next attempt is refused
	// without looking at the code. allFailures bounds all clients together: far above one
	// client's share, so that one LAN device's guesses cannot lock the owner out (issue 13), yet
	// a device with many addresses (IPv6, or many IPv4 addresses taken on the LAN) cannot guess
	// faster than that either: 10^8 codes at 300 a minute take over a hundred days on average.
	clientFailures = 9
	allFailures    = 300
	loginWindow    = time.Minute
	// maxLimitedClients bounds the per-client failure table; a client that finds it full of
	// live entries is held by the global bound alone.
	maxLimitedClients = 1024
)

type session struct {
	csrf    string
	created time.Time
	used    time.Time
}

// codeTag names a setup code without keeping it: sessions are valid for one code.
type codeTag [sha256.Size]byte

func tagOf(code string) codeTag { return sha256.Sum256([]byte(normalizeCode(code))) }

// sessions is the server-side session table. Every session belongs to the setup code it was
// created under; a new code ends them all.
type sessions struct {
	mu   sync.Mutex
	m    map[string]*session
	code codeTag // the code the sessions in m were made with; zero before the first
}

func newSessions() *sessions { return &sessions{m: make(map[string]*session)} }

// randomToken returns 256 random bits in hex.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b[:])
}

// rekey makes code the one sessions are valid for; ended reports that it replaced another
// code, ending every session.
func (s *sessions) rekey(code codeTag) (ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rekeyLocked(code)
}

func (s *sessions) rekeyLocked(code codeTag) bool {
	if code == s.code {
		return false
	}
	ended := s.code != codeTag{}
	s.code = code
	clear(s.m)
	return ended
}

// create starts a session under the setup code code and returns its id and CSRF token.
func (s *sessions) create(now time.Time, code codeTag) (id, csrf string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rekeyLocked(code)
	s.expire(now)
	for len(s.m) >= maxSessions {
		var oldest string
		var at time.Time
		for k, v := range s.m {
			if oldest == "" || v.created.Before(at) {
				oldest, at = k, v.created
			}
		}
		delete(s.m, oldest)
	}
	id, csrf = randomToken(), randomToken()
	s.m[id] = &session{csrf: csrf, created: now, used: now}
	return id, csrf
}

// lookup returns the session's CSRF token and marks it used; ok is false for an unknown or
// expired id, and for every session when the setup code is no longer code.
func (s *sessions) lookup(id string, now time.Time, code codeTag) (csrf string, ok bool) {
	if id == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rekeyLocked(code) {
		return "", false
	}
	v, ok := s.m[id]
	if !ok {
		return "", false
	}
	if v.expired(now) {
		delete(s.m, id)
		return "", false
	}
	v.used = now
	return v.csrf, true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *sessions) expire(now time.Time) {
	for k, v := range s.m {
		if v.expired(now) {
			delete(s.m, k)
		}
	}
}

func (v *session) expired(now time.Time) bool {
	return now.Sub(v.used) > sessionIdle || now.Sub(v.created) > sessionMax
}

// loginLimiter remembers recent wrong codes per client and in total.
type loginLimiter struct {
	mu        sync.Mutex
	perClient map[netip.Prefix][]time.Time
	all       []time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{perClient: make(map[netip.Prefix][]time.Time)}
}

// attempt reports whether client may try a code now, and if not, how long until it may. An
// allowed attempt counts as a wrong code at once, so that a burst of parallel guesses cannot
// all pass before the first is judged; forgive takes it back when the code was right.
func (l *loginLimiter) attempt(client netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := lan.ClientKey(client) // IPv6 by /64: one device can use a whole /64
	l.all = recent(l.all, now)
	c := recent(l.perClient[k], now)
	if wait := max(waitFor(l.all, allFailures, now), waitFor(c, clientFailures, now)); wait > 0 {
		l.store(k, c)
		return false, wait
	}
	l.all = append(l.all, now)
	if len(l.perClient) >= maxLimitedClients {
		l.prune(now)
	}
	if _, known := l.perClient[k]; known || len(l.perClient) < maxLimitedClients {
		// A full table of live clients still leaves the global bound in force.
		c = append(c, now)
	}
	l.store(k, c)
	return true, 0
}

// forgive takes back the attempt client made at the time at: its code was right.
func (l *loginLimiter) forgive(client netip.Addr, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := lan.ClientKey(client)
	l.all = removeTime(l.all, at)
	l.store(k, removeTime(l.perClient[k], at))
}

func (l *loginLimiter) store(k netip.Prefix, ts []time.Time) {
	if len(ts) == 0 {
		delete(l.perClient, k)
		return
	}
	l.perClient[k] = ts
}

func (l *loginLimiter) prune(now time.Time) {
	for k, ts := range l.perClient {
		l.store(k, recent(ts, now))
	}
}

// waitFor returns how long until fewer than limit of the failures ts are inside the window, 0
// when they already are.
func waitFor(ts []time.Time, limit int, now time.Time) time.Duration {
	if len(ts) < limit {
		return 0
	}
	return ts[len(ts)-limit].Add(loginWindow).Sub(now)
}

// removeTime removes the last occurrence of at.
func removeTime(ts []time.Time, at time.Time) []time.Time {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(at) {
			return append(ts[:i:i], ts[i+1:]...)
		}
	}
	return ts
}

// recent drops the times that have left the window.
func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= loginWindow {
		i++
	}
	return ts[i:]
}

// normalizeCode removes what people type between groups (dashes, spaces) and ignores case, so
// "1234-5678", "1234 5678" and "12345678" are the same code.
func normalizeCode(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '-', ' ', '\t', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2212', '\u00a0':
			continue
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// codeMatches compares in constant time; hashing first hides the length as well.
func codeMatches(got, want string) bool {
	g := sha256.Sum256([]byte(normalizeCode(got)))
	w := sha256.Sum256([]byte(normalizeCode(want)))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// tokenMatches compares a CSRF token in constant time.
func tokenMatches(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
