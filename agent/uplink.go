package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/camgate/camgate/store"
	"github.com/camgate/camgate/uplink"
)

// mqttQueue is the outbox queue drained into the SC broker.
const mqttQueue = "mqtt"

// sinkQueue names an event sink's queue after its URL, so that reordering sinks in the file
// does not hand one sink's backlog to another.
func sinkQueue(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "sink:" + hex.EncodeToString(sum[:6])
}

// uplinkParts are the running clients of everything that leaves the gateway besides video.
type uplinkParts struct {
	mqtt   *uplink.MQTT // nil when mqtt.url is empty
	prefix string       // for logs; queued topics are relative to it (the uplink prepends it)
	sinks  []sinkPart
	ids    *uplink.EventIDs // nil when the store could not give one: events are then not sent
	server string           // the "server" of MQTT events: the publish host

	mu        sync.Mutex
	lastReg   map[string]string     // camera_id -> registration last queued, without ts
	lastState map[string]stateShown // camera_id -> state last queued
	// registered holds every camera whose registration was ever queued, persisted, so that a
	// camera removed while camgate was stopped still gets its retained topics cleared.
	registered map[string]bool
	saveMu     sync.Mutex // orders the saves of registered; held for the store write only
}

const settingRegistered = "mqtt_registered"

type sinkPart struct {
	url, format, server, queue string
	sink                       *uplink.EventSink
}

type stateShown struct {
	key string // the fields whose change is news
	at  time.Time
}

// startUplink starts the MQTT client and one drain per event sink. A client that cannot even be
// built (unreadable CA file, say) is logged and left out; the rest of the gateway runs on.
// link is set before any client runs, since a command may arrive as soon as MQTT connects.
func (a *Agent) startUplink(ctx context.Context, cfg *Config, wg *sync.WaitGroup) {
	p := &uplinkParts{prefix: cfg.TopicPrefix(), lastReg: map[string]string{}, lastState: map[string]stateShown{},
		registered: map[string]bool{}}
	if b, ok, err := a.db.Settings().Get(settingRegistered); err == nil && ok {
		if err := json.Unmarshal(b, &p.registered); err != nil {
			a.log.Warn("store: registered camera list does not parse; starting afresh", "err", err)
		}
	}
	if ids, err := uplink.NewEventIDs(a.db.Settings(), nil); err != nil {
		a.log.Error("motion events disabled: no event ids", "err", err)
	} else {
		p.ids = ids
	}
	p.server = publishHost(cfg)
	ob := a.db.Outbox()
	var starts []func()
	run := func(name string, log *slog.Logger, f func(context.Context) error) {
		starts = append(starts, func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f(ctx); err != nil {
					log.Error(name+" stopped", "err", err)
				}
			}()
		})
	}
	if cfg.MQTT.URL != "" {
		log := a.log.With("part", "mqtt")
		m, err := uplink.NewMQTT(uplink.MQTTConfig{
			URL: cfg.MQTT.URL, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
			CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
			ClientID: "camgate-" + cfg.GatewayID, TopicPrefix: p.prefix, Version: a.opts.Version, Queue: mqttQueue,
			Commands: a, Logger: log,
		}, ob)
		if err != nil {
			log.Error("mqtt disabled", "err", err)
		} else {
			p.mqtt = m
			run("mqtt", log, m.Run)
		}
	}
	keep := map[string]bool{mqttQueue: true}
	for i, s := range cfg.Flussonic.Events {
		q := sinkQueue(s.URL)
		if s.Format == FormatEpisodes {
			q = sinkQueue(s.URL + "#episodes") // never hand event_sink objects to a PUT
		}
		keep[q] = true
		log := a.log.With("part", "event-sink", "sink", i)
		header, err := cfg.SinkHeaders(i)
		var sink *uplink.EventSink
		if err == nil {
			sink, err = uplink.NewEventSink(uplink.EventSinkConfig{URL: s.URL, Format: s.Format, Header: header, Queue: q,
				Logger: log}, ob)
		}
		if err != nil {
			log.Error("event sink disabled", "err", err)
			continue
		}
		p.sinks = append(p.sinks, sinkPart{url: s.URL, format: s.Format, server: cfg.SinkServer(i), queue: q, sink: sink})
		run("event sink", log, sink.Run)
	}
	// A sink removed from the config leaves a queue nobody drains; its events have no receiver.
	for q, st := range ob.Stats().Queues {
		if !keep[q] && st.Depth > 0 && len(q) > 5 && q[:5] == "sink:" {
			if n, err := ob.Purge(q); err == nil { //nolint:contextcheck // Purge takes none: never half-way
				a.log.Warn("dropped the backlog of an event sink no longer configured", "queue", q, "events", n)
			}
		}
	}
	if cfg.MQTT.URL == "" {
		if st := ob.Stats().Queues[mqttQueue]; st.Depth > 0 {
			a.log.Warn("mqtt.url is empty: queued MQTT messages wait until it is set", "depth", st.Depth)
		}
	}
	a.link.Store(p)
	for _, start := range starts {
		start()
	}
}

