package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Issue 13 "errors don't report a remote port's state": a camera added from the page or MQTT at a
// closed port or at one that hangs up, as a stream (the relay), an ONVIF device (the resolver)
// or a bare address (the path probe), shows the same last_error for all, naming no network
// error. A camera in the config file, named by the gateway's owner, keeps the real reason.
func TestLastErrorOfAnAddedCameraHidesThePortsState(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, publish := startMediaServer(ctx, t)
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, fmt.Sprintf(`gateway_id: gwe
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
flussonic: {publish: '%s'}
cameras:
  - {id: configured, url: 'rtsp://%s/stream'}
`, publish, closed))

	urls := map[string]string{}
	for port, addr := range map[string]string{"closed": closed, "hangup": hangupPort(t)} {
		for kind, u := range map[string]string{"stream": "rtsp://" + addr + "/stream",
			"onvif": "http://" + addr + "/onvif/device_service", "address": "rtsp://" + addr} {
			urls[port+"-"+kind] = u
		}
	}
	for id, u := range urls {
		user, pass, enabled := "admin", "pw", true
		if _, err := d.a.AddCamera(context.Background(), CameraRequest{CameraID: id, URL: &u, Username: &user,
			Password: &pass, Enabled: &enabled}); err != nil {
			t.Fatalf("adding %s: %v", u, err)
		}
	}
	lastErrors := func() map[string]string {
		out := map[string]string{}
		for _, c := range d.a.Cameras() {
			out[c.ID] = c.Relay.LastError
			if out[c.ID] == "" {
				out[c.ID] = c.Problem
			}
		}
		return out
	}
	var got map[string]string
	defer func() {
		if t.Failed() {
			t.Logf("last errors: %q", got)
		}
	}()
	waitFor(t, 30*time.Second, "every camera to report its error", func() bool {
		got = lastErrors()
		for id := range urls {
			if !strings.Contains(got[id], "no camera answered") {
				return false
			}
		}
		return strings.Contains(got["configured"], "refused")
	})
	for id := range urls {
		for _, word := range []string{"refused", "reset", "EOF", "timeout", "dial"} {
			if strings.Contains(got[id], word) {
				t.Errorf("%s (%s): last_error %q names the network (%q)", id, urls[id], got[id], word)
			}
		}
	}
	for _, kind := range []string{"stream", "onvif", "address"} {
		if got["closed-"+kind] != got["hangup-"+kind] {
			t.Errorf("%s: a closed port says %q, one that hangs up %q: want the same", kind, got["closed-"+kind],
				got["hangup-"+kind])
		}
	}
	t.Logf("last errors: %q", got)
}
