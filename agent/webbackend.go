package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/agent/web"
	"github.com/camgate/camgate/onvif"
	"github.com/camgate/camgate/rtsp"
	"github.com/camgate/camgate/uplink"
)

// webBackend is the agent as the pairing page sees it.
type webBackend struct{ a *Agent }

var _ web.Backend = webBackend{}

func webError(err error) error {
	var re *RequestError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re) && isTargetRefused(err):
		return &web.BadRequestError{Field: re.Field, Code: web.CodeCameraAddress, Reason: re.Reason}
	case errors.As(err, &re):
		return &web.BadRequestError{Field: re.Field, Reason: re.Reason}
	case errors.Is(err, ErrUnknownCamera):
		return fmt.Errorf("%w: %w", web.ErrNotFound, err)
	case errors.Is(err, ErrCameraExists):
		return fmt.Errorf("%w: %w", web.ErrExists, err)
	case isPasswordRefused(err):
		// The page says so in its own language (code camera_unauthorized), not in ours.
		return fmt.Errorf("%w: %w", web.ErrCameraUnauthorized, err)
	}
	return err
}

// isPasswordRefused says whether err means the camera refused the user name or password, over
// RTSP or ONVIF.
func isPasswordRefused(err error) bool {
	var pr *rtsp.PasswordRefusedError
	return errors.As(err, &pr) || errors.Is(err, onvif.ErrUnauthorized)
}

func (b webBackend) Status(ctx context.Context) web.GatewayStatus {
	a := b.a
	cfg := a.config()
	st := web.GatewayStatus{GatewayID: cfg.GatewayID, Version: a.opts.Version, UptimeSeconds: int64(a.uptime().Seconds())}
	link := a.link.Load()
	switch {
	case cfg.MQTT.URL == "":
		st.MQTT.State = web.LinkUnconfigured
	case link != nil && link.mqtt != nil && link.mqtt.Connected():
		st.MQTT.State = web.LinkUp
	case link != nil && link.mqtt != nil:
		st.MQTT = web.Link{State: web.LinkConnecting, LastError: link.mqtt.LastError()}
		if st.MQTT.LastError != "" {
			st.MQTT.State = web.LinkDown
		}
	default:
		st.MQTT = web.Link{State: web.LinkDown, LastError: "the MQTT client could not be started: see the log"}
	}
	enabled, failing, apiProblem := 0, "", ""
	for _, c := range a.Cameras() {
		if c.Origin != originDiscovered {
			st.Cameras++
		}
		if c.Relay.Relaying {
			st.Relaying++
		}
		if c.Enabled && c.Origin != originDiscovered {
			enabled++
			if strings.HasPrefix(c.Relay.LastError, "upstream") {
				failing = c.Relay.LastError
			}
			if apiProblem == "" && strings.HasPrefix(c.Problem, uplink.StreamSetupErrorPrefix) {
				apiProblem = c.Problem
			}
		}
	}
	switch {
	case cfg.Flussonic.Publish == "":
		st.Flussonic.State = web.LinkUnconfigured
	case st.Relaying > 0:
		st.Flussonic.State = web.LinkUp
	case failing != "":
		st.Flussonic = web.Link{State: web.LinkDown, LastError: failing}
	case enabled > 0:
		st.Flussonic.State = web.LinkConnecting
	default:
		st.Flussonic.State = web.LinkUp // nothing to publish, nothing failing
	}
	if st.Flussonic.LastError == "" {
		st.Flussonic.LastError = apiProblem // relaying may run while flussonic.api refuses
	}
	ob := a.db.Outbox().Stats()
	st.OutboxDepth, st.OutboxBytes, st.OutboxDrops = ob.Depth, ob.Bytes, ob.DroppedEvents+ob.DroppedTelemetry
	st.SMTP = a.smtpLoginStatus()
	return st
}

func (b webBackend) Cameras(ctx context.Context) []web.Camera {
	var out []web.Camera
	for _, c := range b.a.Cameras() {
		out = append(out, b.webCamera(c))
	}
	return out
}

