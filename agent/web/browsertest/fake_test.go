package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/agent/web"
)

// xssName is a camera name a hostile device could announce; the page must show it as text.
const xssName = `<img src=x onerror=alert(1)>`

// porchPlayURL is where SC plays the added camera: flussonic.play + its stream name.
const porchPlayURL = "rtsp://stream.example.com:554/eltex-7f3a21-porch"

// fakeBackend is the agent as the page sees it: two discovered cameras (one with a hostile
// name), one added and relaying; an added camera starts relaying a moment after it is added.
type fakeBackend struct {
	mu      sync.Mutex
	cams    map[string]*web.Camera
	pass    map[string]string
	conn    web.Connection
	jpeg    []byte
	relayIn time.Duration
}

func newFakeBackend(t *testing.T) *fakeBackend {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 180))
	for y := 0; y < 180; y++ {
		for x := 0; x < 320; x++ {
			img.Set(x, y, color.RGBA{uint8(40 + x/4), uint8(70 + y/3), 120, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	f := &fakeBackend{
		cams: map[string]*web.Camera{
			"porch": {CameraID: "porch", AgentID: "4815162342", Name: "Porch", Vendor: "HIKVISION", Model: "DS-2CD2043G2-I",
				IP: "192.168.1.64", URL: "rtsp://192.168.1.64:554/Streaming/Channels/101", State: web.CameraAdded,
				Enabled: true, Audio: true, Relaying: true, Online: true,
				Codec: "H264", Width: 2688, Height: 1520, BitrateBPS: 4_100_000, Quality: "main", UplinkBPS: 4_000_000,
				HasSnapshot: true, StreamName: "eltex-7f3a21-porch", PlayURL: porchPlayURL},
			"cam-001122334455": {CameraID: "cam-001122334455", Name: xssName, Vendor: `<b>Evil</b> "Corp"`,
				Model: "IPC-HFW1230S", IP: "192.168.1.108", URL: "http://192.168.1.108/onvif/device_service",
				State: web.CameraDiscovered, NeedsCredentials: true},
			"cam-66778899aabb": {CameraID: "cam-66778899aabb", Name: "Dahua IPC", Vendor: "Dahua", Model: "IPC-HDW2431T",
				IP: "192.168.1.109", URL: "http://192.168.1.109/onvif/device_service", State: web.CameraDiscovered,
				NeedsCredentials: true},
		},
		pass: map[string]string{},
		conn: web.Connection{
			MQTT: web.MQTTConnection{
				URL: "mqtts://sc.example.com:8883", Username: "gw-1", PasswordSet: true, TopicPrefix: "camgate/{gateway_id}",
			},
			Flussonic: web.FlussonicConnection{
				Publish: "rtsp://stream.example.com:554/", StreamName: "{gateway_id}-{camera_id}",
			},
		},
		jpeg:    buf.Bytes(),
		relayIn: 1500 * time.Millisecond,
	}
	return f
}

func (f *fakeBackend) Status(ctx context.Context) web.GatewayStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := web.GatewayStatus{GatewayID: "eltex-7f3a21", UptimeSeconds: 93784, MQTT: web.Link{State: web.LinkUp},
		Flussonic: web.Link{State: web.LinkUp}, OutboxDepth: 3, OutboxBytes: 2048,
		SMTP: &web.SMTPLogin{Username: "camgate", Password: "k7pqx2mfa9rtwe3h", Generated: true}}
	for _, c := range f.cams {
		if c.State == web.CameraAdded {
			st.Cameras++
			if c.Relaying {
				st.Relaying++
			}
		}
	}
	return st
}

func (f *fakeBackend) Cameras(ctx context.Context) []web.Camera {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []web.Camera
	for _, c := range f.cams {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CameraID < out[j].CameraID })
	return out
}

func (f *fakeBackend) AddCamera(ctx context.Context, req web.AddCamera) (web.Camera, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.CameraID
	c := f.cams[id]
	if c == nil {
		if req.URL == "" {
			return web.Camera{}, fmt.Errorf("camera %q: %w", id, web.ErrNotFound)
		}
		id = fmt.Sprintf("cam-%d", len(f.cams))
		c = &web.Camera{CameraID: id, URL: req.URL, IP: "192.168.1.70", StreamName: "eltex-7f3a21-" + id,
			PlayURL: "rtsp://stream.example.com:554/eltex-7f3a21-" + id}
		f.cams[id] = c
	}
	c.State, c.Enabled, c.Online, c.NeedsCredentials = web.CameraAdded, true, true, false
	c.AgentID = fmt.Sprintf("90%08d", len(f.cams))
	if req.Name != "" {
		c.Name = req.Name
	}
	c.Username = req.Username
	f.pass[id] = req.Password
	time.AfterFunc(f.relayIn, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if c := f.cams[id]; c != nil {
			c.Relaying, c.Codec, c.Width, c.Height, c.BitrateBPS, c.HasSnapshot = true, "H264", 1920, 1080, 2_300_000, true
		}
	})
	return *c, nil
}

// stepDown is the agent's quality governor moving a relaying camera to its substream, which
// the upstream now carries at uplinkBPS (issue 15).
func (f *fakeBackend) stepDown(id string, uplinkBPS int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cams[id]
	c.Quality, c.UplinkBPS, c.Width, c.Height, c.BitrateBPS = "sub", uplinkBPS, 640, 360, uplinkBPS
}

func (f *fakeBackend) UpdateCamera(ctx context.Context, id string, p web.CameraPatch) (web.Camera, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cams[id]
	if c == nil {
		return web.Camera{}, fmt.Errorf("camera %q: %w", id, web.ErrNotFound)
	}
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.Enabled != nil {
		c.Enabled = *p.Enabled
		c.Relaying = c.Relaying && c.Enabled
	}
	return *c, nil
}

func (f *fakeBackend) RemoveCamera(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cams[id] == nil {
		return fmt.Errorf("camera %q: %w", id, web.ErrNotFound)
	}
	delete(f.cams, id)
	return nil
}

func (f *fakeBackend) Snapshot(ctx context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.cams[id]; c == nil || !c.HasSnapshot {
		return nil, fmt.Errorf("snapshot of %q: %w", id, web.ErrNotFound)
	}
	return f.jpeg, nil
}

func (f *fakeBackend) Discover(ctx context.Context) error { return nil }

func (f *fakeBackend) TestStream(ctx context.Context, url, username, password string) (web.StreamInfo, error) {
	if password == "wrong" {
		// As the Backend documents it: a refused password wraps web.ErrCameraUnauthorized.
		return web.StreamInfo{}, fmt.Errorf("DESCRIBE %s: 401 Unauthorized: %w", url, web.ErrCameraUnauthorized)
	}
	return web.StreamInfo{
		Tracks: []web.Track{
			{Kind: "video", Codec: "H264", Width: 1920, Height: 1080},
			{Kind: "audio", Codec: "AAC"},
		},
		BitrateBPS: 2_300_000,
	}, nil
}

func (f *fakeBackend) Connection(ctx context.Context) web.Connection {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn
}

func (f *fakeBackend) SetConnection(ctx context.Context, c web.ConnectionUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := c.MQTT; m != nil {
		f.conn.MQTT = web.MQTTConnection{URL: m.URL, Username: m.Username,
			PasswordSet: f.conn.MQTT.PasswordSet || m.Password != "", TopicPrefix: m.TopicPrefix}
	}
	return nil
}
