package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/onvif"
	"github.com/camgate/camgate/rtsp"
	"github.com/camgate/camgate/store"
)

// Options are what the command line hands the agent besides the config.
type Options struct {
	Logger   *slog.Logger
	LogLevel *slog.LevelVar      // set from log.level, also on reload; may be nil
	Reload   <-chan struct{}     // a value asks for the config file to be read again (SIGHUP)
	Getenv   func(string) string // nil = os.Getenv
	Version  string              // reported in status and telemetry
	Ready    func(a *Agent)      // called once everything is listening; may be nil
}

// Agent runs one gateway: its cameras' relays and, as they are wired, discovery, motion and the
// uplink. Build it with New and start it with Run.
type Agent struct {
	log     *slog.Logger
	opts    Options
	started time.Time

	mu       sync.Mutex
	loaded   Loaded
	db       *store.DB
	cameras  map[string]*cameraEntry     // by camera_id
	agentIDs map[string]string           // camera_id -> agent_id, persisted
	link     atomic.Pointer[uplinkParts] // MQTT and event sinks; swapped when the page changes them
	runCtx   context.Context             // lives as long as Run; relays started later hang off it
	motion   *motionTracker
	snaps    *snapshots
	kick     chan struct{} // asks Run's loop to reconcile, from goroutines that must not block on a.mu

	linkRun    *uplinkRun             // the running MQTT client and event sinks
	found      map[string]*discovered // by endpoint reference; guarded by mu
	discoverer *onvif.Discoverer      // nil when discovery.onvif is off
	webAddr    string                 // where the pairing page listens, once it does
	notify     *notifyRoutes          // cameras' ONVIF notification endpoints on the page's server
	pacer      *rtsp.Pacer            // shared by every relay: one wake-up a period for all cameras
	cache      *rtsp.CacheBudget      // relay.cache_bytes, shared by every relay's GOP cache
}

// cameraEntry is one camera as the agent wants it (conf) and as it runs (relay).
type cameraEntry struct {
	id      string
	agentID string
	origin  string // originConfig or originAdded
	conf    CameraConfig
	device  DeviceInfo
	relay   *relayRun
	onvif   *onvifLink // for enabled cameras given by ONVIF device URL
	problem string     // why it is not relayed, in words, when that is the agent's doing
}

const (
	originConfig     = "config"     // from camgate.yaml; changed by editing the file
	originAdded      = "added"      // added from the pairing page or MQTT; kept in the store
	originDiscovered = "discovered" // found on the LAN, waiting for credentials
)

type relayRun struct {
	cfg    rtsp.RelayConfig
	relay  *rtsp.Relay
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks nothing beyond what LoadConfig already validated; all I/O happens in Run.
func New(l Loaded, opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	return &Agent{log: opts.Logger, opts: opts, loaded: l, cameras: map[string]*cameraEntry{}, pacer: rtsp.NewPacer(0, 0),
		cache:  rtsp.NewCacheBudget(l.Config.Relay.CacheBytes),
		motion: newMotionTracker(), snaps: &snapshots{latest: map[string][]byte{}, at: map[string]time.Time{}}, kick: make(chan struct{}, 1),
		notify: &notifyRoutes{routes: map[string]*onvif.NotifyReceiver{}}}
}

// Run opens the store, starts every enabled camera's relay and keeps them in line with the
// config until ctx ends; then it stops them all and closes the store.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	cfg := a.config()
	for _, n := range a.loaded.Notes {
		a.log.Info(n)
	}
	a.setLogLevel(cfg.Log.Level)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	db, err := store.Open(cfg.dataPath("camgate.db"), store.Options{OutboxMaxBytes: cfg.Outbox.MaxBytes, Logger: a.log})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer db.Close()
	a.db = db
	if err := a.loadAgentIDs(); err != nil {
		return err
	}
	a.loadDiscovered()
	code, err := PairCode(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("pairing code: %w", err)
	}
	a.log.Info("camgate started", "version", a.opts.Version, "gateway_id", cfg.GatewayID,
		"config", cfg.sourceName(a.loaded.Path), "data_dir", cfg.DataDir, "setup_code", code)
	if cfg.Flussonic.Publish == "" {
		a.log.Warn("flussonic.publish is not set: cameras are registered but not relayed")
	}

	runCtx, stopAll := context.WithCancel(ctx)
	a.mu.Lock()
	a.runCtx = runCtx
	a.mu.Unlock()
	// The uplink has its own context so that it outlives the relays on the way out: status
	// offline is the last thing the broker hears. Whatever is still queued is on disk already.
	var background sync.WaitGroup
	defer func() {
		stopAll()
		a.stopRelays()
		a.stopAllMotion()
		a.stopUplink()
		background.Wait()
	}()
	a.applyStoredConnection(&cfg)
	a.mu.Lock()
	a.loaded = cfg
	a.mu.Unlock()
	a.restartUplink(&cfg.Config)
	a.serveControl(runCtx, cfg.DataDir, &background)

	a.reconcile(runCtx)
	if err := a.startSMTP(runCtx, &cfg.Config, &background); err != nil {
		return err
	}
	a.runDiscovery(runCtx, &cfg.Config, &background)
	if err := a.startWeb(runCtx, &cfg.Config, code, &background); err != nil {
		return err
	}
	background.Add(2)
	go func() { defer background.Done(); a.publishStates(runCtx) }()
	go func() { defer background.Done(); a.publishTelemetry(runCtx) }()
	if a.opts.Ready != nil {
		a.opts.Ready(a)
	}
	for {
		select {
		case <-ctx.Done():
			a.log.Info("stopping: tearing down relays")
			return nil
		case <-a.opts.Reload:
			a.reload(runCtx)
		case <-a.kick:
			a.reconcile(runCtx)
		}
	}
}

