package agent

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"

	"github.com/camgate/camgate/internal/netnstest"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/internal/testtool"
)

// Issue 13 acceptance 1: in a network namespace of the test's own, a camera found by
// WS-Discovery and one found by mDNS are added with their passwords and relayed. Then a device
// on another address replays the first one's endpoint reference in a Hello and in its answers
// to every probe (ProbeMatch), and another takes over the second one's mDNS name. Neither
// impostor gets a single request (so 0 credentials), both cameras are shown as moved_to the
// impostor's address, and frames keep arriving at Flussonic from the real cameras.
func TestForgedAnnouncementsNeverRepointACamera(t *testing.T) {
	const real, fake, secret = "10.77.13.10", "10.77.13.11", "porch-secret-13"
	netnstest.Run(t, []string{real, fake}, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream, err := sim.NewCamera(sim.CameraConfig{Addr: real + ":0", Username: "admin", Password: secret})
		if err != nil {
			t.Fatal(err)
		}
		testtool.Go(ctx, t, "stream", stream.Run)
		const ref = "urn:uuid:porch-camera-13"
		device, err := onvifdev.New(onvifdev.Config{Addr: real + ":0", Manufacturer: "Hikvision", Model: "DS-2CD2043G2-I",
			Serial: "SN13", MAC: "02:77:13:00:00:10", Name: "Porch", RTSPURL: stream.URL(), Auth: onvifdev.AuthWSSecurity,
			Username: "admin", Password: secret, DiscoveryGroup: "239.255.255.250:3702", DiscoveryIP: real, EndpointRef: ref})
		if err != nil {
			t.Fatal(err)
		}
		testtool.Go(ctx, t, "device", device.Run)
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		rtspPort := stream.URL()[strings.LastIndex(stream.URL(), ":")+1 : strings.LastIndex(stream.URL(), "/")]
		var port int
		if _, err := fmt.Sscan(rtspPort, &port); err != nil {
			t.Fatal(err)
		}
		garage, err := zeroconf.RegisterProxy("Garage", "_rtsp._tcp", "local.", port, "garage-cam", []string{real}, nil,
			[]net.Interface{*lo})
		if err != nil {
			t.Fatalf("announcing over mDNS: %v", err)
		}
		flussonic, publish := startMediaServer(ctx, t)
		d := startDaemon(t, fmt.Sprintf(`gateway_id: gwf
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: true, mdns: true, interval: 10s, interfaces: [lo]}
flussonic: {publish: '%s'}
`, publish))
		p := loginPage(t, d)

		// Both cameras are found, added with the password, and relayed.
		ids := map[string]string{} // "onvif" | "mdns" -> camera_id
		waitFor(t, 40*time.Second, "both cameras discovered", func() bool {
			for _, c := range d.a.Cameras() {
				switch {
				case c.Origin != originDiscovered:
				case strings.HasPrefix(c.URL, "http://"+real):
					ids["onvif"] = c.ID
				case strings.HasPrefix(c.URL, "rtsp://"+real):
					ids["mdns"] = c.ID
				}
			}
			return len(ids) == 2
		})
		for _, id := range ids {
			if _, err := p.do("POST", "/api/cameras", map[string]any{"camera_id": id, "username": "admin",
				"password": secret}, nil); err != nil {
				t.Fatal(err)
			}
		}
		frames := func(kind string) int {
			st, _ := flussonic.Stream("gwf-" + ids[kind])
			return int(st.VideoFrames)
		}
		waitFor(t, 60*time.Second, "both cameras relayed", func() bool { return frames("onvif") > 25 && frames("mdns") > 25 })
		urls := map[string]string{}
		for kind, id := range ids {
			c, _ := d.a.cameraStatus(id)
			urls[kind] = c.URL
		}

		// The impostors: a forged Hello (and ProbeMatches) with the ONVIF camera's endpoint
		// reference, and the mDNS camera's name announced from the fake address.
		impostor, err := onvifdev.New(onvifdev.Config{Addr: fake + ":0", Manufacturer: "Hikvision", Name: "Porch",
			RTSPURL: "rtsp://" + fake + ":554/stolen", DiscoveryGroup: "239.255.255.250:3702", DiscoveryIP: fake,
			EndpointRef: ref})
		if err != nil {
			t.Fatal(err)
		}
		testtool.Go(ctx, t, "impostor", impostor.Run) // says Hello, then answers every probe
		trap := newRawTrap(t, fake, secret)
		_, trapPort, _ := net.SplitHostPort(trap.addr())
		if _, err := fmt.Sscan(trapPort, &port); err != nil {
			t.Fatal(err)
		}
		garage.Shutdown() // the camera's announcer goes quiet, and another device takes its name
		forged, err := zeroconf.RegisterProxy("Garage", "_rtsp._tcp", "local.", port, "garage-fake", []string{fake}, nil,
			[]net.Interface{*lo})
		if err != nil {
			t.Fatalf("forging the mDNS answer: %v", err)
		}
		defer forged.Shutdown()
		if _, err := p.do("POST", "/api/discover", map[string]any{}, nil); err != nil { // a probe now: a ProbeMatch
			t.Fatal(err)
		}

		type pageCam struct {
			CameraID string `json:"camera_id"`
			URL      string `json:"url"`
			MovedTo  string `json:"moved_to"`
		}
		moved := func() map[string]pageCam {
			var list struct {
				Cameras []pageCam `json:"cameras"`
			}
			if _, err := p.do("GET", "/api/cameras", nil, &list); err != nil {
				t.Fatal(err)
			}
			out := map[string]pageCam{}
			for kind, id := range ids {
				for _, c := range list.Cameras {
					if c.CameraID == id {
						out[kind] = c
					}
				}
			}
			return out
		}
		waitFor(t, 40*time.Second, "both cameras shown as moved to the impostor's address", func() bool {
			m := moved()
			return strings.Contains(m["onvif"].MovedTo, fake) && strings.Contains(m["mdns"].MovedTo, fake)
		})
		before := map[string]int{"onvif": frames("onvif"), "mdns": frames("mdns")}
		// Through several more probes and browses, the cameras keep relaying from their address.
		waitFor(t, 30*time.Second, "50 more frames from each real camera", func() bool {
			return frames("onvif") > before["onvif"]+50 && frames("mdns") > before["mdns"]+50
		})
		for kind, c := range moved() {
			if c.URL != urls[kind] {
				t.Errorf("%s camera re-pointed: url %q, was %q", kind, c.URL, urls[kind])
			}
		}
		conns, secrets := trap.seen()
		if n := impostor.Requests(); n != 0 || conns != 0 || secrets != 0 {
			t.Fatalf("impostors were contacted: ONVIF impostor %d requests, mDNS impostor %d connections (%d with the password)",
				n, conns, secrets)
		}
		t.Logf("moved_to shown, 0 requests at both impostors; frames onvif %d mdns %d", frames("onvif"), frames("mdns"))
	})
}
