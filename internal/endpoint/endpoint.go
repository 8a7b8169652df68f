package endpoint

import (
	"net/netip"
	"net/url"
	"strings"
)

// defaultPort is the port a URL of scheme means when it names none, for the schemes camgate
// stores secrets with; "" for others.
func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss", "rtmps":
		return "443"
	case "mqtt":
		return "1883"
	case "mqtts":
		return "8883"
	case "rtsp":
		return "554"
	case "rtsps":
		return "322"
	case "rtmp":
		return "1935"
	}
	return ""
}

// isTLS says whether scheme's connections are TLS from the first byte.
func isTLS(scheme string) bool {
	switch scheme {
	case "https", "wss", "mqtts", "rtsps", "rtmps":
		return true
	}
	return false
}

// SecretMayStay says whether a secret given for oldURL may be sent to newURL: both name the
// same host and port (case, a root dot, IPv4-mapped forms and the scheme's default port
// aside), and newURL keeps oldURL's scheme or is TLS. So a move to another port, or from
// mqtts:// to mqtt:// on the same broker, drops the secret: it would go in cleartext, or to
// another service of the host, where it was not given. A URL that does not parse keeps nothing.
func SecretMayStay(oldURL, newURL string) bool {
	o, okO := parse(oldURL)
	n, okN := parse(newURL)
	if !okO || !okN || o.host != n.host || o.port != n.port {
		return false
	}
	return o.scheme == n.scheme || isTLS(n.scheme)
}

// SameHost says whether two URLs name one host (case, a root dot and IPv4-mapped forms
// aside), whatever their schemes and ports: the rule for the streams of one camera, which serves
// them on several ports.
func SameHost(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	return errA == nil && errB == nil && ua.Hostname() != "" && NormalHost(ua.Hostname()) == NormalHost(ub.Hostname())
}

type target struct{ scheme, host, port string }

func parse(raw string) (target, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Hostname() == "" {
		return target{}, false
	}
	t := target{scheme: strings.ToLower(u.Scheme), host: NormalHost(u.Hostname()), port: u.Port()}
	if t.port == "" {
		t.port = defaultPort(t.scheme)
	}
	if t.port == "" { // a scheme without a known default: only an explicit port compares
		return target{}, false
	}
	return t, true
}

// NormalHost is a host as compared: an IP address unmapped and without its zone, a name in lower
// case without its final dot.
func NormalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
