package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/onvif"
	"github.com/camgate/camgate/rtsp"
)

// onvifLink is the agent's hold on a camera whose stream it must find: for an ONVIF camera its
// client, what Inventory found and the event loop turning its events into motion; for a camera
// given only by address, the stream path probing found. It runs while the camera is enabled.
type onvifLink struct {
	key    string // URL, credentials and substream: a change restarts the link
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	client *onvif.Client
	dev    *onvif.Device // nil until Inventory succeeded
	stream string        // the RTSP URL chosen (main or sub stream)
	err    string        // why resolution fails, in words
}

// setErr records why resolution fails and tells whether that is news.
func (l *onvifLink) setErr(msg string) (changed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed = l.err != msg
	l.err = msg
	return changed
}

func (l *onvifLink) state() (dev *onvif.Device, client *onvif.Client, stream, err string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dev, l.client, l.stream, l.err
}

func isONVIFURL(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")
}

// needsPathProbe tells a camera given only as rtsp://host[:port]: its stream path is found by
// trying the common vendors' paths (rtsp.FindStream).
func needsPathProbe(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "rtsp" && (u.Path == "" || u.Path == "/") && u.RawQuery == ""
}

// needsResolving tells a camera whose stream URL the agent has to find before relaying it: an
// ONVIF device, or an address without a stream path.
func needsResolving(raw string) bool { return isONVIFURL(raw) || needsPathProbe(raw) }

func onvifKey(c CameraConfig) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%v", c.URL, c.Username, c.Password, c.Substream)
}

// ensureONVIFLocked starts, restarts or stops the camera's ONVIF link to match its settings.
func (a *Agent) ensureONVIFLocked(ctx context.Context, e *cameraEntry) {
	want := e.conf.Enabled && needsResolving(e.conf.URL) && e.origin != originDiscovered
	if e.onvif != nil && (!want || e.onvif.key != onvifKey(e.conf)) {
		e.onvif.cancel()
		e.onvif = nil
	}
	if !want || e.onvif != nil {
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	l := &onvifLink{key: onvifKey(e.conf), cancel: cancel, done: make(chan struct{})}
	e.onvif = l
	go func() {
		defer close(l.done)
		if needsPathProbe(e.conf.URL) {
			a.runPathProbe(lctx, e.id, e.conf, l)
			return
		}
		a.runONVIF(lctx, e.id, e.conf, l)
	}()
}

// runONVIF resolves the camera's stream with Inventory (retrying with backoff: a camera may be
// booting), then follows its events until ctx ends.
func (a *Agent) runONVIF(ctx context.Context, id string, conf CameraConfig, l *onvifLink) {
	log := a.log.With("camera_id", id, "onvif", conf.URL)
	client, err := onvif.NewClient(onvif.ClientConfig{XAddr: conf.URL, Username: conf.Username, Password: conf.Password, Logger: log})
	if err != nil {
		l.setErr("ONVIF: " + err.Error())
		a.requestReconcile()
		return
	}
	delay := 2 * time.Second
	for {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		dev, err := onvif.Inventory(ictx, client)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			stream := dev.MainStream
			if conf.Substream && dev.SubStream != "" {
				stream = dev.SubStream
			}
			if stream != "" {
				l.mu.Lock()
				l.client, l.dev, l.stream, l.err = client, &dev, stream, ""
				l.mu.Unlock()
				log.Info("ONVIF camera resolved", "vendor", dev.Manufacturer, "model", dev.Model, "stream", redactURL(stream), "events", dev.HasEvents, "clock_offset", dev.ClockOffset.Round(time.Second))
				a.requestReconcile()
				break
			}
			err = errors.New("the device reported no RTSP stream")
		}
		msg := "ONVIF: " + err.Error()
		if errors.Is(err, onvif.ErrUnauthorized) {
			msg += ": check the camera's username and password"
		}
		if l.setErr(msg) {
			log.Warn("ONVIF camera not resolved, will retry", "err", err, "retry_in", delay)
			a.requestReconcile()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay + mrand.N(delay/2)):
		}
		delay = min(delay*2, 5*time.Minute)
	}
	dev, _, _, _ := l.state()
	if !dev.HasEvents {
		return
	}
	a.followEvents(ctx, id, client, log)
}

