package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/sim/onvifdev"
	"github.com/camgate/camgate/internal/testtool"
)

// onvifCamera runs a simulated ONVIF camera in front of a simulated RTSP camera.
func onvifCamera(t *testing.T, ctx context.Context, cfg onvifdev.Config) *onvifdev.Device {
	t.Helper()
	cam, err := sim.NewCamera(sim.CameraConfig{})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(ctx, t, "cam", cam.Run)
	cfg.Addr, cfg.RTSPURL = "127.0.0.1:0", cam.URL()
	dev, err := onvifdev.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(ctx, t, "dev", dev.Run)
	return dev
}

func testJPEG(t *testing.T) []byte {
	t.Helper()
	ff := needTool(t, "ffmpeg", "ffmpeg")
	p := filepath.Join(t.TempDir(), "snap.jpg")
	if out, err := exec.Command(ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180", "-frames:v", "1",
		p).CombinedOutput(); err != nil {
		t.Fatalf("making a JPEG: %v: %s", err, out)
	}
	b, _ := os.ReadFile(p)
	return b
}

// Issue 5 acceptance 3 and 4, issue 6 acceptance 4: an ONVIF camera whose clock is a day off,
// given by its device URL and credentials in the config or by MQTT, is resolved and relayed to
// the Flussonic stand-in; its PullPoint motion becomes events, also after the camera restarts
// and forgets the subscription; snapshot and PTZ commands reach it; a wrong password is reported
// in words naming the device.
func TestRunRelaysONVIFCamerasAndFollowsTheirEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jpeg := testJPEG(t)
	front := onvifCamera(t, ctx, onvifdev.Config{Manufacturer: "AXIS", Model: "M2025-LE", Serial: "ACCC8E000001",
		MAC: "00:40:8c:00:00:01", SnapshotJPEG: jpeg, PTZ: true, ClockSkew: 24 * time.Hour,
		Auth: onvifdev.AuthWSSecurity, Username: "admin", Password: "front-pass"})
	side := onvifCamera(t, ctx, onvifdev.Config{Manufacturer: "Dahua", Model: "IPC-HDW2431T", Serial: "7J0000002",
		Auth: onvifdev.AuthHTTPDigest, Username: "admin", Password: "side-pass"})
	locked := onvifCamera(t, ctx, onvifdev.Config{Manufacturer: "Uniview", Model: "IPC2122", Auth: onvifdev.AuthWSSecurity,
		Username: "admin", Password: "right"})

	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(ctx, t, "sink", sink.Run)
	b := startBroker(t, freePort(t), "")
	sub := subscribe(t, b.port, "", "camgate/gwv/#")
	cfg := uplinkConfig("gwv", b.url(), "", []string{sink.URL()}, "motion: {hold: 30s}\n",
		fmt.Sprintf("  - {id: front, url: '%s', username: admin, password: front-pass}\n", front.XAddr()),
		fmt.Sprintf("  - {id: locked, url: '%s', username: admin, password: wrong}\n", locked.XAddr()))
	cfg = strings.Replace(cfg, "flussonic:\n", fmt.Sprintf("flussonic:\n  publish: %s\n", flussonic.URL()), 1)
	runCamgate(t, cfg)

	waitFor(t, 30*time.Second, "the ONVIF camera relayed", func() bool {
		st, _ := flussonic.Stream("gwv-front")
		return st.VideoFrames > 25 && st.FirstVideoFrameKey
	})
	const p = "camgate/gwv/cameras/"
	waitFor(t, 10*time.Second, "front's registration with what ONVIF told", func() bool {
		var reg map[string]any
		if json.Unmarshal(retained(t, b.port, p+"front/config")[p+"front/config"], &reg) != nil {
			return false // not retained yet
		}
		return reg["vendor"] == "AXIS" && reg["model"] == "M2025-LE" && reg["ptz"] == true && reg["onvif"] == front.XAddr()
	})
	waitFor(t, 30*time.Second, "the wrong password reported", func() bool {
		var st map[string]any
		if json.Unmarshal(retained(t, b.port, p+"locked/state")[p+"locked/state"], &st) != nil {
			return false // not retained yet
		}
		msg, _ := st["last_error"].(string)
		return strings.Contains(msg, "refused") && strings.Contains(msg, locked.XAddr())
	})

	// Motion on, then off: one episode. The camera restarts and forgets its subscription: the
	// next motion still arrives.
	for round := 1; round <= 2; round++ {
		if round == 2 {
			front.Restart()
		}
		front.SetMotion(true)
		waitFor(t, 45*time.Second, fmt.Sprintf("motion started, round %d", round), func() bool {
			return countEvents(sink.Events(), "stream_motion_started") == round
		})
		front.SetMotion(false)
		waitFor(t, 30*time.Second, fmt.Sprintf("motion stopped, round %d", round), func() bool {
			return countEvents(sink.Events(), "stream_motion_stopped") == round
		})
	}

	// Commands: snapshot, PTZ, and a camera added by MQTT with its credentials.
	publish(t, b.port, "camgate/gwv/cmd/snapshot", `{"id":"s1","camera_id":"front"}`)
	waitFor(t, 15*time.Second, "the snapshot retained", func() bool {
		return bytes.Equal(retained(t, b.port, p+"front/snapshot")[p+"front/snapshot"], jpeg)
	})
	publish(t, b.port, "camgate/gwv/cmd/ptz", `{"id":"p1","camera_id":"front","action":"move","pan":0.5,"timeout_ms":500}`)
	waitFor(t, 15*time.Second, "the PTZ move at the camera", func() bool {
		return strings.Contains(strings.Join(front.PTZLog(), " "), "ContinuousMove")
	})
	publish(t, b.port, "camgate/gwv/cmd/add_camera",
		fmt.Sprintf(`{"id":"a1","camera_id":"side","url":"%s","username":"admin","password":"side-pass"}`, side.XAddr()))
	waitFor(t, 30*time.Second, "the camera added by MQTT relayed", func() bool {
		st, _ := flussonic.Stream("gwv-side")
		return st.VideoFrames > 25
	})
	for _, m := range sub.all() {
		if !strings.Contains(m.Topic, "/cmd/") && bytes.Contains(m.Payload, []byte("-pass")) {
			t.Errorf("%s carried a password", m.Topic)
		}
	}
}

