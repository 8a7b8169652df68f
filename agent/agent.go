package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/onvif"
	"github.com/camgate/camgate/rtsp"
	"github.com/camgate/camgate/smtp"
	"github.com/camgate/camgate/store"
	"github.com/camgate/camgate/uplink"
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

// Agent runs one gateway: its cameras' relays, discovery, motion and the uplink. Build it with
// New and start it with Run.
//
// The camera registry and the loaded config belong to one goroutine, the registry loop (see
// registry.go). Everything else asks it with a request and reads the immutable view it
// publishes after every request; nothing holds a lock while it does I/O.
type Agent struct {
	log     *slog.Logger
	opts    Options
	started time.Time
	initial Loaded

	db       *store.DB     // set by Run before any part starts, never changed after
	requests chan envelope // to the registry loop
	loopDone chan struct{} // closed when the registry loop has returned
	writer   *recordWriter // the loop's store writes and the replies that wait for them
	view     atomic.Pointer[view]
	link     atomic.Pointer[uplinkParts] // MQTT and event sinks; swapped when the page changes them
	motion   *motionOwner
	snaps    *snapshots
	notify   *notifyRoutes         // cameras' ONVIF notification endpoints on the page's server
	pacer    *rtsp.Pacer           // shared by every relay: one wake-up a period for all cameras
	streams  *uplink.StreamSetup   // zero-touch stream setup; nil without flussonic.api; set before the loop
	cache    *rtsp.CacheBudget     // relay.cache_bytes, shared by every relay's GOP cache
	quality  *rtsp.QualityGovernor // substream fallback, shared by every relay as they share the uplink

	webAddr    atomic.Pointer[string]           // where the pairing page listens, once it does
	smtpAddr   atomic.Pointer[net.Addr]         // where the SMTP alarm server listens, once it does
	smtpLogin  atomic.Pointer[smtpLogin]        // what cameras log in to it with, once it listens
	discoverer atomic.Pointer[onvif.Discoverer] // nil when discovery.onvif is off
	smtpServer atomic.Pointer[smtp.Server]      // the alarm mail server once it listens, for /metrics
}

// New checks nothing beyond what LoadConfig already validated; all I/O happens in Run.
func New(l Loaded, opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	a := &Agent{log: opts.Logger, opts: opts, initial: l, pacer: rtsp.NewPacer(0, 0),
		cache:    rtsp.NewCacheBudget(l.Relay.CacheBytes),
		quality:  rtsp.NewQualityGovernor(),
		requests: make(chan envelope), loopDone: make(chan struct{}),
		snaps:  &snapshots{latest: map[string][]byte{}, at: map[string]time.Time{}},
		notify: &notifyRoutes{routes: map[string]*onvif.NotifyReceiver{}}}
	a.writer = newRecordWriter(a)
	a.view.Store(&view{cfg: l})
	return a
}

// Run opens the store, starts every enabled camera's relay and keeps them in line with the
// config until ctx ends; then it stops them all and closes the store.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	cfg := a.initial
	for _, n := range cfg.Notes {
		a.log.Info(n)
	}
	a.setLogLevel(cfg.Log.Level)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	sweepSnapshotTemps(cfg.DataDir, a.log)
	db, err := store.Open(cfg.dataPath("camgate.db"), store.Options{OutboxMaxBytes: cfg.Outbox.MaxBytes, Logger: a.log})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer db.Close()
	a.db = db
	// Deferred after db.Close and before the shutdown below, it runs once the loop has ended
	// and before the store closes: a SIGTERM never loses a write the loop accepted.
	a.writer.start(context.WithoutCancel(ctx))
	defer a.writer.stop(5 * time.Second)
	code, created, err := EnsurePairCode(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("pairing code: %w", err)
	}
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	a.streams = a.newStreamSetup(&cfg.Config)
	// The motion owner exists before the registry starts the ONVIF resolvers that report to it;
	// it takes up the previous run's episodes only once the loop serves (restore below).
	a.motion, err = newMotionOwner(a, cfg.Motion.Hold.Std())
	if err != nil {
		return err
	}
	r, err := newRegistry(a, runCtx, cfg)
	if err != nil {
		return err
	}
	a.log.Info("camgate started", "version", a.opts.Version, "gateway_id", cfg.GatewayID,
		"config", cfg.sourceName(cfg.Path), "data_dir", cfg.DataDir)
	logCreatedPairCode(a.log, code, created)
	if r.loaded.Flussonic.Publish == "" {
		a.log.Warn("flussonic.publish is not set: cameras are registered but not relayed")
	}
	// The loop and motion outlive ctx: they are stopped last, in order, by the deferred shutdown.
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	go func() { defer close(a.loopDone); r.run(loopCtx) }()

	a.motion.restore()
	motionCtx, stopMotion := context.WithCancel(context.WithoutCancel(ctx))
	motionDone := make(chan struct{})
	go func() { defer close(motionDone); a.motion.run(motionCtx) }()

	var background sync.WaitGroup
	// Shutdown, in the order the parts depend on each other: the inputs stop (they may still
	// ask the loop), motion closes its episodes while the uplink still queues, then the loop
	// ends and the relays and the uplink are waited for outside it.
	defer func() {
		stopAll()
		background.Wait()
		stopMotion()
		<-motionDone
		stopLoop()
		<-a.loopDone
		r.waitStopped(5 * time.Second)
	}()
	a.serveControl(runCtx, cfg.DataDir, &background)
	a.startStreamSetup(runCtx, &background)
	if err := a.startSMTP(runCtx, &cfg.Config, &background); err != nil {
		return err
	}
	a.runDiscovery(runCtx, &cfg.Config, &background)
	if err := a.startWeb(runCtx, &cfg.Config, &background); err != nil {
		return err
	}
	background.Add(3)
	go func() { defer background.Done(); a.publishStates(runCtx) }()
	go func() { defer background.Done(); a.publishTelemetry(runCtx) }()
	go func() { defer background.Done(); a.followReloads(runCtx) }()
	if a.opts.Ready != nil {
		a.opts.Ready(a)
	}
	<-ctx.Done()
	a.log.Info("stopping: tearing down relays")
	return nil
}

