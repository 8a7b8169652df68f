package redirect

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrOtherHost is matched (errors.Is) by the error of a redirect that was refused because it
// leaves the scheme, host or port the first request went to.
var ErrOtherHost = errors.New("redirect to another host refused: credentials stay with the host they were given for")

// maxRedirects is net/http's own limit, kept for redirects that stay on the host.
const maxRedirects = 10

// SameHost is an http.Client CheckRedirect that follows a redirect only when it stays on the
// scheme, host and port of the first request.
func SameHost(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	first := via[0].URL
	if !sameOrigin(first.Scheme, first.Host, req.URL.Scheme, req.URL.Host) {
		return fmt.Errorf("%w (%s://%s to %s://%s)", ErrOtherHost, first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// Client returns a shallow copy of c (nil: a zero http.Client) whose redirects obey SameHost
// before any CheckRedirect c already had.
func Client(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	prev := out.CheckRedirect
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := SameHost(req, via); err != nil {
			return err
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &out
}

func sameOrigin(scheme1, host1, scheme2, host2 string) bool {
	return strings.EqualFold(scheme1, scheme2) &&
		strings.EqualFold(withPort(scheme1, host1), withPort(scheme2, host2))
}

// withPort spells out the scheme's default port, so http://cam and http://cam:80 are one host.
func withPort(scheme, host string) string {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") || !strings.Contains(host, ":") {
		switch strings.ToLower(scheme) {
		case "http":
			return host + ":80"
		case "https":
			return host + ":443"
		}
	}
	return host
}
