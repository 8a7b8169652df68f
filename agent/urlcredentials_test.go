package agent

import (
	"net/url"
	"strings"
	"testing"
)

// Issue 13 finding 1: user:password@ in a camera's URL becomes the camera's username and
// password where the camera comes in (the config file, MQTT add_camera/set_camera, the page),
// and no URL kept anywhere carries it.
func TestCameraURLCredentialsMoveIntoTheCamera(t *testing.T) {
	tests := []struct {
		name                 string
		in                   CameraConfig
		url, user, pass, sub string
	}{
		{"rtsp with user and password",
			CameraConfig{URL: "rtsp://admin:s3cret@10.0.0.20:554/ch1"},
			"rtsp://10.0.0.20:554/ch1", "admin", "s3cret", ""},
		{"ONVIF over http",
			CameraConfig{URL: "http://admin:s3cret@10.0.0.20/onvif/device_service"},
			"http://10.0.0.20/onvif/device_service", "admin", "s3cret", ""},
		{"percent-encoded password, '@' in it",
			CameraConfig{URL: "rtsp://admin:p%40ss%3Aw@10.0.0.20/live"},
			"rtsp://10.0.0.20/live", "admin", "p@ss:w", ""},
		{"a user without a password",
			CameraConfig{URL: "rtsp://viewer@10.0.0.20/live"},
			"rtsp://10.0.0.20/live", "viewer", "", ""},
		{"username and password given on their own win",
			CameraConfig{URL: "rtsp://old:oldpw@10.0.0.20/live", Username: "admin", Password: "new"},
			"rtsp://10.0.0.20/live", "admin", "new", ""},
		{"no userinfo: the URL as written",
			CameraConfig{URL: "rtsp://10.0.0.20/Streaming%2FChannels/101", Username: "admin", Password: "pw"},
			"rtsp://10.0.0.20/Streaming%2FChannels/101", "admin", "pw", ""},
		{"the substream's own credentials are the camera's",
			CameraConfig{URL: "rtsp://admin:pw@10.0.0.20/main", SubstreamURL: "rtsp://admin:pw@10.0.0.20/sub"},
			"rtsp://10.0.0.20/main", "admin", "pw", "rtsp://10.0.0.20/sub"},
		{"the substream's credentials for a camera without any",
			CameraConfig{URL: "rtsp://10.0.0.20/main", SubstreamURL: "rtsp://admin:pw@10.0.0.20/sub"},
			"rtsp://10.0.0.20/main", "admin", "pw", "rtsp://10.0.0.20/sub"},
		{"other credentials on the substream stay for checkCamera to refuse",
			CameraConfig{URL: "rtsp://admin:pw@10.0.0.20/main", SubstreamURL: "rtsp://x:y@10.0.0.20/sub"},
			"rtsp://10.0.0.20/main", "admin", "pw", "rtsp://x:y@10.0.0.20/sub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			takeURLCredentials(&c)
			if c.URL != tt.url || c.Username != tt.user || c.Password != tt.pass || c.SubstreamURL != tt.sub {
				t.Errorf("got url %q user %q password %q substream %q, want %q %q %q %q",
					c.URL, c.Username, c.Password, c.SubstreamURL, tt.url, tt.user, tt.pass, tt.sub)
			}
			if got, want := CameraIDFromURL(c.URL), CameraIDFromURL(tt.in.URL); got != want {
				t.Errorf("the camera's id changed from %s to %s", want, got)
			}
		})
	}

	c := CameraConfig{URL: "rtsp://admin:pw@10.0.0.20/main", SubstreamURL: "rtsp://x:xyzzy@10.0.0.20/sub"}
	takeURLCredentials(&c)
	err := checkCamera("cameras[0]", c)
	if err == nil || !strings.Contains(err.Error(), "substream_url") || strings.Contains(err.Error(), "xyzzy") {
		t.Errorf("a substream with other credentials: %v, want substream_url refused without its password", err)
	}
	bad := CameraConfig{URL: "rtsp://admin:pa#ss/word@10.0.0.20/live"}
	if err := checkCamera("cameras[0]", bad); err == nil || strings.Contains(err.Error(), "ss/word") {
		t.Errorf("a URL with an unencoded password that does not parse: %v, want it refused without quoting it", err)
	}
}

