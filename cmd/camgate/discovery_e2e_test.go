package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grandcat/zeroconf"

	"github.com/camgate/camgate/internal/netnstest"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/internal/testtool"
)

var discoveryModels = []struct{ vendor, model string }{
	{"AXIS", "M2025-LE"}, {"Dahua", "IPC-HDW2431T-AS"}, {"Hikvision", "DS-2CD2043G2-I"}, {"Reolink", "RLC-510A"},
	{"Uniview", "IPC2122LB"},
}

// Issue 5 acceptance 2 and 4: inside a network namespace made by the test, 20 simulated cameras on
// their own addresses are all found by `camgate discover --json` with vendor, model and stream
// URIs; the daemon's registry drops one that says Bye and takes one that says Hello without
// waiting for a probe; a discovered camera given credentials by MQTT is relayed end to end.
func TestDiscoveryFindsCamerasAndFollowsHelloAndBye(t *testing.T) {
	var addrs []string
	for i := 10; i <= 32; i++ {
		addrs = append(addrs, fmt.Sprintf("10.77.0.%d", i))
	}
	netnstest.Run(t, addrs, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Inside the namespace the stream may listen on every address: camgate, like real
		// cameras' clients, reaches it at the device's own address.
		stream, err := sim.NewCamera(sim.CameraConfig{Addr: "0.0.0.0:0"})
		if err != nil {
			t.Fatal(err)
		}
		testtool.Go(ctx, t, "stream", stream.Run)
		stops := map[int]context.CancelFunc{}
		newDevice := func(i int) *onvifdev.Device {
			m := discoveryModels[i%len(discoveryModels)]
			dev, err := onvifdev.New(onvifdev.Config{
				Addr: addrs[i] + ":0", Manufacturer: m.vendor, Model: m.model, Serial: fmt.Sprintf("SN%04d", i),
				MAC: fmt.Sprintf("02:77:00:00:00:%02x", i), Name: fmt.Sprintf("%s camera %d", m.vendor, i),
				RTSPURL: stream.URL(), Auth: onvifdev.AuthWSSecurity, Username: "admin", Password: "cam-pass",
				DiscoveryGroup: "239.255.255.250:3702", DiscoveryIP: addrs[i],
			})
			if err != nil {
				t.Fatal(err)
			}
			dctx, stop := context.WithCancel(ctx)
			testtool.Go(dctx, t, "dev", dev.Run)
			t.Cleanup(stop)
			stops[i] = stop
			return dev
		}
		for i := 0; i < 20; i++ {
			newDevice(i)
		}

		// One-shot scan with credentials: every camera with its vendor, model and stream.
		out, err := exec.Command(camgateBin, "discover", "--json", "--timeout", "4s", "--no-mdns", "--user", "admin",
			"--password", "cam-pass").Output()
		if err != nil {
			t.Fatalf("camgate discover: %v", err)
		}
		var found []discovered
		if err := json.Unmarshal(out, &found); err != nil {
			t.Fatalf("discover --json: %v\n%s", err, out)
		}
		byAddr := map[string]discovered{}
		for _, d := range found {
			byAddr[d.Address] = d
		}
		for i := 0; i < 20; i++ {
			d, ok := byAddr[addrs[i]]
			m := discoveryModels[i%len(discoveryModels)]
			switch {
			case !ok:
				t.Errorf("camera %d at %s not found", i, addrs[i])
			case d.Vendor != m.vendor || d.Model != m.model || len(d.Profiles) == 0 || d.Profiles[0].StreamURI == "":
				t.Errorf("camera %d: %+v, want %s %s with a stream URI", i, d, m.vendor, m.model)
			}
		}

		// A camera that only announces RTSP over mDNS (no ONVIF).
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		mdnsCam, err := zeroconf.RegisterProxy("Garage RTSP camera", "_rtsp._tcp", "local.", 8554, "garage-cam",
			[]string{addrs[22]}, nil, []net.Interface{*lo})
		if err != nil {
			t.Fatalf("announcing over mDNS: %v", err)
		}
		defer mdnsCam.Shutdown()

		// The daemon follows the LAN: 20 discovered, Bye removes, Hello adds.
		b := startBroker(t, freePort(t), "")
		flussonic, _ := mediaServer(t, "127.0.0.1:0")
		webPort := freePort(t)
		dir := t.TempDir()
		cfg := fmt.Sprintf(`gateway_id: gwd
data_dir: %s
web: {listen: '127.0.0.1:%d'}
smtp: {listen: ''}
discovery: {onvif: true, mdns: true, interval: 10m, interfaces: [lo]}
mqtt: {url: '%s'}
flussonic: {publish: '%s'}
`, dir, webPort, b.url(), flussonic.URL())
		if err := os.WriteFile(filepath.Join(dir, "camgate.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		start(t, camgateBin, "run", "-c", filepath.Join(dir, "camgate.yaml"))
		page := loginPage(t, fmt.Sprintf("http://127.0.0.1:%d", webPort), dir)
		discoveredIDs := func() map[string]string { // camera_id -> ip
			ids := map[string]string{}
			for _, c := range page.cameras(t) {
				if c.State == "discovered" {
					ids[c.CameraID] = c.IP
				}
			}
			return ids
		}
		waitFor(t, 30*time.Second, "20 ONVIF cameras and the mDNS camera discovered by the daemon", func() bool {
			ids := discoveredIDs()
			mdnsFound := false
			for _, ip := range ids {
				mdnsFound = mdnsFound || ip == addrs[22]
			}
			return len(ids) == 21 && mdnsFound
		})

		stops[3]() // the camera is unplugged: it says Bye and stops answering
		waitFor(t, 10*time.Second, "the camera that said Bye to leave", func() bool {
			for _, ip := range discoveredIDs() {
				if ip == addrs[3] {
					return false
				}
			}
			return true
		})
		newDevice(21) // its Run says Hello; no probe is due for ten minutes
		waitFor(t, 10*time.Second, "the camera that said Hello to appear", func() bool {
			for _, ip := range discoveredIDs() {
				if ip == addrs[21] {
					return true
				}
			}
			return false
		})

		// Credentials by MQTT turn a discovered camera into a relayed one.
		var target string
		for id, ip := range discoveredIDs() {
			if ip == addrs[7] {
				target = id
			}
		}
		publish(t, b.port, "camgate/gwd/cmd/add_camera",
			fmt.Sprintf(`{"id":"d1","camera_id":"%s","username":"admin","password":"cam-pass"}`, target))
		waitFor(t, 30*time.Second, "the discovered camera relayed", func() bool {
			st, _ := flussonic.Stream("gwd-" + target)
			return st.VideoFrames > 25
		})
	})
}

// page is a logged-in client of the pairing page's API.
type page struct {
	base string
	c    *http.Client
}

func loginPage(t *testing.T, base, dataDir string) *page {
	t.Helper()
	var code []byte
	waitFor(t, 20*time.Second, "the setup code and the page", func() bool {
		code, _ = os.ReadFile(filepath.Join(dataDir, "setup-code"))
		return len(code) > 0 && dialableAddr(strings.TrimPrefix(base, "http://"))
	})
	jar, _ := cookiejar.New(nil)
	p := &page{base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	body, _ := json.Marshal(map[string]string{"code": strings.TrimSpace(string(code))})
	resp, err := p.c.Post(base+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", err, resp)
	}
	resp.Body.Close()
	return p
}

type pageCamera struct {
	CameraID string `json:"camera_id"`
	State    string `json:"state"`
	IP       string `json:"ip"`
}

func (p *page) cameras(t *testing.T) []pageCamera {
	t.Helper()
	resp, err := p.c.Get(p.base + "/api/cameras")
	if err != nil {
		t.Fatalf("GET /api/cameras: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct{ Cameras []pageCamera }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/api/cameras: %v: %s", err, b)
	}
	return r.Cameras
}

func dialableAddr(addr string) bool {
	_, err := netDialAddr(addr)
	return err == nil
}
