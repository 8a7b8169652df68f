package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/camgate/camgate/rtsp"
)

// registry is the camera registry and the loaded config, owned by the loop goroutine (run).
// Nothing else touches its fields. Requests reach it through Agent.requests; after each one it
// publishes a fresh view. It never waits for the network or for a relay: a relay is asked to
// stop (cancel) and its end comes back as a relayStopped request; the uplink likewise. Store
// writes here are short bbolt transactions on the local disk.
type registry struct {
	a      *Agent
	ctx    context.Context // relays and stream resolvers hang off it
	loaded Loaded
	conn   connectionSettings // the pairing page's settings, overlaid on the file's

	cameras  map[string]*cameraEntry    // by camera_id
	added    map[string]cameraRecord    // cameras added at run time, as stored
	agentIDs map[string]string          // camera_id -> agent_id, persisted
	found    map[string]*discovered     // by endpoint reference, persisted
	stopping map[string]*relayRun       // relays asked to stop that have not ended yet
	resolves map[*streamResolver]string // resolvers asked to stop, for the wait at shutdown
	uplink   *uplinkRun                 // the running MQTT client and event sinks
	next     *Config                    // the uplink to start once the running one has ended
}

// cameraEntry is one camera as the agent wants it (conf) and as it runs (relay).
type cameraEntry struct {
	id       string
	agentID  string
	origin   string // originConfig, originAdded or originDiscovered
	conf     CameraConfig
	device   DeviceInfo
	relay    *relayRun
	resolver *streamResolver // for enabled cameras given by ONVIF device URL or bare address
	resolved resolution      // what the resolver last reported
	problem  string          // why it is not relayed, in words, when that is the agent's doing
	// publishUntil is an on_demand camera's publishing window (relaymode.go).
	publishUntil time.Time
	// motionFrom..motionUntil is a motion camera's window, motionSeq the last episode change
	// applied (relaymode.go).
	motionFrom, motionUntil time.Time
	motionSeq               uint64
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

// request is one change for the loop. serve runs on the loop goroutine.
type request interface {
	serve(r *registry) result
}

type envelope struct {
	req  request
	done chan<- result // nil: nobody waits; else buffered, so the loop never blocks on it
}

type result struct {
	status CameraStatus
	notice string         // for the reply, e.g. NoticePasswordCleared
	window map[string]any // start_relay and stop_relay's reply
	err    error
}

// newRegistry reads what the store remembers. It runs before the loop starts.
func newRegistry(a *Agent, ctx context.Context, l Loaded) (*registry, error) {
	r := &registry{a: a, ctx: ctx, cameras: map[string]*cameraEntry{}, stopping: map[string]*relayRun{},
		resolves: map[*streamResolver]string{}}
	var err error
	if r.agentIDs, err = a.loadAgentIDs(); err != nil {
		return nil, err
	}
	if r.added, err = a.storedCameras(); err != nil {
		return nil, err
	}
	r.found = a.loadDiscovered()
	if r.conn, err = a.storedConnection(); err != nil {
		a.log.Error("store: connection settings do not parse; using the file's", "err", err)
		r.conn = connectionSettings{}
	}
	r.overlay(&l)
	r.loaded = l
	// Both use r.ctx, which is ctx: the linter cannot see it through the struct.
	r.startUplink(&r.loaded.Config) //nolint:contextcheck // see above
	r.reconcile()                   //nolint:contextcheck // see above
	r.publish()
	return r, nil
}

// run serves requests until ctx ends, then asks every relay, resolver and the uplink to stop.
func (r *registry) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			r.shutdown()
			return
		case env := <-r.a.requests:
			res := env.req.serve(r)
			r.publish()
			if env.done != nil {
				env.done <- res
			}
		}
	}
}

func (r *registry) overlay(l *Loaded) {
	if r.conn.MQTT != nil || r.conn.Flussonic != nil {
		r.conn.overlay(&l.Config)
		r.a.log.Info("connection settings from the pairing page override the file's mqtt/flussonic keys")
	}
}

