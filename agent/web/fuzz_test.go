package web

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/camgate/camgate/internal/endpoint"
)

// parseWiFi reads a WIFI: payload back as ZXing does: fields end at an unescaped ';', and a
// backslash takes the next character literally.
func parseWiFi(p string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(p, "WIFI:")
	if !ok || !strings.HasSuffix(rest, ";") {
		return nil, false
	}
	fields := map[string]string{}
	var cur strings.Builder
	esc := false
	for _, r := range rest {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == ';':
			if cur.Len() > 0 {
				k, v, ok := strings.Cut(cur.String(), ":")
				if !ok {
					return nil, false
				}
				fields[k] = v
			}
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return fields, !esc && cur.Len() == 0
}

// FuzzWiFiPayload: whatever the SSID and password, a reader that follows the escaping gets
// back exactly those.
func FuzzWiFiPayload(f *testing.F) {
	f.Add("home", "correct horse", false)
	f.Add(`a;b,c:d"e\f`, `p;,:"\`, true)
	f.Add(`\`, `;;`, false)
	f.Fuzz(func(t *testing.T, ssid, password string, hidden bool) {
		n := WiFiNetwork{SSID: ssid, Password: password, Security: "WPA", Hidden: hidden}
		if n.Validate() != nil {
			return
		}
		got, ok := parseWiFi(n.Payload())
		if !ok {
			t.Fatalf("payload %q does not parse", n.Payload())
		}
		if got["S"] != ssid || got["P"] != password || got["T"] != "WPA" || (got["H"] == "true") != hidden {
			t.Fatalf("payload %q read back as %q", n.Payload(), got)
		}
	})
}

// FuzzSplitCredentials: an accepted URL never keeps user information, and the credentials
// taken out of it are not in it any more.
func FuzzSplitCredentials(f *testing.F) {
	f.Add("rtsp://admin:secret@10.0.0.20:554/Streaming/Channels/101")
	f.Add("rtsp://admin:pa ss@w/rd@10.0.0.20/live?x=1#y")
	f.Add("rtsp://10.0.0.20/live")
	f.Add("rtsps://%61dmin:%zz@host/")
	f.Add("onvif://[fe80::1%25eth0]:8080")
	f.Fuzz(func(t *testing.T, raw string) {
		clean, user, pass, err := splitCredentials("url", raw, "rtsp", "rtsps", "http", "https", "onvif")
		if err != nil {
			return
		}
		u, perr := url.Parse(clean)
		if perr != nil {
			t.Fatalf("clean URL %q does not parse: %v", clean, perr)
		}
		if u.User != nil {
			t.Fatalf("clean URL %q keeps user information", clean)
		}
		// The password must not survive in the address part, unless that part had it anyway
		// (re-encoding may only add '%' escapes).
		_, addr, _ := strings.Cut(clean, "://")
		hostPart := raw[strings.LastIndex(raw, "@")+1:]
		for _, secret := range []string{user, pass} {
			if len(secret) >= 4 && !strings.Contains(secret, "%") && strings.Contains(addr, secret) &&
				!strings.Contains(hostPart, secret) {
				t.Fatalf("credential %q left in %q", secret, clean)
			}
		}
	})
}

// FuzzRequestBodies: any body either is refused or yields a request within the bounds the
// backend is promised.
func FuzzRequestBodies(f *testing.F) {
	f.Add([]byte(`{"url":"rtsp://admin:x@10.0.0.2/","name":"Porch","password":"p","audio":false}`))
	f.Add([]byte(`{"camera_id":"cam-1","username":"admin"}`))
	f.Add([]byte(`{"name":"  ","enabled":true,"password":""}`))
	f.Add(
		[]byte(
			`{"mqtt":{"url":"mqtts://u:p@sc:8883","topic_prefix":"a/#"},` +
				`"flussonic":{"publish":"rtmp://h/app","events":[{"url":"http://h/e","naming":"v24"}]}}`,
		),
	)
	f.Add([]byte(`{"url":"rtsp://x/"} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var add AddCamera
		if decodeStrict(bytes.NewReader(body), &add) == nil && validateAdd(&add) == nil {
			if len(add.Name) > maxNameLen || len(add.Password) > maxPasswordLen || !utf8.ValidString(add.Name) {
				t.Fatalf("accepted out of bounds: %+v", add)
			}
			if add.URL != "" {
				if u, err := url.Parse(add.URL); err != nil || u.User != nil {
					t.Fatalf("accepted URL %q", add.URL)
				}
			}
		}
		var p CameraPatch
		if decodeStrict(bytes.NewReader(body), &p) == nil && validatePatch(&p) == nil {
			if p.Name != nil && (*p.Name == "" || len(*p.Name) > maxNameLen) {
				t.Fatalf("accepted name %q", *p.Name)
			}
		}
		var c ConnectionUpdate
		if decodeStrict(bytes.NewReader(body), &c) == nil {
			if _, err := validateConnection(&c); err == nil && c.Flussonic != nil && c.Flussonic.Events != nil {
				for _, e := range *c.Flussonic.Events {
					if e.Format != "event_sink" && e.Format != "episodes" {
						t.Fatalf("accepted format %q", e.Format)
					}
				}
			}
		}
	})
}

