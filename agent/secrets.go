package agent

import (
	"net/url"
	"strings"
)

// redactedURL stands for a URL that does not parse: its text might hold a password anywhere.
const redactedURL = "(a URL that does not parse, not shown)"

// redactURL drops the userinfo so that a URL can be logged or shown.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactedURL
	}
	q := u.Query()
	if u.User == nil && !q.Has("password") {
		return raw
	}
	u.User = nil
	if q.Has("password") { // a Flussonic stream's publish password (SPEC §4)
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// cutURLCredentials takes user:password@ out of a URL, keeping the rest as written (re-encoding
// would change the text the camera's id is derived from). ok is false for a URL without
// userinfo or one that does not parse; the latter is refused later, without quoting it.
func cutURLCredentials(raw string) (clean, user, pass string, hasPass, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw, "", "", false, false
	}
	user = u.User.Username()
	pass, hasPass = u.User.Password()
	// url.Parse ends the userinfo at the authority's last '@'.
	scheme, after, found := strings.Cut(raw, "://")
	if !found || strings.ContainsAny(scheme, "/?#") {
		u.User = nil
		return u.String(), user, pass, hasPass, true
	}
	authority := after
	if end := strings.IndexAny(after, "/?#"); end >= 0 {
		authority = after[:end]
	}
	return scheme + "://" + after[strings.LastIndex(authority, "@")+1:], user, pass, hasPass, true
}

// takeURLCredentials moves user:password@ out of a camera's URL into its username and password
// (issue 13): a camera's URL is logged, shown, registered over MQTT and used as its ONVIF
// xaddr, where net/http would send the userinfo as Basic unasked. A username or password given
// on its own wins over the URL's, as on the page. A substream_url's userinfo is moved when it
// is the camera's own (or the camera has none); other credentials stay for checkCamera to
// refuse, since the relay sends the camera's credentials to its substream.
func takeURLCredentials(c *CameraConfig) {
	if clean, user, pass, hasPass, ok := cutURLCredentials(c.URL); ok {
		c.URL = clean
		if c.Username == "" {
			c.Username = user
		}
		if c.Password == "" && hasPass {
			c.Password = pass
		}
	}
	if clean, user, pass, _, ok := cutURLCredentials(c.SubstreamURL); ok {
		if c.Username == "" && c.Password == "" {
			c.Username, c.Password = user, pass
		}
		if user == c.Username && pass == c.Password {
			c.SubstreamURL = clean
		}
	}
}

// hasUserinfo says whether raw is a URL with user information.
func hasUserinfo(raw string) bool {
	_, _, _, _, ok := cutURLCredentials(raw)
	return ok
}

// withURLCredentials is r with the user:password@ of its URL moved into its username and
// password, unless r gives those itself: for a change of camera, a password in the URL is one
// the request gives.
func (r CameraRequest) withURLCredentials() CameraRequest {
	if r.URL == nil {
		return r
	}
	clean, user, pass, hasPass, ok := cutURLCredentials(strings.TrimSpace(*r.URL))
	if !ok {
		return r
	}
	r.URL = &clean
	if r.Username == nil {
		r.Username = &user
	}
	if r.Password == nil && hasPass {
		r.Password = &pass
	}
	return r
}