// publish makes the view readers see.
func (r *registry) publish() {
	cfg := &r.loaded.Config
	v := &view{cfg: r.loaded, cameras: make([]cameraView, 0, len(r.cameras))}
	moved := r.movedTo()
	for _, e := range r.cameras {
		c := cameraView{status: CameraStatus{
			ID: e.id, AgentID: e.agentID, Name: e.conf.Name, Origin: e.origin, URL: redactURL(e.conf.URL),
			Username: e.conf.Username, Device: e.device, Substream: e.conf.Substream,
			Enabled: e.conf.Enabled, Audio: e.conf.Audio, StreamName: cfg.CameraStreamName(e.id, e.conf.StreamName),
			Problem: e.problem, MovedTo: moved[e.id],
		}, onvif: e.resolved, hasRes: e.resolver != nil, auth: e.conf.Auth}
		c.status.PublishURL, c.status.PlayURL = redactURL(cfg.PublishURLOf(c.status.StreamName)),
			cfg.PlayURL(c.status.StreamName)
		if e.relay != nil {
			c.relay = e.relay.relay
		}
		v.cameras = append(v.cameras, c)
	}
	sort.Slice(v.cameras, func(i, j int) bool { return v.cameras[i].status.ID < v.cameras[j].status.ID })
	r.a.view.Store(v)
}

// reloadRequest carries a config file read again on SIGHUP.
type reloadRequest struct{ loaded Loaded }

func (q reloadRequest) serve(r *registry) result {
	old, l := r.loaded, q.loaded
	r.overlay(&l)
	for key, same := range map[string]bool{
		"gateway_id": old.GatewayID == l.GatewayID, "data_dir": old.DataDir == l.DataDir,
		"web.listen": old.Web.Listen == l.Web.Listen, "smtp.listen": old.SMTP.Listen == l.SMTP.Listen,
		"outbox.max_bytes": old.Outbox.MaxBytes == l.Outbox.MaxBytes, "motion.hold": old.Motion.Hold == l.Motion.Hold,
		"smtp.username/password": old.SMTP.Username == l.SMTP.Username && old.SMTP.Password == l.SMTP.Password,
	} {
		if !same {
			r.a.log.Warn("reload: this key takes effect at the next restart", "key", key)
		}
	}
	r.loaded = l
	r.a.setLogLevel(l.Log.Level)
	r.a.log.Info("reload: config read", "path", l.Path)
	if !reflect.DeepEqual(old.MQTT, l.MQTT) || !reflect.DeepEqual(old.Flussonic.Events, l.Flussonic.Events) {
		r.restartUplink()
	}
	r.reconcile()
	return result{}
}

// relayStopped says a relay asked to stop has ended.
type relayStopped struct {
	id  string
	run *relayRun
}

func (q relayStopped) serve(r *registry) result {
	if r.stopping[q.id] == q.run {
		delete(r.stopping, q.id)
	}
	r.reconcile()
	return result{}
}

// reconcileRequest asks the loop to look again (after a discovery from the page, say).
type reconcileRequest struct{}

func (reconcileRequest) serve(r *registry) result { r.reconcile(); return result{} }

// wantedCamera is one camera the registry should hold.
type wantedCamera struct {
	conf   CameraConfig
	device DeviceInfo
	origin string
}

// desiredCameras is the registry the config file, the added cameras and discovery ask for. A
// camera in the file wins over an added one of the same id, and both over a discovered one.
func (r *registry) desiredCameras() map[string]wantedCamera {
	cfg := &r.loaded.Config
	want := make(map[string]wantedCamera, len(cfg.Cameras)+len(r.added))
	for id, rec := range r.added {
		want[id] = wantedCamera{conf: rec.CameraConfig, device: rec.Device, origin: originAdded}
	}
	for _, c := range cfg.Cameras {
		id := c.ID
		if id == "" {
			id = CameraIDFromURL(c.URL)
		}
		c.ID = id
		want[id] = wantedCamera{conf: c, device: DeviceInfo{IP: hostOf(c.URL)}, origin: originConfig}
	}
	r.discoveredWanted(want)
	return want
}

