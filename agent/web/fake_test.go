package web

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// fakeBackend keeps cameras and settings in memory. It is deliberately careless with secrets
// (it keeps credentials inside URLs and quotes them in errors) so that the tests show the
// server, not the backend, keeps them off the wire.
type fakeBackend struct {
	mu       sync.Mutex
	cams     map[string]*fakeCam
	conn     ConnectionUpdate
	mqttPass string
	fluPass  string
	scans    int
	snapshot []byte
	// testErr, when set, fails TestStream with a message quoting the URL with its password.
	testErr bool
}

type fakeCam struct {
	Camera
	password string
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		cams: map[string]*fakeCam{
			"cam-a0b1c2d3e4f5": {Camera: Camera{
				CameraID: "cam-a0b1c2d3e4f5", Name: "Hikvision DS-2CD2043", Vendor: "HIKVISION",
				Model: "DS-2CD2043G2-I", IP: "192.168.1.64", URL: "http://192.168.1.64/onvif/device_service",
				State: CameraDiscovered, NeedsCredentials: true,
			}},
		},
		snapshot: []byte("\xff\xd8\xff\xe0fake jpeg\xff\xd9"),
	}
}

func (f *fakeBackend) Status(ctx context.Context) GatewayStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := GatewayStatus{
		GatewayID:     "gw-test",
		UptimeSeconds: 42,
		MQTT:          Link{State: LinkUp},
		Flussonic:     Link{State: LinkDown, LastError: "connection refused"},
	}
	for _, c := range f.cams {
		if c.State == CameraAdded {
			st.Cameras++
		}
	}
	return st
}

func (f *fakeBackend) Cameras(ctx context.Context) []Camera {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Camera
	for _, c := range f.cams {
		out = append(out, c.Camera)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CameraID < out[j].CameraID })
	return out
}

func (f *fakeBackend) AddCamera(ctx context.Context, req AddCamera) (Camera, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var c *fakeCam
	if req.CameraID != "" {
		c = f.cams[req.CameraID]
		if c == nil {
			return Camera{}, fmt.Errorf("camera %q: %w", req.CameraID, ErrNotFound)
		}
	} else {
		id := fmt.Sprintf("cam%d", len(f.cams))
		// Careless on purpose: the URL keeps the credentials.
		u := req.URL
		if req.Username != "" {
			u = "rtsp://" + req.Username + ":" + req.Password + "@" + u[len("rtsp://"):]
		}
		c = &fakeCam{Camera: Camera{CameraID: id, URL: u, IP: "10.0.0.20"}}
		f.cams[id] = c
	}
	c.State, c.Enabled, c.AgentID, c.NeedsCredentials = CameraAdded, true, "1234567890", false
	c.Name = req.Name
	c.Username, c.password = req.Username, req.Password
	c.HasSnapshot = true
	return c.Camera, nil
}

func (f *fakeBackend) UpdateCamera(ctx context.Context, id string, p CameraPatch) (Camera, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cams[id]
	if c == nil || c.State != CameraAdded {
		return Camera{}, fmt.Errorf("camera %q: %w", id, ErrNotFound)
	}
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.Enabled != nil {
		c.Enabled = *p.Enabled
	}
	if p.Password != nil {
		c.password = *p.Password
	}
	return c.Camera, nil
}

func (f *fakeBackend) RemoveCamera(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cams[id]; !ok {
		return fmt.Errorf("camera %q: %w", id, ErrNotFound)
	}
	delete(f.cams, id)
	return nil
}

func (f *fakeBackend) Snapshot(ctx context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.cams[id]; c == nil || !c.HasSnapshot {
		return nil, fmt.Errorf("snapshot of %q: %w", id, ErrNotFound)
	}
	return f.snapshot, nil
}

func (f *fakeBackend) Discover(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scans++
	return nil
}

func (f *fakeBackend) TestStream(ctx context.Context, url, username, password string) (StreamInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.testErr {
		return StreamInfo{}, fmt.Errorf("rtsp://%s:%s@%s: 401 Unauthorized", username, password, url[len("rtsp://"):])
	}
	if password == "refused" {
		return StreamInfo{}, fmt.Errorf("describe %s: %w", url, ErrCameraUnauthorized)
	}
	return StreamInfo{Tracks: []Track{{Kind: "video", Codec: "H264", Width: 1920, Height: 1080}}, BitrateBPS: 2e6}, nil
}

func (f *fakeBackend) Connection(ctx context.Context) Connection {
	f.mu.Lock()
	defer f.mu.Unlock()
	var c Connection
	if m := f.conn.MQTT; m != nil {
		// Careless on purpose: the broker URL keeps the credentials.
		c.MQTT = MQTTConnection{URL: m.URL, Username: m.Username, PasswordSet: f.mqttPass != "", TopicPrefix: m.TopicPrefix}
		if f.mqttPass != "" {
			c.MQTT.URL = "mqtts://" + m.Username + ":" + f.mqttPass + "@sc.example.com:8883"
		}
	}
	if fl := f.conn.Flussonic; fl != nil {
		c.Flussonic = FlussonicConnection{
			Publish:     fl.Publish,
			Username:    fl.Username,
			PasswordSet: f.fluPass != "",
			StreamName:  fl.StreamName,
		}
		if fl.Events != nil {
			c.Flussonic.Events = *fl.Events
		}
	}
	return c
}

func (f *fakeBackend) SetConnection(ctx context.Context, c ConnectionUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.MQTT != nil {
		if c.MQTT.URL == "mqtt://reject.example" {
			return errors.New("broker refused user " + c.MQTT.Username + " with password " + c.MQTT.Password)
		}
		if c.MQTT.Password != "" {
			f.mqttPass = c.MQTT.Password
		}
		f.conn.MQTT = c.MQTT
	}
	if c.Flussonic != nil {
		if c.Flussonic.Password != "" {
			f.fluPass = c.Flussonic.Password
		}
		f.conn.Flussonic = c.Flussonic
	}
	return nil
}