// An MQTT add_camera/set_camera (and the page, through the same request) with user:password@ in
// its URL gives that password: it replaces the stored one, and counts as given when the host
// changes, so set_camera to another host with the password in the URL keeps it.
func TestCameraRequestURLCredentials(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name       string
		stored     CameraConfig
		req        CameraRequest
		user, pass string
	}{
		{"add with the password in the URL", defaultCamera(),
			CameraRequest{URL: str(" rtsp://admin:s3cret@10.0.0.20/live ")}, "admin", "s3cret"},
		{"set with a new password in the URL", CameraConfig{URL: "rtsp://10.0.0.20/live", Username: "admin",
			Password: "old"}, CameraRequest{URL: str("rtsp://admin:new@10.0.0.21/live")}, "admin", "new"},
		{"set with only a user in the URL keeps the password", CameraConfig{URL: "rtsp://10.0.0.20/live",
			Username: "admin", Password: "old"}, CameraRequest{URL: str("rtsp://viewer@10.0.0.20/live")}, "viewer", "old"},
		{"the request's own fields win", defaultCamera(),
			CameraRequest{URL: str("rtsp://a:b@10.0.0.20/live"), Username: str("admin"), Password: str("pw")},
			"admin", "pw"},
		{"a stored URL with userinfo is cleaned by any change", CameraConfig{URL: "rtsp://admin:old@10.0.0.20/live"},
			CameraRequest{Name: str("porch")}, "admin", "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.stored
			tt.req.apply(&c)
			if c.Username != tt.user || c.Password != tt.pass || hasUserinfo(c.URL) {
				t.Errorf("got url %q user %q password %q, want no userinfo, user %q password %q",
					c.URL, c.Username, c.Password, tt.user, tt.pass)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:pw@10.0.0.20/live", "rtsp://10.0.0.20/live"},
		{"rtsp://fls:1935/live/{stream_name}?password=pw&x=1", "rtsp://fls:1935/live/%7Bstream_name%7D?x=1"},
		{"mqtt://broker:1883", "mqtt://broker:1883"},
		{"", ""},
		{"rtsp://admin:pa ss@10.0.0.20:bad/live", redactedURL},
		{"http://admin:pw@[::1/x", redactedURL},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTakeURLCredentials: whatever a camera's URL holds, once the credentials are taken no
// scheme://host URL carries user information, the host and path stay, and a password that was in it
// is the camera's.
func FuzzTakeURLCredentials(f *testing.F) {
	for _, seed := range []string{"rtsp://admin:pw@10.0.0.20:554/ch1", "http://a@[fe80::1%25eth0]/onvif",
		"rtsp://u:p@h/x@y", "rtsp://h/p?q=@", "http://:@h", "rtsp:opaque@x", "//u:p@h/", "rtsp://u:p%zz@h/"} {
		f.Add(seed, "")
	}
	f.Fuzz(func(t *testing.T, raw, sub string) {
		c := CameraConfig{URL: raw, SubstreamURL: sub}
		takeURLCredentials(&c)
		before, err := url.Parse(raw)
		if err != nil {
			if c.URL != raw {
				t.Fatalf("a URL that does not parse was changed: %q to %q", raw, c.URL)
			}
			return
		}
		if before.Scheme == "" || before.Host == "" {
			return // checkCamera refuses it; only a panic would matter
		}
		after, err := url.Parse(c.URL)
		if err != nil {
			t.Fatalf("%q parsed, %q does not: %v", raw, c.URL, err)
		}
		if after.User != nil || after.Host != before.Host || after.Path != before.Path || after.RawQuery != before.RawQuery {
			t.Fatalf("%q became %q", raw, c.URL)
		}
		if p, ok := before.User.Password(); ok && c.Password != p {
			t.Fatalf("%q: the password %q is not the camera's (%q)", raw, p, c.Password)
		}
	})
}