// followEvents turns the camera's ONVIF events into motion: PullPoint when the camera has it,
// else Basic Notification, the camera posting to the gateway (Home Assistant's order too).
func (a *Agent) followEvents(ctx context.Context, id string, client *onvif.Client, log *slog.Logger) {
	// A short probe subscription tells whether PullPoint exists; it is left to expire, never
	// unsubscribed (some cameras drop every subscription on Unsubscribe).
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := client.CreatePullPointSubscription(pctx, 10*time.Second)
	cancel()
	var notes <-chan onvif.Notification
	var wg sync.WaitGroup
	defer wg.Wait()
	switch {
	case errors.Is(err, onvif.ErrNotSupported):
		rcv, consumer, stop, err := a.notifyEndpoint(id, client.XAddr())
		if err != nil {
			log.Warn("ONVIF events unavailable: the camera has no PullPoint and cannot post to us", "err", err)
			return
		}
		defer stop()
		bn, err := onvif.NewBasicNotification(onvif.BasicNotificationConfig{Client: client, Consumer: consumer, Logger: log.With("part", "basic-notification")})
		if err != nil {
			log.Warn("ONVIF events unavailable", "err", err)
			return
		}
		log.Info("ONVIF events by Basic Notification (no PullPoint)", "consumer", consumer)
		wg.Add(1)
		go func() { defer wg.Done(); bn.Run(ctx) }()
		notes = rcv.Notifications()
	default:
		// Other probe errors (a camera busy booting) are left to the PullPoint loop's retries.
		pp, err := onvif.NewPullPoint(onvif.PullPointConfig{Client: client, Logger: log.With("part", "pullpoint")})
		if err != nil {
			log.Warn("ONVIF events unavailable", "err", err)
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); pp.Run(ctx) }()
		notes = pp.Notifications()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-notes:
			if !ok {
				return
			}
			if on, isMotion := n.Motion(); isMotion {
				a.Motion(ctx, id, sourceONVIF, "onvif: "+n.Topic, on)
			}
		}
	}
}

// notifyRoutes maps the unguessable paths given to cameras to their receivers.
type notifyRoutes struct {
	mu     sync.Mutex
	routes map[string]*onvif.NotifyReceiver
}

// ServeHTTP hands a camera's POST to the receiver its path names; any other path is a 404, so
// a LAN device cannot inject motion without the token.
func (n *notifyRoutes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	rcv := n.routes[r.URL.Path]
	n.mu.Unlock()
	if rcv == nil {
		http.NotFound(w, r)
		return
	}
	rcv.ServeHTTP(w, r)
}

// notifyEndpoint registers a receiver for one camera and returns the URL the camera should post
// to: the gateway's address as the camera reaches it, the pairing page's port.
func (a *Agent) notifyEndpoint(id, xaddr string) (*onvif.NotifyReceiver, string, func(), error) {
	webAddr := a.WebAddr()
	if webAddr == "" {
		return nil, "", nil, errors.New("web.listen is off, and the camera's notifications arrive there")
	}
	_, port, err := net.SplitHostPort(webAddr)
	if err != nil {
		return nil, "", nil, err
	}
	local, err := onvif.LocalAddrFor(xaddr)
	if err != nil {
		return nil, "", nil, err
	}
	path := "/onvif/notify/" + id + "/" + rand.Text()
	rcv := onvif.NewNotifyReceiver(a.log.With("camera_id", id))
	a.notify.mu.Lock()
	a.notify.routes[path] = rcv
	a.notify.mu.Unlock()
	stop := func() {
		a.notify.mu.Lock()
		delete(a.notify.routes, path)
		a.notify.mu.Unlock()
	}
	return rcv, "http://" + net.JoinHostPort(local.String(), port) + path, stop, nil
}