func (b webBackend) webCamera(c CameraStatus) web.Camera {
	w := web.Camera{
		CameraID: c.ID, AgentID: c.AgentID, Name: c.Name, Vendor: c.Device.Vendor, Model: c.Device.Model,
		Serial: c.Device.Serial, MAC: c.Device.MAC, IP: c.Device.IP, URL: c.URL, ONVIF: c.Device.ONVIF,
		StreamName: c.StreamName, PlayURL: c.PlayURL, State: web.CameraAdded, Enabled: c.Enabled, Audio: c.Audio,
		Relaying: c.Relay.Relaying, Online: c.Relay.Online, Codec: c.Relay.Codec, Width: c.Relay.Width,
		Height: c.Relay.Height, FPS: c.Relay.FPS, BitrateBPS: c.Relay.BitrateBps, LastError: c.Relay.LastError,
		Username: c.Username, MovedTo: redactURL(c.MovedTo), Quality: c.Relay.Quality, UplinkBPS: c.Relay.UplinkBps,
	}
	if w.LastError == "" {
		w.LastError = c.Problem
	}
	if c.Origin == originDiscovered {
		w.State, w.NeedsCredentials, w.AgentID, w.Enabled = web.CameraDiscovered, true, "", false
		w.PlayURL = "" // nothing plays there until the camera is added
	}
	_, w.HasSnapshot = b.a.Snapshot(c.ID)
	if !w.HasSnapshot && c.Device.SnapshotURI != "" {
		w.HasSnapshot = true // fetched from the camera on demand
	}
	return w
}

func (b webBackend) AddCamera(ctx context.Context, req web.AddCamera) (web.Camera, error) {
	r := CameraRequest{CameraID: req.CameraID, Audio: req.Audio, Substream: req.Substream}
	if req.URL != "" {
		r.URL = &req.URL
	}
	if req.Name != "" {
		r.Name = &req.Name
	}
	if req.Username != "" || req.Password != "" {
		r.Username, r.Password = &req.Username, &req.Password
	}
	c, err := b.a.AddCamera(ctx, r)
	if err != nil {
		return web.Camera{}, webError(err)
	}
	return b.webCamera(c), nil
}

func (b webBackend) UpdateCamera(ctx context.Context, id string, p web.CameraPatch) (web.Camera, error) {
	r := CameraRequest{Name: p.Name, Enabled: p.Enabled, Audio: p.Audio, Substream: p.Substream,
		Username: p.Username, Password: p.Password, StreamName: p.StreamName, URL: p.URL}
	if r.Password != nil && *r.Password == "" {
		r.Password = nil // write-only: empty keeps the stored one
	}
	c, notice, err := b.a.setCamera(ctx, id, r)
	if err != nil {
		return web.Camera{}, webError(err)
	}
	w := b.webCamera(c)
	w.Notice, w.PasswordCleared = notice, notice == NoticePasswordCleared
	return w, nil
}

func (b webBackend) RemoveCamera(ctx context.Context, id string) error {
	return webError(b.a.RemoveCamera(ctx, id))
}

func (b webBackend) Snapshot(ctx context.Context, id string) ([]byte, error) {
	if jpeg, ok := b.a.freshSnapshot(id, 10*time.Second); ok {
		return jpeg, nil
	}
	jpeg, err := b.a.TakeSnapshot(ctx, id)
	if err != nil {
		if old, ok := b.a.Snapshot(id); ok {
			return old, nil
		}
		return nil, fmt.Errorf("%w: %w", web.ErrNotFound, err)
	}
	return jpeg, nil
}

func (b webBackend) Discover(ctx context.Context) error {
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := b.a.DiscoverNow(ctx, 3*time.Second); err != nil {
			b.a.log.Warn("discovery from the page failed", "err", err)
		}
		b.a.tell(reconcileRequest{})
	}()
	return nil
}

// TestStream probes what the owner typed, as `camgate probe` would: an ONVIF device is asked
// for its main stream first.
func (b webBackend) TestStream(ctx context.Context, streamURL, username, password string) (web.StreamInfo, error) {
	info, err := b.testStream(ctx, streamURL, username, password)
	return info, webError(err)
}