// enqueue puts messages on the durable outbox. A failure is logged here and returned, so that
// a caller with someone to tell (an alarm mail, a command) can tell them.
func (a *Agent) enqueue(ctx context.Context, queue string, msgs ...store.Message) error {
	if err := a.db.Outbox().Enqueue(ctx, queue, msgs...); err != nil {
		a.log.Error("outbox: enqueue failed", "queue", queue, "err", err)
		return fmt.Errorf("outbox %s: %w", queue, err)
	}
	return nil
}

func nowMs() int64 { return time.Now().UnixMilli() }

// registration is a camera's retained P/cameras/<id>/config (SPEC §6). It carries no secret.
type registration struct {
	CameraID      string   `json:"camera_id"`
	AgentID       string   `json:"agent_id"`
	Name          string   `json:"name"`
	StreamName    string   `json:"stream_name"`
	PublishURL    string   `json:"publish_url"`
	PlayURL       string   `json:"play_url"`
	Vendor        string   `json:"vendor"`
	Model         string   `json:"model"`
	Serial        string   `json:"serial"`
	MAC           string   `json:"mac"`
	IP            string   `json:"ip"`
	ONVIF         string   `json:"onvif"`
	Snapshot      bool     `json:"snapshot"`
	PTZ           bool     `json:"ptz"`
	Audio         bool     `json:"audio"`
	Enabled       bool     `json:"enabled"`
	MotionSources []string `json:"motion_sources"`
	// Quality and UplinkBps are beyond SPEC §6, as in the state (issue 15): see quality.go.
	Quality   string `json:"quality"`
	UplinkBps int64  `json:"uplink_bps"`
	TS        int64  `json:"ts"`
}

func registrationOf(cfg *Config, e *cameraEntry) registration {
	sources := []string{}
	if cfg.SMTP.Listen != "" {
		sources = append(sources, "smtp")
	}
	if e.device.ONVIF != "" {
		sources = append(sources, "onvif")
	}
	name := cfg.CameraStreamName(e.id, e.conf.StreamName)
	return registration{
		CameraID: e.id, AgentID: e.agentID, Name: e.conf.Name, StreamName: name,
		PublishURL: redactURL(cfg.PublishURLOf(name)), PlayURL: cfg.PlayURL(name),
		Vendor: e.device.Vendor, Model: e.device.Model, Serial: e.device.Serial,
		MAC: e.device.MAC, IP: e.device.IP, ONVIF: redactURL(e.device.ONVIF),
		Snapshot: e.device.SnapshotURI != "" || cfg.SMTP.Listen != "", PTZ: e.device.PTZ,
		Audio: e.conf.Audio, Enabled: e.conf.Enabled, MotionSources: sources, Quality: qualityOf(e),
	}
}

// register queues the camera's retained registration when it changed since last queued.
// After a restart everything is queued once more: retained messages make that harmless, and it
// repairs a broker that lost its retained store.
func (r *registry) register(e *cameraEntry) {
	link := r.a.link.Load()
	if link == nil || link.mqtt == nil {
		return
	}
	reg := registrationOf(&r.loaded.Config, e)
	key, err := json.Marshal(reg)
	if err != nil {
		r.a.log.Error("encoding a registration", "camera_id", e.id, "err", err)
		return
	}
	link.mu.Lock()
	same := link.lastReg[e.id] == string(key)
	link.lastReg[e.id] = string(key)
	link.mu.Unlock()
	if same {
		return
	}
	reg.TS, reg.UplinkBps = nowMs(), uplinkOf(e)
	b, err := json.Marshal(reg)
	if err == nil {
		// Latest: a registration queued while the uplink is down replaces the one before it.
		err = r.a.enqueue(context.Background(), mqttQueue, store.Message{Class: store.ClassRegistration,
			Topic: "cameras/" + e.id + "/config", Retain: true, Latest: true, Payload: b})
	}
	if err != nil {
		link.mu.Lock()
		delete(link.lastReg, e.id) // try again at the next reconcile
		link.mu.Unlock()
		return
	}
	r.a.setRegistered(link, e.id, true)
}