// followReloads reads the config file on every SIGHUP, outside the loop, and hands the loop
// what it read.
func (a *Agent) followReloads(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.opts.Reload:
		}
		path := a.config().Path
		if path == "" {
			a.log.Info("reload: running on built-in defaults, no file to read")
			continue
		}
		l, err := LoadConfig(path, true, a.opts.Getenv)
		if err != nil {
			a.log.Error("reload: keeping the running config", "err", err)
			continue
		}
		if _, err := a.ask(ctx, reloadRequest{loaded: l}); err != nil && ctx.Err() == nil {
			a.log.Error("reload", "err", err)
		}
	}
}

// errStopping is the answer to a request that arrives while the agent shuts down.
var errStopping = errors.New("camgate is stopping")

// ask hands the registry loop a request and waits for its answer.
func (a *Agent) ask(ctx context.Context, req request) (result, error) {
	done := make(chan result, 1)
	select {
	case a.requests <- envelope{req: req, done: done}:
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-a.loopDone:
		return result{}, errStopping
	}
	// The answer comes from the loop, or from the recordWriter once the request's writes are
	// durable, which may be after the loop has returned or, on a stuck disk, much later: a
	// caller that gives up stops waiting (the change is made, and on disk once written).
	select {
	case res := <-done:
		return res, res.err
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-a.writer.gone:
		select {
		case res := <-done:
			return res, res.err
		default:
			return result{}, errStopping
		}
	}
}

// tell hands the loop a request whose answer nobody waits for (a relay that stopped, a stream
// resolved, a device discovered). It returns at once when the loop is gone.
func (a *Agent) tell(req request) {
	select {
	case a.requests <- envelope{req: req}:
	case <-a.loopDone:
	}
}

// config is the loaded config as the loop last published it.
func (a *Agent) config() Loaded { return a.view.Load().cfg }

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

// view is what readers (the page, /metrics, telemetry, MQTT state, the mail intake) see of the
// registry: an immutable copy made by the loop after each request.
type view struct {
	cfg     Loaded
	cameras []cameraView // sorted by id
}

type cameraView struct {
	status CameraStatus // without Relay, which is read live from relay
	relay  *rtsp.Relay  // nil when not relayed
	onvif  resolution
	hasRes bool   // a stream resolver runs for this camera
	auth   string // the camera's auth mark ("basic" or "")
}

func (v *view) camera(id string) (cameraView, bool) {
	i := sort.Search(len(v.cameras), func(i int) bool { return v.cameras[i].status.ID >= id })
	if i < len(v.cameras) && v.cameras[i].status.ID == id {
		return v.cameras[i], true
	}
	return cameraView{}, false
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
	// MovedTo is an address a device claiming to be this camera announced itself from, not
	// followed until the owner confirms it (pinning.go): the page shows the camera as "moved?".
	MovedTo string     `json:"moved_to,omitempty"`
	Relay   rtsp.Stats `json:"relay"`
}

func (c cameraView) live(a *Agent) CameraStatus {
	s := c.status
	if s.Problem == "" && s.Enabled {
		s.Problem = a.streamProblem(s.StreamName)
	}
	if c.relay != nil {
		s.Relay = c.relay.Stats()
		s.Relay.LastError = withheldNote(s.Username, s.URL, c.onvif.stream, s.Relay.LastError)
	}
	return s
}

// Cameras reports every camera in the registry, sorted by id.
func (a *Agent) Cameras() []CameraStatus {
	v := a.view.Load()
	out := make([]CameraStatus, len(v.cameras))
	for i, c := range v.cameras {
		out[i] = c.live(a)
	}
	return out
}

func (a *Agent) cameraStatus(id string) (CameraStatus, error) {
	if c, ok := a.view.Load().camera(id); ok {
		return c.live(a), nil
	}
	return CameraStatus{}, fmt.Errorf("%w: %s", ErrUnknownCamera, id)
}

func (a *Agent) uptime() time.Duration {
	if a.started.IsZero() {
		return 0
	}
	return time.Since(a.started)
}

// GatewayID is the id this gateway runs under.
func (a *Agent) GatewayID() string { return a.config().GatewayID }