// relayConfig is what one camera's relay should run with, or a reason it should not run.
func (r *registry) relayConfig(e *cameraEntry) (rtsp.RelayConfig, string) {
	cfg := &r.loaded.Config
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
		if e.resolver == nil {
			return rtsp.RelayConfig{}, "stream not resolved yet"
		}
		if e.resolved.stream == "" {
			if e.resolved.err != "" {
				return rtsp.RelayConfig{}, e.resolved.err
			}
			return rtsp.RelayConfig{}, "asking the camera for its stream"
		}
		source = e.resolved.stream
	}
	user, pass := streamCredentials(c, source)
	return r.a.withQuality(rtsp.RelayConfig{
		Source:    source,
		Username:  user,
		Password:  pass,
		Transport: c.Transport,
		Auth:      c.Auth,
		Audio:     c.Audio,
		Publish:   cfg.PublishURLOf(cfg.CameraStreamName(c.ID, c.StreamName)),
		Logger:    r.a.log.With("camera_id", c.ID),
		ShowError: shownError(e.origin),
		Pacer:     r.a.pacer,
		Cache:     r.a.cache,
		Gated:     gated(c),
		PreRoll:   preRollOf(c),
	}, e), ""
}

// mergeONVIF copies what the camera told us over ONVIF into its device info.
func mergeONVIF(e *cameraEntry) {
	dev := e.resolved.dev
	if e.resolver == nil || dev == nil {
		return
	}
	d := &e.device
	d.Vendor, d.Model, d.Serial, d.ONVIF = dev.Manufacturer, dev.Model, dev.Serial, redactURL(e.conf.URL)
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
	x.ShowError, y.ShowError = nil, nil
	x.Quality, y.Quality = nil, nil
	x.OnQuality, y.OnQuality = nil, nil
	return reflect.DeepEqual(x, y)
}

// reconcile makes the running relays match the wanted registry: it starts what is missing,
// asks what changed or is gone to stop (starting the new session once the old one has ended,
// so one stream never has two publishers) and leaves the rest alone.
func (r *registry) reconcile() {
	r.a.cache.SetLimit(r.loaded.Relay.CacheBytes) // a reload may change it; the relays keep running
	want := r.desiredCameras()
	for id, e := range r.cameras {
		if _, ok := want[id]; !ok {
			r.stopRelay(e)
			r.stopResolver(e)
			delete(r.cameras, id)
			r.a.log.Info("camera removed", "camera_id", id)
			r.unregister(id)
		}
	}
	assigned := len(r.agentIDs)
	for id, w := range want {
		e, ok := r.cameras[id]
		if !ok {
			e = &cameraEntry{id: id, agentID: assignAgentID(r.loaded.GatewayID, id, r.agentIDs)}
			r.cameras[id] = e
			r.a.log.Info("camera added", "camera_id", id, "agent_id", e.agentID, "name", w.conf.Name)
		}
		e.conf, e.device, e.origin = w.conf, w.device, w.origin
		r.ensureResolver(e)
		mergeONVIF(e)
		rc, why := r.relayConfig(e)
		e.problem = why
		switch {
		case why != "":
			if e.relay != nil {
				r.a.log.Info("relay stopped", "camera_id", id, "reason", why)
			}
			r.stopRelay(e)
		case e.relay != nil && sameRelay(e.relay.cfg, rc):
			// unchanged: keep the running session
		case e.relay != nil:
			r.a.log.Info("relay settings changed: restarting", "camera_id", id)
			r.stopRelay(e)
			e.problem = "restarting"
		case r.stopping[id] != nil:
			e.problem = "restarting" // relayStopped brings us back here
		default:
			r.startRelay(e, rc)
		}
		r.register(e)
	}
	r.unregisterGone()
	r.wantStreams()
	// Agent ids are only ever added (a camera removed and added again keeps its id).
	if len(r.agentIDs) != assigned {
		if err := r.a.saveAgentIDs(r.agentIDs); err != nil {
			r.a.log.Error("saving agent ids", "err", err)
		}
	}
}

