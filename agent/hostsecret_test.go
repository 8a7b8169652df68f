package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// Issue 13 acceptance 4, cameras: set_camera (MQTT) or the page's PATCH moving a camera to
// another host without its password clears the stored password, the reply says so, and the fake
// device on the new host (127.0.0.2), asking for Basic from a camera marked auth: basic, never
// gets it. The old host, asking the same, did: so the trap would have seen a leak.
func TestSetCameraOnAnotherHostDropsThePassword(t *testing.T) {
	const secret = "door-secret-13"
	broker := startMosquitto(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, publish := startMediaServer(ctx, t)
	d := startDaemon(t, fmt.Sprintf(`gateway_id: gwh
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
mqtt: {url: '%s'}
flussonic: {publish: '%s'}
`, broker.url(), publish))
	p := loginPage(t, d)
	cmd := newCommander(t, broker.url(), "camgate/gwh")
	waitFor(t, 10*time.Second, "the agent's MQTT session", d.mqttUp)
	cmd.waitHeard(t)

	tests := []struct {
		name string
		move func(id, newURL string) (cleared bool, notice string)
	}{
		{"MQTT set_camera", func(id, newURL string) (bool, string) {
			r := cmd.send("set_camera", map[string]any{"camera_id": id, "url": newURL})
			if r == nil || r["ok"] != true {
				t.Fatalf("set_camera: %v", r)
			}
			notice, _ := r["notice"].(string)
			return r["password_cleared"] == true, notice
		}},
		{"page PATCH", func(id, newURL string) (bool, string) {
			var cam struct {
				URL             string `json:"url"`
				PasswordCleared bool   `json:"password_cleared"`
				Notice          string `json:"notice"`
			}
			if _, err := p.do("PATCH", "/api/cameras/"+id, map[string]any{"url": newURL}, &cam); err != nil {
				t.Fatal(err)
			}
			if cam.URL != newURL {
				t.Errorf("PATCH answered url %q, want %q", cam.URL, newURL)
			}
			return cam.PasswordCleared, cam.Notice
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("door%d", i)
			home := newCredTrap(t, "127.0.0.1", secret)
			elsewhere := newCredTrap(t, "127.0.0.2", secret)
			enabled := true
			url, user, pass, basic := "rtsp://"+home.addr()+"/door", "admin", secret, "basic"
			if _, err := d.a.AddCamera(context.Background(), CameraRequest{CameraID: id, URL: &url, Username: &user,
				Password: &pass, Auth: &basic, Enabled: &enabled}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "the camera's own host to be asked with the password", func() bool {
				_, _, _, clear := home.seen()
				return clear > 0
			})

			newURL := "rtsp://" + elsewhere.addr() + "/door"
			cleared, notice := tt.move(id, newURL)
			if !cleared || notice != "password cleared: host changed" {
				t.Errorf("reply: password_cleared %v, notice %q; want true, %q", cleared, notice, NoticePasswordCleared)
			}
			// The relay now asks the new host, again and again (it reconnects): it gets no password.
			waitFor(t, 20*time.Second, "the relay to try the new host twice", func() bool {
				req, _, _, _ := elsewhere.seen()
				return req >= 2
			})
			req, auths, _, clear := elsewhere.seen()
			if clear != 0 {
				t.Fatalf("the new host got the old password %d times (of %d requests, %d with Authorization)", clear, req, auths)
			}
			t.Logf("new host: %d requests, %d with Authorization, 0 with the password", req, auths)
		})
	}

	// Giving the password again with the new host keeps it: that is the owner confirming.
	t.Run("password given again", func(t *testing.T) {
		home := newCredTrap(t, "127.0.0.1", secret)
		url, pass := "rtsp://"+home.addr()+"/door", secret
		req := CameraRequest{CameraID: "door9", URL: &url, Password: &pass}
		if _, err := d.a.AddCamera(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		r := cmd.send("set_camera", map[string]any{"camera_id": "door9", "url": "rtsp://127.0.0.2:9/door",
			"password": "new-pass"})
		if r == nil || r["ok"] != true || r["password_cleared"] != nil {
			t.Fatalf("set_camera with a password: %v, want ok and nothing cleared", r)
		}
	})
}

// Issue 13 acceptance 4, connection: PUT /api/connection naming a new broker host (127.0.0.2)
// without the password drops the stored MQTT password; the fake broker there sees the agent's
// CONNECT but never the password. Likewise a publish URL moved to another host loses its
// ?password=.
func TestConnectionOnAnotherHostDropsTheSecret(t *testing.T) {
	const mqttSecret, publishSecret = "broker-secret-13", "publish-secret-13"
	camera, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testtool.Go(ctx, t, "camera", camera.Run)
	d := startDaemon(t, fmt.Sprintf(`gateway_id: gwk
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
mqtt: {url: 'mqtt://127.0.0.1:%d', username: gw, password: '%s'}
flussonic: {publish: 'rtsp://127.0.0.1:9/{stream_name}?password=%s'}
cameras:
  - {id: cam, url: '%s', enabled: true}
`, freePort(t), mqttSecret, publishSecret, camera.URL()))
	p := loginPage(t, d)
	broker := newRawTrap(t, "127.0.0.2", mqttSecret)
	publish := newCredTrap(t, "127.0.0.2", publishSecret)
	var reply struct {
		Notices []string `json:"notices"`
	}
	if _, err := p.do("PUT", "/api/connection", map[string]any{
		"mqtt": map[string]any{"url": "mqtt://" + broker.addr(), "username": "gw",
			"topic_prefix": "camgate/{gateway_id}"},
		"flussonic": map[string]any{"publish": "rtsp://" + publish.addr() + "/{stream_name}", "username": ""},
	}, &reply); err != nil {
		t.Fatal(err)
	}
	want := []string{"mqtt.password cleared: host changed", "flussonic.publish password cleared: host changed"}
	if strings.Join(reply.Notices, "|") != strings.Join(want, "|") {
		t.Errorf("notices %q, want %q", reply.Notices, want)
	}
	waitFor(t, 20*time.Second, "the agent's CONNECT at the new broker, its ANNOUNCE at the new publish host", func() bool {
		conns, _ := broker.seen()
		req, _, _, _ := publish.seen()
		return conns > 0 && req > 0
	})
	if _, n := broker.seen(); n != 0 {
		t.Errorf("the new broker got the MQTT password %d times", n)
	}
	if req, auths, _, n := publish.seen(); n != 0 {
		t.Errorf("the new publish host got the publish password %d times (%d requests, %d with Authorization)", n, req, auths)
	}
	if cfg := d.a.config(); cfg.MQTT.Password != "" || strings.Contains(cfg.Flussonic.Publish, publishSecret) {
		t.Errorf("the running config kept a secret: mqtt password %q, publish %q", cfg.MQTT.Password,
			redactURL(cfg.Flussonic.Publish))
	}
}
