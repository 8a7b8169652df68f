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

	"github.com/camgate/camgate/motion"
	"github.com/camgate/camgate/onvif"
	"github.com/camgate/camgate/rtsp"
)

// streamResolver finds the stream of a camera that was not given as a stream URL: for an ONVIF
// camera its client asks Inventory (and then follows the camera's events into motion); for a
// camera given only by address, stream paths are probed. It runs while the camera is enabled and
// reports to the loop (streamResolved); it keeps no state others read.
type streamResolver struct {
	key    string // URL, credentials and substream: a change restarts the resolver
	cancel context.CancelFunc
	done   chan struct{}
}

// resolution is what a resolver found, as the loop and the view keep it.
type resolution struct {
	client *onvif.Client // safe for concurrent use; set once the device answered
	dev    *onvif.Device // nil until Inventory succeeded
	stream string        // the RTSP URL chosen (main or sub stream)
	err    string        // why resolution fails, in words
}

// streamResolved is a resolver's news for the loop.
type streamResolved struct {
	id       string
	resolver *streamResolver
	res      resolution
}

func (q streamResolved) serve(r *registry) result {
	e, ok := r.cameras[q.id]
	if !ok || e.resolver != q.resolver {
		return result{} // the camera was removed or changed meanwhile
	}
	e.resolved = q.res
	r.reconcile()
	return result{}
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

// ensureResolver starts, restarts or stops the camera's stream resolver to match its settings.
func (r *registry) ensureResolver(e *cameraEntry) {
	want := e.conf.Enabled && needsResolving(e.conf.URL) && e.origin != originDiscovered
	if e.resolver != nil && (!want || e.resolver.key != onvifKey(e.conf)) {
		r.stopResolver(e)
	}
	if !want || e.resolver != nil {
		return
	}
	lctx, cancel := context.WithCancel(r.ctx)
	res := &streamResolver{key: onvifKey(e.conf), cancel: cancel, done: make(chan struct{})}
	e.resolver, e.resolved = res, resolution{}
	a, id, conf, show := r.a, e.id, e.conf, shownError(e.origin)
	report := func(v resolution) { a.tell(streamResolved{id: id, resolver: res, res: v}) }
	go func() {
		defer close(res.done)
		if needsPathProbe(conf.URL) {
			a.runPathProbe(lctx, id, conf, show, report)
			return
		}
		a.runONVIF(lctx, id, conf, show, report)
	}()
}

// stopResolver asks the camera's resolver to stop; its goroutine ends on its own.
func (r *registry) stopResolver(e *cameraEntry) {
	if e.resolver == nil {
		return
	}
	e.resolver.cancel()
	res, id := e.resolver, e.id
	r.resolves[res] = id
	go func() { <-res.done; r.a.tell(resolverStopped{resolver: res}) }()
	e.resolver, e.resolved = nil, resolution{}
}

// resolverStopped says a stopped resolver's goroutine has ended.
type resolverStopped struct{ resolver *streamResolver }

func (q resolverStopped) serve(r *registry) result {
	delete(r.resolves, q.resolver)
	return result{}
}

// runONVIF resolves the camera's stream with Inventory (retrying with backoff: a camera may be
// booting), then follows its events until ctx ends.
func (a *Agent) runONVIF(ctx context.Context, id string, conf CameraConfig, show func(error) error,
	report func(resolution)) {
	log := a.log.With("camera_id", id, "onvif", redactURL(conf.URL))
	client, err := onvif.NewClient(onvif.ClientConfig{XAddr: conf.URL, Username: conf.Username,
		Password: conf.Password, AllowBasic: conf.Auth == "basic", Logger: log})
	if err != nil {
		report(resolution{err: "ONVIF: " + err.Error()})
		return
	}
	delay := 2 * time.Second
	lastErr := ""
	var dev onvif.Device
	for {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		dev, err = onvif.Inventory(ictx, client)
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
				found := dev
				report(resolution{client: client, dev: &found, stream: stream})
				log.Info("ONVIF camera resolved", "vendor", dev.Manufacturer, "model", dev.Model, "stream", redactURL(stream),
					"events", dev.HasEvents, "clock_offset", dev.ClockOffset.Round(time.Second))
				break
			}
			err = errors.New("the device reported no RTSP stream")
		}
		msg := "ONVIF: " + errorText(show, err)
		if errors.Is(err, onvif.ErrUnauthorized) {
			msg += ": check the camera's username and password"
		}
		if msg != lastErr {
			lastErr = msg
			log.Warn("ONVIF camera not resolved, will retry", "err", err, "retry_in", delay)
			report(resolution{err: msg})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay + mrand.N(delay/2)):
		}
		delay = min(delay*2, 5*time.Minute)
	}
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
		bn, err := onvif.NewBasicNotification(onvif.BasicNotificationConfig{Client: client, Consumer: consumer,
			Logger: log.With("part", "basic-notification")})
		if err != nil {
			log.Warn("ONVIF events unavailable", "err", err)
			return
		}
		log.Info("ONVIF events by Basic Notification (no PullPoint)", "consumer", consumer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := bn.Run(ctx); err != nil && ctx.Err() == nil {
				log.Warn("ONVIF Basic Notification stopped", "err", err)
			}
		}()
		notes = rcv.Notifications()
	default:
		// Other probe errors (a camera busy booting) are left to the PullPoint loop's retries.
		pp, err := onvif.NewPullPoint(onvif.PullPointConfig{Client: client, Logger: log.With("part", "pullpoint")})
		if err != nil {
			log.Warn("ONVIF events unavailable", "err", err)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pp.Run(ctx); err != nil && ctx.Err() == nil {
				log.Warn("ONVIF PullPoint stopped", "err", err)
			}
		}()
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
				if err := a.motion.report(ctx, id, motion.SourceONVIF, "onvif: "+n.Topic, on); err != nil {
					log.Error("ONVIF motion not recorded", "err", err)
				}
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
func (a *Agent) runPathProbe(ctx context.Context, id string, conf CameraConfig, show func(error) error,
	report func(resolution)) {
	log := a.log.With("camera_id", id, "base", redactURL(conf.URL))
	delay := 5 * time.Second
	lastErr := ""
	for {
		res, err := rtsp.FindStream(ctx, conf.URL, conf.Username, conf.Password,
			rtsp.FindStreamOptions{Logger: log, Auth: conf.Auth})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			log.Info("stream path found", "stream", res.URL, "vendor", res.Vendor)
			report(resolution{stream: res.URL})
			return
		}
		if msg := errorText(show, err); msg != lastErr {
			lastErr = msg
			log.Warn("no stream path found, will retry", "err", err, "retry_in", delay)
			report(resolution{err: msg})
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
	c, ok := a.view.Load().camera(id)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownCamera, id)
	}
	if !c.hasRes {
		return nil, nil, fmt.Errorf("camera %s is not an enabled ONVIF camera with credentials", id)
	}
	if c.onvif.dev == nil || c.onvif.client == nil {
		errText := c.onvif.err
		if errText == "" {
			errText = "not resolved yet"
		}
		return nil, nil, fmt.Errorf("camera %s: %s", id, errText)
	}
	return c.onvif.client, c.onvif.dev, nil
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
	if err := a.keepSnapshot(ctx, id, b); err != nil {
		// The caller still gets the picture; only its retained MQTT copy is missing.
		a.log.Warn("snapshot not queued for MQTT", "camera_id", id, "err", err)
	}
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
