package onvif

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The OASIS WS-Security 1.0 names a UsernameToken uses.
const (
	wsseNS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	wsuNS  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"

	wssePasswordDigest = "http://docs.oasis-open.org/wss/2004/01/" +
		"oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
	wsseBase64Binary = "http://docs.oasis-open.org/wss/2004/01/" +
		"oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

// wsseHeader builds a WS-Security UsernameToken with PasswordDigest. created is the device's clock
// (our clock corrected by the measured offset): devices reject tokens outside a few seconds of
// their own time, and their clocks are often days off.
func wsseHeader(username, password string, created time.Time) string {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	ts := created.UTC().Format("2006-01-02T15:04:05.000Z")
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(ts))
	h.Write([]byte(password))
	digest := base64.StdEncoding.EncodeToString(h.Sum(nil))
	var b strings.Builder
	b.WriteString(`<wsse:Security s:mustUnderstand="1" xmlns:wsse="` + wsseNS + `" xmlns:wsu="` + wsuNS + `">`)
	b.WriteString(`<wsse:UsernameToken><wsse:Username>`)
	b.WriteString(xmlEscape(username))
	b.WriteString(`</wsse:Username><wsse:Password Type="` + wssePasswordDigest + `">`)
	b.WriteString(digest)
	b.WriteString(`</wsse:Password><wsse:Nonce EncodingType="` + wsseBase64Binary + `">`)
	b.WriteString(base64.StdEncoding.EncodeToString(nonce))
	b.WriteString(`</wsse:Nonce><wsu:Created>`)
	b.WriteString(ts)
	b.WriteString(`</wsu:Created></wsse:UsernameToken></wsse:Security>`)
	return b.String()
}

// WSSEDigest computes the UsernameToken PasswordDigest, Base64(SHA1(nonce + created + password)),
// for servers (the simulated device) that verify tokens.
func WSSEDigest(nonce []byte, created, password string) string {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// digestChallenge is a parsed WWW-Authenticate: Digest challenge, reused for later requests so
// that each call does not cost a 401 round trip.
type digestChallenge struct {
	mu        sync.Mutex
	realm     string
	nonce     string
	opaque    string
	algorithm string
	qop       string
	nc        int
}

// parseAuthParams parses `Digest realm="x", nonce="y", qop="auth"` into lower-case keys.
func parseAuthParams(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ,\t")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			s = s[1:]
			var b strings.Builder
			for len(s) > 0 && s[0] != '"' {
				if s[0] == '\\' && len(s) > 1 {
					s = s[1:]
				}
				b.WriteByte(s[0])
				s = s[1:]
			}
			val = b.String()
			if len(s) > 0 {
				s = s[1:]
			}
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		out[key] = val
	}
	return out
}

// challenges splits WWW-Authenticate values into scheme -> params. A device may offer Digest and
// Basic in separate headers.
func challenges(values []string) map[string]string {
	out := map[string]string{}
	for _, v := range values {
		v = strings.TrimSpace(v)
		sp := strings.IndexByte(v, ' ')
		if sp < 0 {
			out[strings.ToLower(v)] = ""
			continue
		}
		out[strings.ToLower(v[:sp])] = v[sp+1:]
	}
	return out
}

func newDigestChallenge(params string) *digestChallenge {
	p := parseAuthParams(params)
	qop := ""
	for _, q := range strings.Split(p["qop"], ",") {
		if strings.TrimSpace(q) == "auth" {
			qop = "auth"
		}
	}
	return &digestChallenge{realm: p["realm"], nonce: p["nonce"], opaque: p["opaque"],
		algorithm: p["algorithm"], qop: qop}
}

// authorization returns the Authorization header value for one request (RFC 7616, qop=auth or
// the RFC 2069 form without qop, MD5 or SHA-256).
func (d *digestChallenge) authorization(method, uri, username, password string) string {
	d.mu.Lock()
	d.nc++
	nc := fmt.Sprintf("%08x", d.nc)
	d.mu.Unlock()
	newHash := md5.New
	if strings.EqualFold(d.algorithm, "SHA-256") {
		newHash = sha256.New
	}
	hx := func(s string) string {
		h := newHash()
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil))
	}
	cb := make([]byte, 8)
	_, _ = rand.Read(cb)
	cnonce := hex.EncodeToString(cb)
	ha1 := hx(username + ":" + d.realm + ":" + password)
	ha2 := hx(method + ":" + uri)
	var resp string
	if d.qop == "auth" {
		resp = hx(ha1 + ":" + d.nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
	} else {
		resp = hx(ha1 + ":" + d.nonce + ":" + ha2)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username=%q, realm=%q, nonce=%q, uri=%q, response=%q`,
		username, d.realm, d.nonce, uri, resp)
	if d.algorithm != "" {
		fmt.Fprintf(&b, `, algorithm=%s`, d.algorithm)
	}
	if d.opaque != "" {
		fmt.Fprintf(&b, `, opaque=%q`, d.opaque)
	}
	if d.qop == "auth" {
		fmt.Fprintf(&b, `, qop=auth, nc=%s, cnonce=%q`, nc, cnonce)
	}
	return b.String()
}

// DigestResponse computes the expected response of an RFC 2617 MD5 digest with qop=auth (or
// without qop when qop is ""), for servers that verify it.
func DigestResponse(username, realm, password, method, uri, nonce, nc, cnonce, qop string) string {
	hx := func(s string) string {
		h := md5.Sum([]byte(s))
		return hex.EncodeToString(h[:])
	}
	ha1 := hx(username + ":" + realm + ":" + password)
	ha2 := hx(method + ":" + uri)
	if qop == "" {
		return hx(ha1 + ":" + nonce + ":" + ha2)
	}
	return hx(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)
}

// ParseAuthParams exposes the WWW-Authenticate / Authorization parameter parser to servers.
func ParseAuthParams(s string) map[string]string { return parseAuthParams(s) }

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