// FuzzSetupCode: normalising is idempotent, and a code always matches itself written with
// dashes between its characters.
func FuzzSetupCode(f *testing.F) {
	f.Add("1234-5678")
	f.Add(" 12 34\t5678 ")
	f.Add("ǅ")
	f.Fuzz(func(t *testing.T, code string) {
		n := normalizeCode(code)
		if normalizeCode(n) != n {
			t.Fatalf("normalizeCode not idempotent on %q", code)
		}
		if !codeMatches(code, code) {
			t.Fatalf("%q does not match itself", code)
		}
	})
}

// FuzzPublishPassword: a publish URL shown without its password has no password parameter left,
// and the stored one put back on it restores every parameter the URL had.
func FuzzPublishPassword(f *testing.F) {
	f.Add("rtsp://stream.example.com:554/{stream_name}?password=SECRET")
	f.Add("rtmp://h/static/{stream_name}?a=1&password=p%26w&b=2")
	f.Add("rtsp://h/live?Password=x&password")
	f.Add("rtsp://h/?%70assword=x")
	f.Fuzz(func(t *testing.T, raw string) {
		clean, param, found := cutPublishPassword(raw)
		if !found {
			if clean != raw {
				t.Fatalf("no password in %q, yet it became %q", raw, clean)
			}
			return
		}
		if _, again, still := cutPublishPassword(clean); still {
			t.Fatalf("%q still has %q after the password %q was cut", clean, again, param)
		}
		if clean == "" {
			return // nothing but a query: there is no URL to put it back on
		}
		upd := FlussonicUpdate{Publish: clean}
		if !endpoint.SecretMayStay(raw, clean) { // no host and port to keep it with (issue 13)
			if got := keepPublishPassword(&upd, raw); got != "" || upd.Publish != clean {
				t.Fatalf("%q names no endpoint, yet its password %q was kept: %q", raw, got, upd.Publish)
			}
			return
		}
		if got := keepPublishPassword(&upd, raw); got != queryValue(param) {
			t.Fatalf("keepPublishPassword returned %q, want %q", got, queryValue(param))
		}
		params := func(s string) []string {
			_, q, _ := strings.Cut(s, "?")
			ps := strings.Split(q, "&")
			slices.Sort(ps)
			return ps
		}
		if !slices.Equal(params(upd.Publish), paramsWithout(params(raw), param)) {
			t.Fatalf("restored %q from %q, want the parameters of %q", upd.Publish, clean, raw)
		}
	})
}

// FuzzWithPublishPassword: the page's publish password put on any publish URL is the one
// password parameter Flussonic then reads back, and every other parameter stays as written.
func FuzzWithPublishPassword(f *testing.F) {
	f.Add("rtsp://h:554/{stream_name}", "p&w d")
	f.Add("rtmp://h/static/{stream_name}?password=old&x=1", "new=")
	f.Add("rtsp://h/a?b?c&password", "%zz")
	f.Fuzz(func(t *testing.T, raw, password string) {
		got := withPublishPassword(raw, password)
		clean, param, found := cutPublishPassword(got)
		if !found || queryValue(param) != password {
			t.Fatalf("withPublishPassword(%q, %q) = %q: password read back as %q (found %v)", raw, password, got,
				queryValue(param), found)
		}
		if _, again, still := cutPublishPassword(clean); still {
			t.Fatalf("%q carries a second password %q", got, again)
		}
		if want, _, _ := cutPublishPassword(raw); clean != want {
			t.Fatalf("withPublishPassword(%q) left %q around the password, want %q", raw, clean, want)
		}
	})
}

// paramsWithout drops every extra copy of param but one: cutPublishPassword keeps the last.
func paramsWithout(ps []string, param string) []string {
	var out []string
	kept := false
	for _, p := range ps {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil && name == publishPasswordParam {
			if p != param || kept {
				continue
			}
			kept = true
		}
		out = append(out, p)
	}
	return out
}
