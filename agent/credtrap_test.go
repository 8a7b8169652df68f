package agent

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// credTrap is a fake device on a second loopback address (127.0.0.2 is "another host" on
// Linux, where all of 127/8 is on lo) that speaks just enough RTSP or HTTP to be asked for
// credentials, and counts what it is given: every request, every Authorization header, every
// WS-Security UsernameToken, and every request that carries the secret in cleartext (raw or in
// a Basic header). Its answer is a 401 asking for Basic, the challenge that would get the
// password out in cleartext if anything were willing to send it; redirect, when set, answers
// each request with a redirect there instead (the lure of acceptance 2).
type credTrap struct {
	ln       net.Listener
	secret   string
	redirect string
	// digest makes the 401 ask for Digest as well, the challenge a well-behaved client answers:
	// any Authorization header it then gets is a credential sent to this host.
	digest bool

	mu                                 sync.Mutex
	requests, auths, tokens, cleartext int
}

func newCredTrap(t testing.TB, host, secret string) *credTrap {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &credTrap{ln: ln, secret: secret}
	t.Cleanup(func() { ln.Close() })
	go tr.serve()
	return tr
}

func (tr *credTrap) addr() string { return tr.ln.Addr().String() }

func (tr *credTrap) serve() {
	for {
		c, err := tr.ln.Accept()
		if err != nil {
			return
		}
		go tr.conn(c)
	}
}

func (tr *credTrap) conn(c net.Conn) {
	defer c.Close()
	r := textproto.NewReader(bufio.NewReader(io.LimitReader(c, 1<<20)))
	for {
		first, err := r.ReadLine()
		if err != nil {
			return
		}
		hdr, err := r.ReadMIMEHeader()
		if err != nil && len(hdr) == 0 {
			return
		}
		body := make([]byte, 0)
		if n, _ := strconv.Atoi(hdr.Get("Content-Length")); n > 0 && n < 1<<20 {
			body = make([]byte, n)
			if _, err := io.ReadFull(r.R, body); err != nil {
				return
			}
		}
		tr.count(first, hdr, body)
		if _, err := io.WriteString(c, tr.answer(first, hdr)); err != nil {
			return
		}
	}
}

func (tr *credTrap) count(first string, hdr textproto.MIMEHeader, body []byte) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.requests++
	raw := first + fmt.Sprint(hdr) + string(body)
	auth := hdr.Get("Authorization")
	if auth != "" {
		tr.auths++
	}
	if bytes.Contains(body, []byte("UsernameToken")) {
		tr.tokens++
	}
	if basic, ok := strings.CutPrefix(auth, "Basic "); ok {
		if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(basic)); err == nil {
			raw += string(dec)
		}
	}
	if tr.secret != "" && strings.Contains(raw, tr.secret) {
		tr.cleartext++
	}
}

func (tr *credTrap) answer(first string, hdr textproto.MIMEHeader) string {
	proto := "HTTP/1.1"
	if strings.HasSuffix(first, "RTSP/1.0") {
		proto = "RTSP/1.0"
	}
	var b strings.Builder
	if tr.redirect != "" {
		fmt.Fprintf(&b, "%s 302 Found\r\nLocation: %s\r\n", proto, tr.redirect)
		if proto == "HTTP/1.1" {
			b.Reset()
			fmt.Fprintf(&b, "%s 307 Temporary Redirect\r\nLocation: %s\r\n", proto, tr.redirect)
		}
	} else {
		fmt.Fprintf(&b, "%s 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"trap\"\r\n", proto)
		if tr.digest {
			fmt.Fprintf(&b, "WWW-Authenticate: Digest realm=\"trap\", nonce=\"0123456789abcdef\"\r\n")
		}
	}
	if cseq := hdr.Get("CSeq"); cseq != "" {
		fmt.Fprintf(&b, "CSeq: %s\r\n", cseq)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// seen returns the counts so far.
func (tr *credTrap) seen() (requests, auths, tokens, cleartext int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.requests, tr.auths, tr.tokens, tr.cleartext
}

// rawTrap is a fake server on another loopback address for a binary protocol (an MQTT broker):
// it counts connections, and connections whose first bytes (the CONNECT) carry the secret.
type rawTrap struct {
	ln     net.Listener
	secret []byte

	mu             sync.Mutex
	conns, secrets int
}

func newRawTrap(t testing.TB, host, secret string) *rawTrap {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &rawTrap{ln: ln, secret: []byte(secret)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go tr.conn(c)
		}
	}()
	return tr
}

func (tr *rawTrap) addr() string { return tr.ln.Addr().String() }

func (tr *rawTrap) conn(c net.Conn) {
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return
	}
	b, _ := io.ReadAll(io.LimitReader(c, 64<<10)) // the client waits for a CONNACK that never comes
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(b) > 0 {
		tr.conns++
	}
	if bytes.Contains(b, tr.secret) {
		tr.secrets++
	}
}

func (tr *rawTrap) seen() (conns, secrets int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.conns, tr.secrets
}

// hangupPort is a loopback port that takes every connection and closes it at once, as a LAN
// service that is not a camera might; it returns host:port.
func hangupPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}
