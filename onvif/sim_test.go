package onvif_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/onvif"
)

var jpeg = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0, 0xFF, 0xD9}

// startDevice runs a simulated camera on loopback for the test's duration.
func startDevice(t *testing.T, cfg onvifdev.Config) *onvifdev.Device {
	t.Helper()
	if cfg.RTSPURL == "" {
		cfg.RTSPURL = "rtsp://127.0.0.1:8554/main"
	}
	if cfg.SnapshotJPEG == nil {
		cfg.SnapshotJPEG = jpeg
	}
	dev, err := onvifdev.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dev.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("device Run: %v", err)
		}
	})
	return dev
}

func newClient(t *testing.T, xaddr, user, pass string) *onvif.Client {
	t.Helper()
	c, err := onvif.NewClient(onvif.ClientConfig{XAddr: xaddr, Username: user, Password: pass, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestInventoryAuthenticatesWhateverTheClockAndAuthMode(t *testing.T) {
	tests := []struct {
		name string
		auth onvifdev.AuthMode
		skew time.Duration
	}{
		{"no auth", onvifdev.AuthNone, 0},
		{"WS-Security, clock right", onvifdev.AuthWSSecurity, 0},
		{"WS-Security, clock a day ahead", onvifdev.AuthWSSecurity, 24 * time.Hour},
		{"WS-Security, clock three days behind", onvifdev.AuthWSSecurity, -72*time.Hour + 17*time.Second},
		{"HTTP digest, clock a day ahead", onvifdev.AuthHTTPDigest, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := startDevice(t, onvifdev.Config{
				Manufacturer: "Hikvision", Model: "DS-2CD2043G2-I", Serial: "DS-2CD2043G2-I20230101AAWRJ12345678",
				MAC: "44:19:B6:01:02:03", PTZ: true,
				RTSPURL: "rtsp://127.0.0.1:8554/main", SubRTSPURL: "rtsp://127.0.0.1:8554/sub",
				ClockSkew: tt.skew, Auth: tt.auth, Username: "admin", Password: "s3cret",
			})
			c := newClient(t, dev.XAddr(), "admin", "s3cret")
			ctx := testContext(t)
			d, err := onvif.Inventory(ctx, c)
			if err != nil {
				t.Fatalf("Inventory: %v", err)
			}
			if off := d.ClockOffset - tt.skew; off < -2*time.Second || off > 2*time.Second {
				t.Errorf("clock offset %v, want about %v", d.ClockOffset, tt.skew)
			}
			if d.Manufacturer != "Hikvision" || d.Model != "DS-2CD2043G2-I" || d.MAC != "44:19:b6:01:02:03" {
				t.Errorf("device %q %q %q", d.Manufacturer, d.Model, d.MAC)
			}
			if d.MainStream != "rtsp://127.0.0.1:8554/main" || d.SubStream != "rtsp://127.0.0.1:8554/sub" {
				t.Errorf("streams %q %q", d.MainStream, d.SubStream)
			}
			if !d.HasPTZ || !d.HasEvents || d.EventsXAddr == "" || d.PTZXAddr == "" {
				t.Errorf("PTZ %v %q, events %v %q", d.HasPTZ, d.PTZXAddr, d.HasEvents, d.EventsXAddr)
			}
			if len(d.Profiles) != 2 {
				t.Fatalf("profiles %+v", d.Profiles)
			}
			want := onvif.Profile{Token: "main", Name: "MainStream", Codec: "H264", Width: 1920, Height: 1080, FPS: 25,
				BitrateKbps: 4096, AudioCodec: "AAC", HasPTZ: true, StreamURI: d.MainStream, SnapshotURI: d.SnapshotURI}
			if d.Profiles[0] != want {
				t.Errorf("main profile\n got %+v\nwant %+v", d.Profiles[0], want)
			}
			img, err := c.Snapshot(ctx, d.SnapshotURI)
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			if !bytes.Equal(img, jpeg) {
				t.Errorf("snapshot %x", img)
			}
		})
	}
}

func TestWrongPasswordIsRefusedByName(t *testing.T) {
	for _, mode := range []struct {
		name string
		auth onvifdev.AuthMode
	}{{"WS-Security", onvifdev.AuthWSSecurity}, {"HTTP digest", onvifdev.AuthHTTPDigest}} {
		t.Run(mode.name, func(t *testing.T) {
			dev := startDevice(t, onvifdev.Config{Auth: mode.auth, Username: "admin", Password: "right",
				ClockSkew: 24 * time.Hour})
			c := newClient(t, dev.XAddr(), "admin", "wrong")
			_, err := onvif.Inventory(testContext(t), c)
			if !errors.Is(err, onvif.ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
			for _, part := range []string{dev.XAddr(), `"admin"`, "refused"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
		})
	}
}

func TestURIsWithBadHostsPointAtTheDevice(t *testing.T) {
	for _, announced := range []string{"0.0.0.0", "127.0.0.1", "192.168.77.3"} {
		t.Run(announced, func(t *testing.T) {
			dev := startDevice(t, onvifdev.Config{AnnounceHost: announced, RTSPURL: "rtsp://10.1.1.1:554/live",
				Addr: "127.0.0.2:0"})
			d, err := onvif.Inventory(testContext(t), newClient(t, dev.XAddr(), "", ""))
			if err != nil {
				t.Fatal(err)
			}
			if d.MainStream != "rtsp://127.0.0.2:554/live" {
				t.Errorf("main stream %q", d.MainStream)
			}
			dev2, _ := url.Parse(dev.XAddr())
			if u, _ := url.Parse(d.SnapshotURI); u == nil || u.Host != dev2.Host {
				t.Errorf("snapshot %q, want host %s", d.SnapshotURI, dev2.Host)
			}
			if u, _ := url.Parse(d.EventsXAddr); u == nil || u.Host != dev2.Host {
				t.Errorf("events %q, want host %s", d.EventsXAddr, dev2.Host)
			}
		})
	}
}

func TestMediaAndMedia2AgreeOnProfiles(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{SubRTSPURL: "rtsp://127.0.0.1:8554/sub"})
	c := newClient(t, dev.XAddr(), "", "")
	ctx := testContext(t)
	if _, err := c.GetServices(ctx); err != nil {
		t.Fatal(err)
	}
	p1, err := c.GetProfiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.GetProfiles2(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p1) != 2 || len(p2) != 2 {
		t.Fatalf("media %d profiles, media2 %d", len(p1), len(p2))
	}
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Errorf("profile %d: media %+v, media2 %+v", i, p1[i], p2[i])
		}
	}
	u1, err := c.GetStreamURI(ctx, "sub")
	if err != nil {
		t.Fatal(err)
	}
	u2, err := c.GetStreamURI2(ctx, "sub")
	if err != nil || u1 != u2 || u1 != "rtsp://127.0.0.1:8554/sub" {
		t.Errorf("stream URIs %q and %q (%v)", u1, u2, err)
	}
}

func TestPTZCommandsReachTheDevice(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{PTZ: true, Auth: onvifdev.AuthWSSecurity, Username: "u", Password: "p"})
	c := newClient(t, dev.XAddr(), "u", "p")
	ctx := testContext(t)
	if _, err := c.GetServices(ctx); err != nil {
		t.Fatal(err)
	}
	presets, err := c.GetPresets(ctx, "main")
	if err != nil || len(presets) != 2 || presets[1] != (onvif.Preset{Token: "2", Name: "Porch"}) {
		t.Fatalf("presets %+v, %v", presets, err)
	}
	if err := c.ContinuousMove(ctx, "main", 0.5, -2, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	if err := c.GotoPreset(ctx, "main", "2"); err != nil {
		t.Fatal(err)
	}
	want := []string{"GetPresets main", "ContinuousMove main 0.5 -1 0", "Stop main", "GotoPreset main 2"}
	if got := dev.PTZLog(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("device saw %q, want %q", got, want)
	}
}

func TestPullMessagesDeliversMotionAndFailsOnAForgottenSubscription(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{Auth: onvifdev.AuthWSSecurity, Username: "u", Password: "p",
		ClockSkew: -30 * time.Hour})
	c := newClient(t, dev.XAddr(), "u", "p")
	ctx := testContext(t)
	if _, err := onvif.Inventory(ctx, c); err != nil {
		t.Fatal(err)
	}
	sub, err := c.CreatePullPointSubscription(ctx, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	motion := func(ns []onvif.Notification) (states []bool) {
		for _, n := range ns {
			if on, ok := n.Motion(); ok {
				states = append(states, on)
			}
		}
		return states
	}
	ns, err := c.PullMessages(ctx, sub, 5*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := motion(ns); len(got) != 2 || got[0] || got[1] {
		t.Fatalf("initial state: motion %v from %+v", got, ns)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		dev.SetMotion(true)
	}()
	ns, err = c.PullMessages(ctx, sub, 20*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := motion(ns); len(got) != 2 || !got[0] || !got[1] {
		t.Fatalf("after SetMotion(true): motion %v from %+v", got, ns)
	}
	if ns[0].Topic != "tns1:VideoSource/MotionAlarm" || ns[0].Data["State"] != "true" || ns[1].Data["IsMotion"] != "true" {
		t.Errorf("notifications %+v", ns)
	}
	if term, err := c.Renew(ctx, sub, 10*time.Minute); err != nil || term.IsZero() {
		t.Fatalf("Renew: %v, %v", term, err)
	}
	dev.Restart()
	if _, err := c.PullMessages(ctx, sub, time.Second, 10); err == nil {
		t.Fatal("PullMessages on a subscription the device forgot: no error")
	}
}

func TestPullPointFollowsMotionAcrossADeviceRestart(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{Auth: onvifdev.AuthHTTPDigest, Username: "u", Password: "p"})
	c := newClient(t, dev.XAddr(), "u", "p")
	ctx := testContext(t)
	if _, err := c.GetServices(ctx); err != nil {
		t.Fatal(err)
	}
	pp, err := onvif.NewPullPoint(onvif.PullPointConfig{Client: c, Lifetime: 3 * time.Second, PullTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pp.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// waitMotion reads notifications until a motion alarm in the wanted state.
	waitMotion := func(want bool, op string) {
		t.Helper()
		for {
			select {
			case n := <-pp.Notifications():
				if on, ok := n.Motion(); ok && on == want && n.Operation == op {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s motion=%v notification", op, want)
			}
		}
	}
	waitMotion(false, "Initialized")
	dev.SetMotion(true)
	waitMotion(true, "Changed")

	time.Sleep(3 * time.Second) // past 80% of the lifetime: the subscription is renewed, not lost
	dev.SetMotion(false)
	waitMotion(false, "Changed")

	dev.Restart() // the camera forgets the subscription; the loop must subscribe again
	waitMotion(false, "Initialized")
	dev.SetMotion(true)
	waitMotion(true, "Changed")
	if n := dev.Subscriptions(); n != 1 {
		t.Errorf("%d subscriptions on the device, want 1", n)
	}
}

func TestExpiredDigestNonceIsAnsweredAgain(t *testing.T) {
	dev := startDevice(t, onvifdev.Config{Auth: onvifdev.AuthHTTPDigest, Username: "u", Password: "p",
		DigestNonceLifetime: 300 * time.Millisecond})
	c := newClient(t, dev.XAddr(), "u", "p")
	ctx := testContext(t)
	for i := range 3 {
		if _, err := c.GetDeviceInformation(ctx); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		time.Sleep(400 * time.Millisecond) // let the nonce expire
	}
}