func (b webBackend) testStream(ctx context.Context, streamURL, username, password string) (web.StreamInfo, error) {
	if rest, ok := strings.CutPrefix(streamURL, "onvif://"); ok { // as `camgate probe` takes it
		streamURL = "http://" + strings.TrimSuffix(rest, "/") + "/onvif/device_service"
	}
	if err := b.a.checkCameraURL(streamURL); err != nil {
		return web.StreamInfo{}, err
	}
	auth := b.a.authMarkOf(streamURL)
	target := streamURL
	if isONVIFURL(streamURL) {
		c, err := onvif.NewClient(onvif.ClientConfig{XAddr: streamURL, Username: username, Password: password,
			AllowBasic: auth == "basic"})
		if err != nil {
			return web.StreamInfo{}, err
		}
		dev, err := onvif.Inventory(ctx, c)
		if err != nil {
			return web.StreamInfo{}, hideProbeError(err)
		}
		if dev.MainStream == "" {
			return web.StreamInfo{}, errors.New("the camera answered ONVIF but reported no RTSP stream")
		}
		target = dev.MainStream
		if !sameHost(streamURL, target) {
			// The password was given for the device's host; a stream elsewhere is tried without it.
			b.a.log.Warn("test stream: the ONVIF device names a stream on another host: probed without the password",
				"device", redactURL(streamURL), "stream", redactURL(target))
			username, password = "", ""
		}
		if err := b.a.checkCameraURL(target); err != nil {
			return web.StreamInfo{}, err
		}
	} else if needsPathProbe(streamURL) {
		found, err := rtsp.FindStream(ctx, streamURL, username, password,
			rtsp.FindStreamOptions{Logger: b.a.log, Auth: auth})
		if err != nil {
			return web.StreamInfo{}, hideProbeError(err)
		}
		target = found.URL
	}
	res, err := rtsp.ProbeWith(ctx, target, rtsp.ProbeOptions{Username: username, Password: password, Auth: auth},
		3*time.Second)
	if err != nil {
		return web.StreamInfo{}, hideProbeError(err)
	}
	var info web.StreamInfo
	for _, t := range res.Tracks {
		info.Tracks = append(info.Tracks, web.Track{Kind: t.Type, Codec: t.Codec, Width: t.Width, Height: t.Height,
			FPS: t.FPS, SampleRate: t.ClockRate})
		info.BitrateBPS += t.BitrateBps
	}
	return info, nil
}

func (b webBackend) Connection(ctx context.Context) web.Connection {
	cfg := b.a.config()
	pub, user, hasPass := splitUserinfo(cfg.Flussonic.Publish)
	c := web.Connection{
		MQTT: web.MQTTConnection{URL: redactURL(cfg.MQTT.URL), Username: cfg.MQTT.Username,
			PasswordSet: cfg.MQTT.Password != "", TopicPrefix: cfg.MQTT.TopicPrefix},
		Flussonic: web.FlussonicConnection{Publish: pub, Username: user, PasswordSet: hasPass,
			StreamName: cfg.Flussonic.StreamName, Events: []web.EventSink{}},
	}
	for _, s := range cfg.Flussonic.Events {
		clean, u, _ := splitUserinfo(s.URL)
		c.Flussonic.Events = append(c.Flussonic.Events, web.EventSink{URL: joinUserinfo(clean, u, ""), Format: s.Format})
	}
	return c
}

func (b webBackend) SetConnection(ctx context.Context, u web.ConnectionUpdate) error {
	_, err := b.SetConnectionNoticed(ctx, u)
	return err
}

// SetConnectionNoticed is SetConnection that also says which stored secrets a change of host
// dropped.
func (b webBackend) SetConnectionNoticed(ctx context.Context, u web.ConnectionUpdate) ([]string, error) {
	res, err := b.a.ask(ctx, connectionRequest{update: u})
	if err != nil || res.notice == "" {
		return nil, webError(err)
	}
	return strings.Split(res.notice, "; "), nil
}

func storedPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// startWeb serves the pairing page when web.listen is set.
func (a *Agent) startWeb(ctx context.Context, cfg *Config, wg *sync.WaitGroup) error {
	if cfg.Web.Listen == "" {
		return nil
	}
	srv, err := web.NewServer(web.Config{
		Addr: cfg.Web.Listen, Allow: cfg.Web.Allow, Code: newPairCodeReader(cfg.DataDir).Code, Backend: webBackend{a},
		Metrics: a.WritePrometheus, Notify: a.notify, Version: a.opts.Version, Logger: a.log.With("part", "web"),
	})
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	if err := srv.Listen(ctx); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	addr := srv.Addr().String()
	a.webAddr.Store(&addr)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Run(ctx); err != nil {
			a.log.Error("pairing page stopped", "err", err)
		}
	}()
	return nil
}

// WebAddr is the pairing page's listening address, "" when it is off.
func (a *Agent) WebAddr() string {
	if p := a.webAddr.Load(); p != nil {
		return *p
	}
	return ""
}
