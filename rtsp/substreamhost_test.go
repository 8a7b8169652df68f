package rtsp

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// Issue 13 finding 2: the camera's credentials go to its substream only when the substream is
// on the main stream's host. A substream on another host (127.0.0.2, a device that asks every
// request for Digest) is asked for without them; one on the camera's own host gets them, which
// shows the device would have seen credentials had they been sent.
func TestSubstreamOnAnotherHostGetsNoCredentials(t *testing.T) {
	const user, pass = "admin", "substream-secret"
	challenge := func(*base.Request) *base.Response { return digestChallenge() }
	main := startScriptedCamera(t, "127.0.0.1", challenge)
	for _, tc := range []struct {
		name, host string
		wantAuth   bool
	}{
		{"another host", "127.0.0.2", false},
		{"the camera's host", "127.0.0.1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := startScriptedCamera(t, tc.host, challenge)
			r := NewRelay(RelayConfig{Source: main.url("/main"), Substream: sub.url("/sub"), Username: user,
				Password: pass, Transport: "tcp", Publish: "rtsp://127.0.0.1:1/unused", Timeout: 2 * time.Second,
				Quality: NewQualityGovernor(), Logger: quietLogger()})
			r.wantQuality(true) // the relay starts on its substream, as when the uplink is short
			stop := runRelay(t, r)
			defer stop()
			waitFor(t, 20*time.Second, "the substream asked twice", func() bool {
				_, requests, withAuth := sub.seen()
				return requests >= 2 || withAuth > 0
			})
			stop()
			conns, requests, withAuth := sub.seen()
			if got := withAuth > 0; got != tc.wantAuth {
				t.Errorf("the substream on %s got %d requests, %d with credentials; want credentials %v",
					tc.host, requests, withAuth, tc.wantAuth)
			}
			if !tc.wantAuth && answeredChallenge(sub.received(), user) {
				t.Errorf("the substream's host got a Digest answer for %s", user)
			}
			t.Logf("substream on %s: %d connections, %d requests, %d with credentials", tc.host, conns, requests, withAuth)
		})
	}
}
