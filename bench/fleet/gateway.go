package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/store"
	"github.com/camgate/camgate/uplink"
)

const mqttQueue = "mqtt"

// load is what every simulated gateway does, after SPEC §6 and what the agent queues
// (agent/uplink.go): a retained config and state per camera at start, each camera's state again
// once a minute (the agent's stateRefresh), telemetry every telemetry_interval at QoS 0, and
// motion episodes (a started and a stopped event, and the alarm's JPEG as the retained snapshot).
type load struct {
	cameras           int
	telemetryInterval time.Duration
	stateRefresh      time.Duration
	motionPerHour     float64 // episodes per camera per hour
	motionLength      time.Duration
	snapshot          []byte // the alarm JPEG's stand-in (its size is what matters to a broker)
	seedSnapshots     bool   // start with a retained snapshot per camera, as after a day's alarms
}

// gateway is one simulated camgate: its own bbolt outbox and camgate's real MQTT client.
type gateway struct {
	id     string
	db     *store.DB
	mqtt   *uplink.MQTT
	load   load
	events atomic.Int64 // motion events queued so far; also the last event's number
}

func newGateway(i int, dir, brokerURL string, l load) (*gateway, error) {
	id := fmt.Sprintf("gw%05d", i)
	log := slog.New(slog.DiscardHandler)
	db, err := store.Open(filepath.Join(dir, id+".db"), store.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", id, err)
	}
	m, err := uplink.NewMQTT(uplink.MQTTConfig{
		URL: brokerURL, TopicPrefix: "camgate/" + id, ClientID: "camgate-" + id,
		Version: "fleet-bench", Queue: mqttQueue, Logger: log,
	}, db.Outbox())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("gateway %s: %w", id, err)
	}
	return &gateway{id: id, db: db, mqtt: m, load: l}, nil
}

func (g *gateway) camera(c int) string { return fmt.Sprintf("cam%d", c) }

// run queues the gateway's registration and then its periodic traffic until ctx ends; the MQTT
// client drains it concurrently.
func (g *gateway) run(ctx context.Context, client chan<- error) {
	go func() { client <- g.mqtt.Run(ctx) }()
	var start []store.Message
	for c := range g.load.cameras {
		start = append(start, g.config(c), g.state(c))
		if g.load.seedSnapshots && len(g.load.snapshot) > 0 {
			start = append(start, store.Message{Class: store.ClassEvent, Topic: "cameras/" + g.camera(c) + "/snapshot",
				Retain: true, Payload: g.load.snapshot})
		}
	}
	g.enqueue(ctx, start...)

	// Random phases: a fleet's gateways did not all boot in the same second.
	telemetry := time.NewTimer(rand.N(g.load.telemetryInterval))
	defer telemetry.Stop()
	states := time.NewTimer(rand.N(g.load.stateRefresh))
	defer states.Stop()
	nextMotion := time.NewTimer(g.motionGap())
	defer nextMotion.Stop()
	began := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-telemetry.C:
			telemetry.Reset(g.load.telemetryInterval)
			g.enqueue(ctx, g.telemetry(began))
		case <-states.C:
			states.Reset(g.load.stateRefresh)
			var msgs []store.Message
			for c := range g.load.cameras {
				msgs = append(msgs, g.state(c))
			}
			g.enqueue(ctx, msgs...)
		case <-nextMotion.C:
			nextMotion.Reset(g.motionGap())
			g.motion(ctx)
		}
	}
}

func (g *gateway) enqueue(ctx context.Context, msgs ...store.Message) {
	// An error here is the bench's context ending (or the store closing with it).
	_ = g.db.Outbox().Enqueue(ctx, mqttQueue, msgs...)
}

// motionGap is the wait until the next episode on any of the gateway's cameras: a Poisson
// process, since cameras' alarms are independent of each other.
func (g *gateway) motionGap() time.Duration {
	rate := g.load.motionPerHour * float64(g.load.cameras) / 3600 // per second
	if rate <= 0 {
		return 1000 * time.Hour
	}
	return time.Duration(rand.ExpFloat64() / rate * float64(time.Second))
}

