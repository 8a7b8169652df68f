package agent

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/sim/onvifdev"
)

// Issue 13 "credentials go only to the host they were given for", on the relay's ONVIF path: a
// camera whose GetStreamUri names another host (127.0.0.2, where a fake device asks for Digest
// or Basic and counts what it gets) is relayed from its own host, and the other host never receives an
// Authorization header or the password. The camera's real stream listens on the same port of
// its own address, so the relay has something to pull once it keeps to the camera's host.
func TestStreamURIOnAnotherHostGetsNoCredentials(t *testing.T) {
	const secret = "stream-uri-secret-13"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	elsewhere := newCredTrap(t, "127.0.0.2", secret)
	elsewhere.digest = true
	_, port, _ := net.SplitHostPort(elsewhere.addr())
	stream, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:" + port, Username: "admin", Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = stream.Run(ctx) }() // ends with ctx
	device, err := onvifdev.New(onvifdev.Config{Addr: "127.0.0.1:0", Manufacturer: "Hikvision", Model: "DS-2CD2043G2-I",
		RTSPURL: "rtsp://" + elsewhere.addr() + "/stream1", Auth: onvifdev.AuthWSSecurity, Username: "admin",
		Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = device.Run(ctx) }()
	flussonic, publish := startMediaServer(ctx, t)
	d := startDaemon(t, fmt.Sprintf(`gateway_id: gws
data_dir: DATA_DIR
web: {listen: ""}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
flussonic: {publish: '%s'}
`, publish))
	// Added once the agent is up (as from the page): a camera of the config file resolving at
	// start trips a race of its own (a.motion is set in Run after the resolvers start).
	url, user, pass, enabled := device.XAddr(), "admin", secret, true
	if _, err := d.a.AddCamera(context.Background(), CameraRequest{CameraID: "porch", URL: &url, Username: &user,
		Password: &pass, Enabled: &enabled}); err != nil {
		t.Fatal(err)
	}

	relayed := func() bool {
		st, _ := flussonic.Stream("gws-porch")
		return st.VideoFrames > 25
	}
	waitFor(t, 60*time.Second, "the camera relayed, or the other host asked twice", func() bool {
		req, _, _, _ := elsewhere.seen()
		return relayed() || req >= 2
	})
	req, auths, tokens, clear := elsewhere.seen()
	if auths != 0 || tokens != 0 || clear != 0 {
		t.Fatalf("the host GetStreamUri named got %d requests: %d Authorization headers, %d WS-Security tokens, "+
			"%d with the password", req, auths, tokens, clear)
	}
	if !relayed() {
		t.Fatalf("not relayed from the camera's own host; the other host got %d requests", req)
	}
	c, err := d.a.cameraStatus("porch")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("other host: %d requests, no credentials; relaying from its own host, last_error %q", req, c.Relay.LastError)
}

func TestStreamCredentialsStayWithTheCamerasHost(t *testing.T) {
	cam := CameraConfig{URL: "http://192.168.1.20/onvif/device_service", Username: "admin", Password: "pw"}
	tests := []struct {
		source string
		want   bool
	}{
		{"rtsp://192.168.1.20:554/Streaming/Channels/101", true},
		{"rtsp://192.168.1.20/live", true},
		{"rtsp://[::ffff:192.168.1.20]:554/live", true},
		{"rtsp://192.168.1.21:554/live", false},
		{"rtsp://camera.example/live", false},
		{"rtsp:192.168.1.21/live", false}, // no host to compare: nothing
		{"", false},
	}
	for _, tt := range tests {
		user, pass := streamCredentials(cam, tt.source)
		if got := user == "admin" && pass == "pw"; got != tt.want {
			t.Errorf("streamCredentials(%q) = %q, %q; want credentials %v", tt.source, user, pass, tt.want)
		}
		if !tt.want && (user != "" || pass != "") {
			t.Errorf("streamCredentials(%q) = %q, %q; want none", tt.source, user, pass)
		}
	}
	byName := CameraConfig{URL: "rtsp://Cam.Lan./live", Username: "admin", Password: "pw"}
	if u, _ := streamCredentials(byName, "rtsp://cam.lan:8554/sub"); u != "admin" {
		t.Error("a host name differing only in case and the root dot is the same host")
	}

	const onvifURL = "http://192.168.1.20/onvif/device_service"
	refused := "camera: DESCRIBE: bad status code: 401 (Unauthorized)"
	got := withheldNote("admin", onvifURL, "rtsp://192.168.1.21/live", refused)
	if !strings.Contains(got, "192.168.1.21") || !strings.Contains(got, "no credentials") ||
		!strings.HasPrefix(got, refused) {
		t.Errorf("a 401 from a stream on another host: last_error %q, want it to say why no credentials went there", got)
	}
	for _, tt := range []struct{ stream, lastError string }{
		{"rtsp://192.168.1.20/live", refused},                      // the camera's own host: a wrong password
		{"rtsp://192.168.1.21/live", "camera: connection refused"}, // not an authentication problem
		{"", refused}, // not a resolved camera
	} {
		if got := withheldNote("admin", onvifURL, tt.stream, tt.lastError); got != tt.lastError {
			t.Errorf("withheldNote(%q, %q) = %q, want it unchanged", tt.stream, tt.lastError, got)
		}
	}
}