// runPathProbe finds the stream of a camera given only by its address, retrying with backoff
// (the camera may be booting); wrong credentials are reported in words and retried slowly, since
// cameras lock accounts after repeated failures.
func (a *Agent) runPathProbe(ctx context.Context, id string, conf CameraConfig, l *onvifLink) {
	log := a.log.With("camera_id", id, "base", redactURL(conf.URL))
	delay := 5 * time.Second
	for {
		res, err := rtsp.FindStream(ctx, conf.URL, conf.Username, conf.Password, rtsp.FindStreamOptions{Logger: log, Auth: conf.Auth})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			l.mu.Lock()
			l.stream, l.err = res.URL, ""
			l.mu.Unlock()
			log.Info("stream path found", "stream", res.URL, "vendor", res.Vendor)
			a.requestReconcile()
			return
		}
		if l.setErr(err.Error()) {
			log.Warn("no stream path found, will retry", "err", err, "retry_in", delay)
			a.requestReconcile()
		}
		if errors.Is(err, rtsp.ErrCredentialsRefused) {
			delay = max(delay, rtsp.PasswordRetry) // cameras lock accounts (issue 18)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay + mrand.N(delay/2)):
		}
		delay = min(delay*2, 10*time.Minute)
	}
}

// onvifFor returns the ONVIF client and device of a camera, once resolved.
func (a *Agent) onvifFor(id string) (*onvif.Client, *onvif.Device, error) {
	a.mu.Lock()
	e, ok := a.cameras[id]
	var l *onvifLink
	if ok {
		l = e.onvif
	}
	a.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownCamera, id)
	}
	if l == nil {
		return nil, nil, fmt.Errorf("camera %s is not an enabled ONVIF camera with credentials", id)
	}
	dev, client, _, errText := l.state()
	if dev == nil {
		if errText == "" {
			errText = "not resolved yet"
		}
		return nil, nil, fmt.Errorf("camera %s: %s", id, errText)
	}
	return client, dev, nil
}

// TakeSnapshot fetches a fresh JPEG from an ONVIF camera and keeps it as its latest snapshot
// (published retained on MQTT).
func (a *Agent) TakeSnapshot(ctx context.Context, id string) ([]byte, error) {
	client, dev, err := a.onvifFor(id)
	if err != nil {
		if b, ok := a.Snapshot(id); ok {
			return b, nil // a mail camera: its latest alarm snapshot is the best there is
		}
		return nil, err
	}
	if dev.SnapshotURI == "" {
		return nil, fmt.Errorf("camera %s offers no ONVIF snapshot", id)
	}
	b, err := client.Snapshot(ctx, dev.SnapshotURI)
	if err != nil {
		return nil, fmt.Errorf("camera %s: snapshot: %w", id, err)
	}
	a.keepSnapshot(ctx, id, b)
	return b, nil
}

// PTZRequest moves a PTZ camera: action "move" (velocities -1..1, stopping by itself after
// timeout_ms), "stop", or "preset".
type PTZRequest struct {
	Action    string  `json:"action"`
	Pan       float64 `json:"pan"`
	Tilt      float64 `json:"tilt"`
	Zoom      float64 `json:"zoom"`
	TimeoutMs int     `json:"timeout_ms"`
	Preset    string  `json:"preset"`
}

// PTZ runs one PTZ request on the camera's main profile.
func (a *Agent) PTZ(ctx context.Context, id string, r PTZRequest) error {
	client, dev, err := a.onvifFor(id)
	if err != nil {
		return err
	}
	if !dev.HasPTZ || len(dev.Profiles) == 0 {
		return fmt.Errorf("camera %s has no PTZ", id)
	}
	token := dev.Profiles[0].Token
	for _, p := range dev.Profiles {
		if p.HasPTZ {
			token = p.Token
			break
		}
	}
	switch r.Action {
	case "move":
		for _, v := range []float64{r.Pan, r.Tilt, r.Zoom} {
			if v < -1 || v > 1 {
				return fmt.Errorf("ptz: pan, tilt and zoom are velocities from -1 to 1")
			}
		}
		timeout := time.Duration(r.TimeoutMs) * time.Millisecond
		if timeout <= 0 || timeout > time.Minute {
			timeout = time.Second // a lost stop must not leave the camera turning
		}
		return client.ContinuousMove(ctx, token, r.Pan, r.Tilt, r.Zoom, timeout)
	case "stop":
		return client.Stop(ctx, token)
	case "preset":
		if r.Preset == "" {
			return errors.New("ptz: preset needs a preset token")
		}
		return client.GotoPreset(ctx, token, r.Preset)
	}
	return fmt.Errorf("ptz: action must be move, stop or preset, not %q", r.Action)
}