// requestReconcile asks Run's loop to bring the relays in line with the registry soon.
func (a *Agent) requestReconcile() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// runContext is the context relays started outside Run's own goroutine hang off.
func (a *Agent) runContext() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runCtx == nil {
		return context.Background()
	}
	return a.runCtx
}

func (a *Agent) config() Loaded {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loaded
}

func (c *Config) sourceName(path string) string {
	if path == "" {
		return "built-in defaults"
	}
	return path
}

func (a *Agent) setLogLevel(level string) {
	if a.opts.LogLevel == nil {
		return
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err == nil {
		a.opts.LogLevel.Set(l)
	}
}

// reload reads the config file again. A bad file keeps the running config and says why; keys
// that only take effect at start are named so the owner knows a restart is needed.
func (a *Agent) reload(ctx context.Context) {
	old := a.config()
	if old.Path == "" {
		a.log.Info("reload: running on built-in defaults, no file to read")
		return
	}
	l, err := LoadConfig(old.Path, true, a.opts.Getenv)
	if err != nil {
		a.log.Error("reload: keeping the running config", "err", err)
		return
	}
	a.applyStoredConnection(&l)
	for key, same := range map[string]bool{
		"gateway_id": old.GatewayID == l.GatewayID, "data_dir": old.DataDir == l.DataDir,
		"web.listen": old.Web.Listen == l.Web.Listen, "smtp.listen": old.SMTP.Listen == l.SMTP.Listen,
		"outbox.max_bytes": old.Outbox.MaxBytes == l.Outbox.MaxBytes,
	} {
		if !same {
			a.log.Warn("reload: this key takes effect at the next restart", "key", key)
		}
	}
	a.mu.Lock()
	a.loaded = l
	a.mu.Unlock()
	a.setLogLevel(l.Log.Level)
	a.log.Info("reload: config read", "path", l.Path)
	if !reflect.DeepEqual(old.MQTT, l.MQTT) || !reflect.DeepEqual(old.Flussonic.Events, l.Flussonic.Events) {
		a.restartUplink(&l.Config)
	}
	a.reconcile(ctx)
}

// wantedCamera is one camera the registry should hold.
type wantedCamera struct {
	conf   CameraConfig
	device DeviceInfo
	origin string
}

// desiredCameras is the registry the config file and the store ask for. A camera in the file
// wins over a stored one of the same id.
func (a *Agent) desiredCameras(cfg *Config) map[string]wantedCamera {
	want := make(map[string]wantedCamera, len(cfg.Cameras))
	if stored, err := a.storedCameras(); err != nil {
		a.log.Error("registry", "err", err)
	} else {
		for id, r := range stored {
			want[id] = wantedCamera{conf: r.CameraConfig, device: r.Device, origin: originAdded}
		}
	}
	for _, c := range cfg.Cameras {
		id := c.ID
		if id == "" {
			id = CameraIDFromURL(c.URL)
		}
		c.ID = id
		want[id] = wantedCamera{conf: c, device: DeviceInfo{IP: hostOf(c.URL)}, origin: originConfig}
	}
	a.discoveredWantedLocked(want)
	return want
}

// relayConfigLocked is what one camera's relay should run with, or a reason it should not run.
func (a *Agent) relayConfigLocked(cfg *Config, e *cameraEntry) (rtsp.RelayConfig, string) {
	c := e.conf
	switch {
	case e.origin == originDiscovered:
		return rtsp.RelayConfig{}, "needs credentials: add it with the camera's username and password"
	case !c.Enabled:
		return rtsp.RelayConfig{}, "disabled"
	case cfg.Flussonic.Publish == "":
		return rtsp.RelayConfig{}, "flussonic.publish is not set"
	}
	source := c.URL
	if needsResolving(c.URL) {
		if e.onvif == nil {
			return rtsp.RelayConfig{}, "stream not resolved yet"
		}
		_, _, stream, errText := e.onvif.state()
		if stream == "" {
			if errText == "" {
				errText = "asking the camera for its stream"
			}
			return rtsp.RelayConfig{}, errText
		}
		source = stream
	}
	return rtsp.RelayConfig{
		Source:    source,
		Username:  c.Username,
		Password:  c.Password,
		Transport: c.Transport,
		Auth:      c.Auth,
		Audio:     c.Audio,
		Publish:   cfg.PublishURLOf(cfg.CameraStreamName(c.ID, c.StreamName)),
		Logger:    a.log.With("camera_id", c.ID),
		Pacer:     a.pacer,
		Cache:     a.cache,
	}, ""
}

// mergeONVIF copies what the camera told us over ONVIF into its device info.
func mergeONVIF(e *cameraEntry) {
	if e.onvif == nil {
		return
	}
	dev, _, _, _ := e.onvif.state()
	if dev == nil {
		return
	}
	d := &e.device
	d.Vendor, d.Model, d.Serial, d.ONVIF = dev.Manufacturer, dev.Model, dev.Serial, e.conf.URL
	if dev.MAC != "" {
		d.MAC = dev.MAC
	}
	d.SnapshotURI, d.PTZ = dev.SnapshotURI, dev.HasPTZ
	if d.IP == "" {
		d.IP = hostOf(e.conf.URL)
	}
}

// sameRelay compares two relay configs by what the relay does, not by their loggers or pacers.
func sameRelay(x, y rtsp.RelayConfig) bool {
	x.Logger, y.Logger = nil, nil
	x.Pacer, y.Pacer = nil, nil
	x.Cache, y.Cache = nil, nil
	return reflect.DeepEqual(x, y)
}

// reconcile makes the running relays match the config: it starts what is missing, restarts only
// what changed and stops what is gone. One camera's trouble never touches another's relay.
func (a *Agent) reconcile(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg := a.loaded.Config
	a.cache.SetLimit(cfg.Relay.CacheBytes) // a reload may change it; the relays keep running
	want := a.desiredCameras(&cfg)
	for id, e := range a.cameras {
		if _, ok := want[id]; !ok {
			a.stopRelayLocked(e)
			if e.onvif != nil {
				e.onvif.cancel()
			}
			delete(a.cameras, id)
			a.log.Info("camera removed", "camera_id", id)
			a.unregisterLocked(ctx, id)
		}
	}
	assigned := len(a.agentIDs)
	for id, w := range want {
		conf := w.conf
		e, ok := a.cameras[id]
		if !ok {
			e = &cameraEntry{id: id, agentID: assignAgentID(cfg.GatewayID, id, a.agentIDs)}
			a.cameras[id] = e
			a.log.Info("camera added", "camera_id", id, "agent_id", e.agentID, "name", conf.Name)
		}
		e.conf, e.device, e.origin = conf, w.device, w.origin
		a.ensureONVIFLocked(ctx, e)
		mergeONVIF(e)
		rc, why := a.relayConfigLocked(&cfg, e)
		e.problem = why
		switch {
		case why != "":
			if e.relay != nil {
				a.log.Info("relay stopped", "camera_id", id, "reason", why)
			}
			a.stopRelayLocked(e)
		case e.relay != nil && sameRelay(e.relay.cfg, rc):
			// unchanged: keep the running session
		default:
			if e.relay != nil {
				a.log.Info("relay settings changed: restarting", "camera_id", id)
				a.stopRelayLocked(e)
			}
			a.startRelayLocked(ctx, e, rc)
		}
		a.registerLocked(ctx, &cfg, e)
	}
	a.unregisterGoneLocked(ctx)
	// Agent ids are only ever added (a camera removed and added again keeps its id).
	if len(a.agentIDs) != assigned {
		if err := a.saveAgentIDsLocked(); err != nil {
			a.log.Error("saving agent ids", "err", err)
		}
	}
}

func (a *Agent) startRelayLocked(ctx context.Context, e *cameraEntry, rc rtsp.RelayConfig) {
	rctx, cancel := context.WithCancel(ctx)
	run := &relayRun{cfg: rc, relay: rtsp.NewRelay(rc), cancel: cancel, done: make(chan struct{})}
	e.relay = run
	a.log.Info("relay starting", "camera_id", e.id, "publish", redactURL(rc.Publish))
	go func() {
		defer close(run.done)
		if err := run.relay.Run(rctx); err != nil {
			a.log.Error("relay ended", "camera_id", e.id, "err", err)
		}
	}()
}

func (a *Agent) stopRelayLocked(e *cameraEntry) {
	if e.relay == nil {
		return
	}
	e.relay.cancel()
	select {
	case <-e.relay.done:
	case <-time.After(5 * time.Second):
		a.log.Warn("relay did not stop within 5s", "camera_id", e.id)
	}
	e.relay = nil
}

func (a *Agent) stopRelays() {
	a.mu.Lock()
	var links []*onvifLink
	var wg sync.WaitGroup
	for _, e := range a.cameras {
		if e.onvif != nil {
			e.onvif.cancel()
			links = append(links, e.onvif)
			e.onvif = nil
		}
		if e.relay != nil {
			wg.Add(1)
			go func(e *cameraEntry) { defer wg.Done(); a.stopRelayLocked(e) }(e)
		}
	}
	wg.Wait()
	a.mu.Unlock()
	// ONVIF links may be reporting motion, which reads the config under a.mu: wait unlocked.
	for _, l := range links {
		select {
		case <-l.done:
		case <-time.After(5 * time.Second):
			a.log.Warn("an ONVIF link did not stop within 5s")
		}
	}
}

const settingAgentIDs = "agent_ids"

func (a *Agent) loadAgentIDs() error {
	a.agentIDs = map[string]string{}
	b, ok, err := a.db.Settings().Get(settingAgentIDs)
	if err != nil {
		return fmt.Errorf("store: reading agent ids: %w", err)
	}
	if ok {
		if err := json.Unmarshal(b, &a.agentIDs); err != nil {
			return fmt.Errorf("store: agent ids are corrupt: %w", err)
		}
	}
	return nil
}

func (a *Agent) saveAgentIDsLocked() error {
	b, err := json.Marshal(a.agentIDs)
	if err != nil {
		return err
	}
	return a.db.Settings().Put(settingAgentIDs, b)
}

// CameraStatus is one camera as the page, MQTT and the log see it. It carries no secret.
type CameraStatus struct {
	ID         string     `json:"camera_id"`
	AgentID    string     `json:"agent_id"`
	Name       string     `json:"name"`
	Origin     string     `json:"origin"` // config, added or discovered
	URL        string     `json:"url"`    // without credentials
	Username   string     `json:"username,omitempty"`
	Device     DeviceInfo `json:"device"`
	Enabled    bool       `json:"enabled"`
	Audio      bool       `json:"audio"`
	Substream  bool       `json:"substream"`
	StreamName string     `json:"stream_name"`
	PublishURL string     `json:"publish_url"` // without credentials
	PlayURL    string     `json:"play_url"`    // what SC's "add camera by parameters" form takes
	Problem    string     `json:"problem,omitempty"`
	Relay      rtsp.Stats `json:"relay"`
}

// Cameras reports every camera in the registry, sorted by id.
func (a *Agent) Cameras() []CameraStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg := a.loaded.Config
	out := make([]CameraStatus, 0, len(a.cameras))
	for _, e := range a.cameras {
		s := CameraStatus{
			ID: e.id, AgentID: e.agentID, Name: e.conf.Name, Origin: e.origin, URL: redactURL(e.conf.URL),
			Username: e.conf.Username, Device: e.device, Substream: e.conf.Substream,
			Enabled: e.conf.Enabled, Audio: e.conf.Audio, StreamName: cfg.CameraStreamName(e.id, e.conf.StreamName),
			Problem: e.problem,
		}
		s.PublishURL, s.PlayURL = redactURL(cfg.PublishURLOf(s.StreamName)), cfg.PlayURL(s.StreamName)
		if e.relay != nil {
			s.Relay = e.relay.relay.Stats()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (a *Agent) uptime() time.Duration {
	if a.started.IsZero() {
		return 0
	}
	return time.Since(a.started)
}

// GatewayID is the id this gateway runs under.
func (a *Agent) GatewayID() string { return a.config().GatewayID }