func (g *gateway) motion(ctx context.Context) {
	cam := g.camera(rand.IntN(g.load.cameras))
	began := time.Now()
	ev := uplink.Event{Kind: uplink.MotionStarted, Media: g.id + "-" + cam, At: began, Started: began,
		MotionID: fmt.Sprintf("%s-%s-%d", g.id, cam, began.UnixNano()), MotionData: "smtp: Motion Detection Alarm"}
	msgs := []store.Message{g.event(ev, cam)}
	if len(g.load.snapshot) > 0 {
		msgs = append(msgs, store.Message{Class: store.ClassEvent, Topic: "cameras/" + cam + "/snapshot", Retain: true,
			Payload: g.load.snapshot})
	}
	g.enqueue(ctx, msgs...)
	ev.Kind, ev.At = uplink.MotionStopped, began.Add(g.load.motionLength)
	time.AfterFunc(g.load.motionLength, func() { g.enqueue(ctx, g.event(ev, cam)) })
}

// event numbers ev as the gateway's next event: ids 1, 2, ... in the order they are queued,
// with the gateway's id as the event's server, so that the bench can tell exactly which ones
// never arrived.
func (g *gateway) event(ev uplink.Event, cam string) store.Message {
	ev.ID = g.events.Add(1)
	b, _ := ev.MarshalEventSink(g.id)
	return store.Message{Class: store.ClassEvent, Topic: "cameras/" + cam + "/events", Payload: b}
}

func eventIDOf(server string, n int64) string { return fmt.Sprintf("%s-%d", server, n) }

// config is the retained registration of SPEC §6, with the values a typical camera has.
func (g *gateway) config(c int) store.Message {
	cam := g.camera(c)
	b, _ := json.Marshal(map[string]any{
		"camera_id": cam, "agent_id": g.id + "-" + cam, "name": "Camera " + cam, "stream_name": g.id + "-" + cam,
		"publish_url": "rtsp://flussonic.example.net:5554/" + g.id + "-" + cam,
		"play_url":    "https://flussonic.example.net/" + g.id + "-" + cam + "/index.m3u8",
		"vendor":      "Hikvision", "model": "DS-2CD2143G2-I", "serial": "DS-2CD2143G2-I20230101AAWRK12345678",
		"mac": fmt.Sprintf("44:19:b6:%02x:%02x:%02x", c, len(g.id), c*7), "ip": fmt.Sprintf("192.168.1.%d", 100+c),
		"onvif":    fmt.Sprintf("http://192.168.1.%d/onvif/device_service", 100+c),
		"snapshot": true, "ptz": false, "audio": true, "enabled": true,
		"motion_sources": []string{"smtp", "onvif"}, "ts": time.Now().UnixMilli(),
	})
	return store.Message{Class: store.ClassRegistration, Topic: "cameras/" + cam + "/config", Retain: true, Payload: b}
}

func (g *gateway) state(c int) store.Message {
	b, _ := json.Marshal(map[string]any{
		"online": true, "relaying": true, "enabled": true, "codec": "H264", "width": 1920, "height": 1080, "fps": 25.0,
		"bitrate_bps": 2_000_000 + rand.IntN(100_000), "reconnects": 0, "last_error": "", "ts": time.Now().UnixMilli(),
	})
	return store.Message{Class: store.ClassEvent, Topic: "cameras/" + g.camera(c) + "/state", Retain: true, Payload: b}
}

func (g *gateway) telemetry(began time.Time) store.Message {
	st := g.db.Outbox().Stats()
	b, _ := json.Marshal(map[string]any{
		"uptime_s": int64(time.Since(began).Seconds()), "cameras": g.load.cameras, "relaying": g.load.cameras,
		"outbox_depth": st.Depth, "outbox_bytes": st.Bytes, "outbox_dropped_telemetry": st.DroppedTelemetry,
		"outbox_dropped_events": st.DroppedEvents, "rss_bytes": 24 << 20, "cpu_pct": 7.5, "ts": time.Now().UnixMilli(),
	})
	return store.Message{Class: store.ClassTelemetry, Topic: "telemetry", Payload: b}
}

func (g *gateway) depth() int { return g.db.Outbox().Stats().Queues[mqttQueue].Depth }