func (a *Agent) setRegistered(link *uplinkParts, id string, on bool) {
	link.mu.Lock()
	if link.registered[id] == on {
		link.mu.Unlock()
		return
	}
	if on {
		link.registered[id] = true
	} else {
		delete(link.registered, id)
	}
	link.mu.Unlock()
	// The fsync happens under saveMu alone, never under mu, which publishStates also takes.
	// Each save encodes the list as it is when its turn comes, so the last save holds the
	// latest list whichever order two changes reach here in.
	link.saveMu.Lock()
	defer link.saveMu.Unlock()
	link.mu.Lock()
	b, err := json.Marshal(link.registered)
	link.mu.Unlock()
	if err != nil {
		a.log.Error("encoding the registered camera list", "err", err)
		return
	}
	if err := a.db.Settings().Put(settingRegistered, b); err != nil {
		a.log.Error("store: saving the registered camera list", "err", err)
	}
}

// unregisterGone clears cameras registered in an earlier run that are no longer wanted.
func (r *registry) unregisterGone() {
	link := r.a.link.Load()
	if link == nil || link.mqtt == nil {
		return
	}
	link.mu.Lock()
	var gone []string
	for id := range link.registered {
		if _, ok := r.cameras[id]; !ok {
			gone = append(gone, id)
		}
	}
	link.mu.Unlock()
	for _, id := range gone {
		r.a.log.Info("clearing the registration of a camera removed while camgate was stopped", "camera_id", id)
		r.unregister(id)
	}
}

// unregister clears a removed camera's retained topics with empty retained payloads.
func (r *registry) unregister(id string) {
	link := r.a.link.Load()
	if link == nil || link.mqtt == nil {
		return
	}
	link.mu.Lock()
	delete(link.lastReg, id)
	delete(link.lastState, id)
	link.mu.Unlock()
	base := "cameras/" + id
	if err := r.a.enqueue(context.Background(), mqttQueue,
		store.Message{Class: store.ClassRegistration, Topic: base + "/config", Retain: true},
		store.Message{Class: store.ClassRegistration, Topic: base + "/state", Retain: true},
		store.Message{Class: store.ClassRegistration, Topic: base + "/snapshot", Retain: true},
	); err != nil {
		return // still registered: the next reconcile clears it (unregisterGone)
	}
	r.a.setRegistered(link, id, false)
}

// cameraState is a camera's retained P/cameras/<id>/state.
type cameraState struct {
	Online     bool    `json:"online"`
	Relaying   bool    `json:"relaying"`
	Enabled    bool    `json:"enabled"`
	Codec      string  `json:"codec"`
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	FPS        float64 `json:"fps"`
	BitrateBps int64   `json:"bitrate_bps"`
	Reconnects int     `json:"reconnects"`
	LastError  string  `json:"last_error"`
	Transport  string  `json:"transport,omitempty"` // the camera side's: tcp or udp (what auto chose)
	// Quality is main, or sub while the uplink is short; UplinkBps is what the upstream
	// session carried over the last seconds (issue 15).
	Quality   string `json:"quality"`
	UplinkBps int64  `json:"uplink_bps"`
	TS        int64  `json:"ts"`
}

// stateRefresh is how often an unchanged state is queued anyway, so bitrate and fps stay fresh
// on SC without a message every few seconds per camera.
const stateRefresh = time.Minute

// publishStates queues each camera's state when something a user would notice changed (online,
// relaying, codec, resolution, an error), and at most once a stateRefresh otherwise.
func (a *Agent) publishStates(ctx context.Context) {
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		link := a.link.Load()
		if link == nil || link.mqtt == nil {
			// Without MQTT only a change of settings can give it work: look now and then
			// rather than wake every second for nothing.
			wait = 5 * time.Second
			continue
		}
		wait = time.Second
		for _, c := range a.Cameras() {
			st := cameraState{
				Online: c.Relay.Online, Relaying: c.Relay.Relaying, Enabled: c.Enabled, Codec: c.Relay.Codec,
				Width: c.Relay.Width, Height: c.Relay.Height, FPS: c.Relay.FPS, BitrateBps: c.Relay.BitrateBps,
				Reconnects: c.Relay.Reconnects, LastError: c.Relay.LastError, Transport: c.Relay.Transport,
				Quality: c.Relay.Quality, UplinkBps: c.Relay.UplinkBps,
			}
			if st.LastError == "" {
				st.LastError = c.Problem
			}
			key := fmt.Sprint(st.Online, st.Relaying, st.Enabled, st.Codec, st.Width, st.Height, st.LastError, st.Transport,
				st.Quality)
			link.mu.Lock()
			prev, seen := link.lastState[c.ID]
			news := !seen || prev.key != key || time.Since(prev.at) >= stateRefresh
			if news {
				link.lastState[c.ID] = stateShown{key: key, at: time.Now()}
			}
			link.mu.Unlock()
			if !news {
				continue
			}
			st.TS = nowMs()
			b, err := json.Marshal(st)
			if err == nil {
				err = a.enqueue(ctx, mqttQueue, store.Message{Class: store.ClassEvent, Topic: "cameras/" + c.ID + "/state",
					Retain: true, Latest: true, Payload: b})
			}
			if err != nil {
				link.mu.Lock()
				delete(link.lastState, c.ID) // news again next second
				link.mu.Unlock()
			}
		}
	}
}