func (r *registry) startRelay(e *cameraEntry, rc rtsp.RelayConfig) {
	rctx, cancel := context.WithCancel(r.ctx)
	run := &relayRun{cfg: rc, relay: rtsp.NewRelay(rc), cancel: cancel, done: make(chan struct{})}
	e.relay = run
	r.applyWindow(e)
	log := r.a.log
	log.Info("relay starting", "camera_id", e.id, "publish", redactURL(rc.Publish))
	id := e.id
	go func() {
		defer close(run.done)
		if err := run.relay.Run(rctx); err != nil {
			log.Error("relay ended", "camera_id", id, "err", err)
		}
	}()
}

// stopRelay asks the camera's relay to stop and returns at once; relayStopped reports its end.
func (r *registry) stopRelay(e *cameraEntry) {
	run := e.relay
	if run == nil {
		return
	}
	e.relay = nil
	run.cancel()
	r.stopping[e.id] = run
	a, id := r.a, e.id
	go func() {
		<-run.done
		a.tell(relayStopped{id: id, run: run})
	}()
}

// shutdown asks everything the loop started to stop; waitStopped, called after the loop has
// returned, waits for it.
func (r *registry) shutdown() {
	for _, e := range r.cameras {
		r.stopRelay(e)
		r.stopResolver(e)
	}
	if r.uplink != nil {
		r.uplink.stop()
	}
}

// waitStopped waits, each for at most within, for the relays, resolvers and the uplink that
// shutdown stopped. The loop has returned: nothing else reads these fields now.
func (r *registry) waitStopped(within time.Duration) {
	deadline := time.After(within)
	wait := func(done <-chan struct{}, what string) {
		select {
		case <-done:
		case <-deadline:
			r.a.log.Warn(what+" did not stop in time", "within", within)
		}
	}
	for id, run := range r.stopping {
		wait(run.done, "relay of "+id)
	}
	for res, id := range r.resolves {
		wait(res.done, "stream resolver of "+id)
	}
	if r.uplink != nil {
		done := make(chan struct{})
		go func() { r.uplink.wg.Wait(); close(done) }()
		wait(done, "uplink")
	}
}

const settingAgentIDs = "agent_ids"

func (a *Agent) loadAgentIDs() (map[string]string, error) {
	ids := map[string]string{}
	b, ok, err := a.db.Settings().Get(settingAgentIDs)
	if err != nil {
		return nil, fmt.Errorf("store: reading agent ids: %w", err)
	}
	if ok {
		if err := json.Unmarshal(b, &ids); err != nil {
			return nil, fmt.Errorf("store: agent ids are corrupt: %w", err)
		}
	}
	return ids, nil
}

func (a *Agent) saveAgentIDs(ids map[string]string) error {
	b, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("encoding agent ids: %w", err)
	}
	return a.db.Settings().Put(settingAgentIDs, b)
}

func (a *Agent) storedCameras() (map[string]cameraRecord, error) {
	all, err := a.db.Cameras().All()
	if err != nil {
		return nil, fmt.Errorf("store: reading cameras: %w", err)
	}
	out := make(map[string]cameraRecord, len(all))
	for id, b := range all {
		var rec cameraRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			a.log.Error("store: skipping a camera record that does not parse", "camera_id", id, "err", err)
			continue
		}
		rec.ID = id
		takeURLCredentials(&rec.CameraConfig) // a record stored before issue 13's fix
		out[id] = rec
	}
	return out, nil
}

func (a *Agent) saveCamera(rec cameraRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding camera %s: %w", rec.ID, err)
	}
	return a.db.Cameras().Put(rec.ID, b)
}
