package agent

import "net/url"

// redactURL drops the userinfo so that a URL can be logged or shown.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
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