// Telemetry is the gateway's periodic P/telemetry.
type Telemetry struct {
	UptimeS          int64   `json:"uptime_s"`
	Cameras          int     `json:"cameras"`
	Relaying         int     `json:"relaying"`
	OutboxDepth      int     `json:"outbox_depth"`
	OutboxBytes      int64   `json:"outbox_bytes"`
	DroppedTelemetry uint64  `json:"outbox_dropped_telemetry"`
	DroppedEvents    uint64  `json:"outbox_dropped_events"`
	RSSBytes         int64   `json:"rss_bytes"`
	CPUPct           float64 `json:"cpu_pct"`
	TS               int64   `json:"ts"`
}

func (a *Agent) telemetry(cpu *cpuMeter) Telemetry {
	cams := a.Cameras()
	t := Telemetry{UptimeS: int64(a.uptime().Seconds()), Cameras: len(cams), RSSBytes: rssBytes(), CPUPct: cpu.percent(),
		TS: nowMs()}
	for _, c := range cams {
		if c.Relay.Relaying {
			t.Relaying++
		}
	}
	st := a.db.Outbox().Stats()
	t.OutboxDepth, t.OutboxBytes, t.DroppedTelemetry, t.DroppedEvents = st.Depth, st.Bytes, st.DroppedTelemetry,
		st.DroppedEvents
	return t
}

func (a *Agent) publishTelemetry(ctx context.Context) {
	interval := a.config().MQTT.TelemetryInterval.Std()
	t := time.NewTicker(interval)
	defer t.Stop()
	cpu := newCPUMeter()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		link := a.link.Load()
		if link == nil || link.mqtt == nil {
			continue
		}
		b, err := json.Marshal(a.telemetry(cpu))
		if err != nil {
			a.log.Error("encoding telemetry", "err", err)
			continue
		}
		_ = a.enqueue(ctx, mqttQueue, store.Message{Class: store.ClassTelemetry, Topic: "telemetry",
			Payload: b}) // logged; the next one follows

	}
}

// emitEvent gives ev its event_id and queues it for every event sink, in the sink's format, and
// for MQTT, which carries the event_sink objects (SPEC §6). It fails if any queue did not take
// it; the ones that did keep it (event_id lets a receiver drop the repeat of a retry).
func (a *Agent) emitEvent(ctx context.Context, cameraID string, ev uplink.Event) error {
	link := a.link.Load()
	if link == nil {
		return nil
	}
	if link.ids == nil {
		return errors.New("no event ids: the store could not give one")
	}
	id, err := link.ids.Next()
	if err != nil {
		return fmt.Errorf("motion event of %s: %w", cameraID, err)
	}
	ev.ID = id
	var errs []error
	for _, s := range link.sinks {
		var b []byte
		if s.format == FormatEpisodes {
			_, b, err = ev.MarshalEpisode()
		} else {
			b, err = ev.MarshalEventSink(s.server)
		}
		if err == nil {
			err = a.enqueue(ctx, s.queue, store.Message{Class: store.ClassEvent, Payload: b})
		}
		errs = append(errs, err)
	}
	if link.mqtt != nil {
		b, err := ev.MarshalEventSink(link.server)
		if err == nil {
			err = a.enqueue(ctx, mqttQueue, store.Message{Class: store.ClassEvent, Topic: "cameras/" + cameraID + "/events",
				Payload: b})
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// publishHost is the host of flussonic.publish: the default "server" of events.
func publishHost(cfg *Config) string {
	u, err := url.Parse(cfg.Flussonic.Publish)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