// Issue 6: a camera without PullPoint posts its events to the gateway (ONVIF Basic Notification),
// and its motion still becomes one started/stopped pair.
func TestRunFollowsCamerasWithoutPullPointByBasicNotification(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cam := onvifCamera(t, ctx, onvifdev.Config{Manufacturer: "OldCam", Model: "NoPullPoint-1", NoPullPoint: true,
		Auth: onvifdev.AuthHTTPDigest, Username: "admin", Password: "np-pass"})
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(ctx, t, "sink", sink.Run)
	cams := fmt.Sprintf("  - {id: old, url: '%s', username: admin, password: np-pass}\n", cam.XAddr())
	cfg := relayConfig("gwn", flussonic.URL(), cams)
	cfg = strings.Replace(cfg, `web: {listen: ""}`, fmt.Sprintf("web: {listen: '127.0.0.1:%d'}", freePort(t)), 1)
	cfg = strings.Replace(cfg, "flussonic:\n", fmt.Sprintf("motion: {hold: 30s}\nflussonic:\n  events: [{url: '%s'}]\n",
		sink.URL()), 1)
	runCamgate(t, cfg)
	waitFor(t, 30*time.Second, "the camera subscribed for notifications",
		func() bool { return cam.NotifySubscriptions() > 0 })
	cam.SetMotion(true)
	waitFor(t, 20*time.Second, "motion started by a posted notification", func() bool {
		return countEvents(sink.Events(), "stream_motion_started") == 1
	})
	cam.SetMotion(false)
	waitFor(t, 20*time.Second, "motion stopped", func() bool {
		return countEvents(sink.Events(), "stream_motion_stopped") == 1
	})
}
