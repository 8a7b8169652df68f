package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/camgate/camgate/internal/sim/onvifdev"
)

// Issue 13 finding 1, end to end: cameras given as http://admin:PASSWORD@host/onvif/... in the
// config file and by MQTT add_camera. The password becomes the camera's (a WS-Security camera
// resolves with it), a device that asks for Basic over plain http gets no Authorization at all
// (no Basic sent unasked, none without auth: basic), and the password is nowhere else: not in
// any message on the broker (retained registrations with their onvif field, states with
// last_error), not in the page's JSON, not in last_error, not in the log.
func TestPasswordInACameraURLGoesNowhereElse(t *testing.T) {
	const secret = "url-s3cret-13"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broker := startMosquitto(t)
	device, err := onvifdev.New(onvifdev.Config{Addr: "127.0.0.1:0", Manufacturer: "Hikvision",
		Model: "DS-2CD2043G2-I", RTSPURL: "rtsp://127.0.0.1:9/stream1", Auth: onvifdev.AuthWSSecurity,
		Username: "admin", Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = device.Run(ctx) }()
	fileTrap, mqttTrap := newCredTrap(t, "127.0.0.1", secret), newCredTrap(t, "127.0.0.1", secret)
	withPassword := func(xaddr string) string {
		return strings.Replace(xaddr, "http://", "http://admin:"+secret+"@", 1)
	}
	trapURL := func(tr *credTrap) string { return withPassword("http://" + tr.addr() + "/onvif/device_service") }

	// Everything the broker carries under the gateway's prefix, from before camgate connects.
	var mu sync.Mutex
	seen := map[string]string{}
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(strings.Replace(broker.url(), "mqtt://", "tcp://", 1)).
		SetClientID("test-watcher").SetAutoReconnect(false))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("camgate/gwu/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		seen[m.Topic()] += string(m.Payload()) + "\n"
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}

	d := startDaemon(t, fmt.Sprintf(`gateway_id: gwu
data_dir: DATA_DIR
web: {listen: "127.0.0.1:0"}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
mqtt: {url: '%s', telemetry_interval: 1s}
flussonic: {publish: 'rtsp://127.0.0.1:9/live'}
cameras:
  - {id: file-onvif, url: '%s', enabled: true}
  - {id: file-basic, url: '%s', enabled: true}
`, broker.url(), withPassword(device.XAddr()), trapURL(fileTrap)))
	p := loginPage(t, d)
	cmd := newCommander(t, broker.url(), "camgate/gwu")
	waitFor(t, 10*time.Second, "camgate's MQTT connection", d.mqttUp)
	cmd.waitHeard(t)
	for id, url := range map[string]string{"mqtt-onvif": withPassword(device.XAddr()), "mqtt-basic": trapURL(mqttTrap)} {
		if r := cmd.send("add_camera", map[string]any{"camera_id": id, "url": url, "enabled": true}); r == nil ||
			r["ok"] != true {
			t.Fatalf("add_camera %s: %v", id, r)
		}
	}

	registered := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(seen["camgate/gwu/cameras/"+id+"/config"], `"vendor":"Hikvision"`)
	}
	lastError := func(id string) string {
		c, err := d.a.cameraStatus(id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Relay.LastError != "" {
			return c.Relay.LastError
		}
		return c.Problem // what the page shows as last_error when the relay has not run
	}
	waitFor(t, 60*time.Second, "both ONVIF cameras resolved and registered, both Basic devices refused", func() bool {
		return registered("file-onvif") && registered("mqtt-onvif") &&
			strings.Contains(lastError("file-basic"), "auth: basic") && strings.Contains(lastError("mqtt-basic"), "auth: basic")
	})
	for name, tr := range map[string]*credTrap{"config file": fileTrap, "MQTT add_camera": mqttTrap} {
		req, auths, _, clear := tr.seen()
		if req == 0 || auths != 0 || clear != 0 {
			t.Errorf("the Basic-only device of the %s camera: %d requests, %d with Authorization, %d with the password",
				name, req, auths, clear)
		}
	}
	where := map[string]string{"the log": d.logs.String()}
	_, cams := p.raw("GET", "/api/cameras", nil)
	where["GET /api/cameras"] = string(cams)
	for _, id := range []string{"file-onvif", "file-basic", "mqtt-onvif", "mqtt-basic"} {
		where["last_error of "+id] = lastError(id)
	}
	mu.Lock()
	for topic, payloads := range seen {
		if topic != "camgate/gwu/cmd/add_camera" { // the test's own command; its reply counts
			where["MQTT "+topic] = payloads
		}
	}
	mu.Unlock()
	for what, text := range where {
		if strings.Contains(text, secret) {
			i := strings.Index(text, secret)
			t.Errorf("%s holds the password: …%s…", what, text[max(0, i-120):min(len(text), i+40)])
		}
	}
	mu.Lock()
	reg := seen["camgate/gwu/cameras/file-onvif/config"]
	mu.Unlock()
	if !strings.Contains(reg, `"onvif":"`+device.XAddr()+`"`) {
		t.Errorf("the registration's onvif field is not the device service without credentials: %s", reg)
	}
}
