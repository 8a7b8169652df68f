package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/agent/web"
)

// Adding a camera that is already added is the caller's mistake, not ours: the page answers
// 409 Conflict with the code camera_exists, and MQTT add_camera replies ok:false with the same
// code, whether the camera came from the page, from MQTT or from the config file. Before, the
// page said 500 ("internal"), as if camgate had failed.
func TestAddingAnAddedCameraIsAConflict(t *testing.T) {
	broker := startMosquitto(t)
	d := startDaemon(t, ownerConfig(broker.url(), "file-0"))
	p := loginPage(t, d)
	cmd := newCommander(t, broker.url(), "camgate/gwc")
	waitFor(t, 10*time.Second, "camgate's MQTT connection", d.mqttUp)
	cmd.waitHeard(t)

	if st, err := p.do("POST", "/api/cameras", map[string]any{"url": "rtsp://127.0.0.1:9/page"}, nil); err != nil {
		t.Fatalf("first page add: %d %v", st, err)
	}
	if r := cmd.send("add_camera", map[string]any{"camera_id": "mqtt-cam",
		"url": "rtsp://127.0.0.1:9/mqtt"}); r == nil || r["ok"] != true {
		t.Fatalf("first MQTT add_camera: %v", r)
	}
	pageID := CameraIDFromURL("rtsp://127.0.0.1:9/page")

	pageAdds := []struct {
		name string
		body map[string]any
	}{
		{"added on the page", map[string]any{"url": "rtsp://127.0.0.1:9/page"}},
		{"added over MQTT", map[string]any{"camera_id": "mqtt-cam"}},
		{"in the config file", map[string]any{"camera_id": "file-cam"}},
	}
	for _, tc := range pageAdds {
		t.Run("page/"+tc.name, func(t *testing.T) {
			st, body := p.raw("POST", "/api/cameras", tc.body)
			var reply struct{ Error, Code string }
			if err := json.Unmarshal(body, &reply); err != nil {
				t.Fatalf("%d %s: %v", st, body, err)
			}
			if st != http.StatusConflict || reply.Code != "camera_exists" {
				t.Errorf("got %d %q (%s), want 409 camera_exists", st, reply.Code, reply.Error)
			}
		})
	}

	mqttAdds := []struct {
		name string
		body map[string]any
	}{
		{"added on the page", map[string]any{"camera_id": pageID, "url": "rtsp://127.0.0.1:9/page"}},
		{"added over MQTT", map[string]any{"camera_id": "mqtt-cam", "url": "rtsp://127.0.0.1:9/mqtt"}},
		{"in the config file", map[string]any{"camera_id": "file-cam", "url": "rtsp://127.0.0.1:9/file"}},
	}
	for _, tc := range mqttAdds {
		t.Run("mqtt/"+tc.name, func(t *testing.T) {
			r := cmd.send("add_camera", tc.body)
			if r == nil {
				t.Fatal("no reply within 2 s")
			}
			errText, _ := r["error"].(string)
			if r["ok"] != false || r["code"] != "camera_exists" || !strings.Contains(errText, "already exists") {
				t.Errorf("got %v, want ok:false, code camera_exists and an error saying so", r)
			}
		})
	}
}

// webError is the one place the agent's errors become the page's: each typed error keeps its
// meaning (errors.Is) on the way, so the page picks the status from it, not from the words.
func TestWebErrorKeepsTheKind(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("%w: cam1 (use set_camera to change it)", ErrCameraExists), web.ErrExists},
		{fmt.Errorf("%w: cam1", ErrUnknownCamera), web.ErrNotFound},
		{fmt.Errorf("add: %w", fmt.Errorf("%w: cam1", ErrCameraExists)), web.ErrExists},
	}
	for _, tc := range cases {
		if got := webError(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("webError(%q) = %q, want it to wrap %q", tc.err, got, tc.want)
		}
	}
	if got := commandErrorFields(fmt.Errorf("x: %w", ErrCameraExists)); got["code"] != "camera_exists" {
		t.Errorf("MQTT reply fields for an existing camera: %v", got)
	}
	if got := commandErrorFields(errors.New("disk full")); got != nil {
		t.Errorf("MQTT reply fields for an untyped error: %v, want none", got)
	}
}
