package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camgate/camgate/store"
)

const prefix = "camgate/gw1"

// runMQTT starts m.Run and stops it (waiting for Run to return) at the end of the test or when
// the returned function is called.
func runMQTT(t testing.TB, m *MQTT) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newTestMQTT(t testing.TB, url string, q Queue, edit func(*MQTTConfig)) *MQTT {
	t.Helper()
	cfg := MQTTConfig{URL: url, TopicPrefix: prefix, Version: "1.2.3", Queue: "mqtt", Logger: testLogger(t)}
	if edit != nil {
		edit(&cfg)
	}
	m, err := NewMQTT(cfg, q)
	if err != nil {
		t.Fatalf("NewMQTT: %v", err)
	}
	m.retryMin, m.retryMax = 50*time.Millisecond, 500*time.Millisecond
	return m
}

type status struct {
	State   string `json:"state"`
	Version string `json:"version"`
	TS      int64  `json:"ts"`
}

func statuses(t testing.TB, s *subscriber) []status {
	var out []status
	for _, p := range s.received(prefix + "/status") {
		var st status
		if err := json.Unmarshal([]byte(p), &st); err != nil {
			t.Fatalf("status payload %q: %v", p, err)
		}
		out = append(out, st)
	}
	return out
}

func TestStatusOnlineThenLastWillThenCleanOffline(t *testing.T) {
	b := startBroker(t, "")
	p := startProxy(t, b.addr())
	sub := subscribe(t, b, nil, prefix+"/status")

	m := newTestMQTT(t, "mqtt://"+p.addr(), newMemQueue(), nil)
	stop := runMQTT(t, m)
	eventually(t, "status online", 20*time.Second, func() bool {
		st := statuses(t, sub)
		return len(st) > 0 && st[len(st)-1].State == "online"
	})
	if !m.Connected() {
		t.Error("Connected() = false while the broker has our online status")
	}
	if st := statuses(t, sub)[0]; st.Version != "1.2.3" || st.TS < time.Now().Add(-time.Hour).UnixMilli() {
		t.Errorf("online status = %+v, want version 1.2.3 and ts in ms", st)
	}

	// An abrupt loss of the connection: the broker publishes our Last Will.
	p.cut()
	eventually(t, "offline from the Last Will", 20*time.Second, func() bool {
		for _, st := range statuses(t, sub)[1:] {
			if st.State == "offline" {
				return true
			}
		}
		return false
	})
	// ... and the client comes back by itself.
	eventually(t, "online again after reconnecting", 20*time.Second, func() bool {
		st := statuses(t, sub)
		return st[len(st)-1].State == "online" && m.Connected()
	})

	// A clean stop leaves offline retained.
	stop()
	if m.Connected() {
		t.Error("Connected() = true after Run returned")
	}
	late := subscribe(t, b, nil, prefix+"/status")
	eventually(t, "retained offline after a clean stop", 20*time.Second, func() bool {
		st := statuses(t, late)
		return len(st) > 0 && st[len(st)-1].State == "offline"
	})
}

// numbered enqueues n messages whose payload carries their sequence number.
func numbered(t testing.TB, q interface {
	Enqueue(context.Context, string, ...store.Message) error
}, from, n int) {
	t.Helper()
	msgs := make([]store.Message, 0, n)
	for i := from; i < from+n; i++ {
		msgs = append(msgs, store.Message{
			Class:   store.ClassEvent,
			Topic:   "cameras/c1/events",
			Payload: fmt.Appendf(nil, `{"n":%d}`, i),
		})
	}
	if err := q.Enqueue(context.Background(), "mqtt", msgs...); err != nil {
		t.Fatal(err)
	}
}

// checkInOrder checks that every n in [0,total) arrived and that first arrivals are in order;
// duplicates (at-least-once) are allowed.
func checkInOrder(t testing.TB, payloads []string, total int) bool {
	t.Helper()
	seen := make(map[int]bool, total)
	last := -1
	for _, p := range payloads {
		var v struct{ N int }
		if err := json.Unmarshal([]byte(p), &v); err != nil {
			t.Fatalf("payload %q: %v", p, err)
		}
		if seen[v.N] {
			continue
		}
		if v.N != last+1 {
			t.Fatalf("message %d arrived first after %d: out of order", v.N, last)
		}
		seen[v.N] = true
		last = v.N
	}
	return len(seen) == total
}

func TestOutageDeliversEverythingInOrder(t *testing.T) {
	b := startBroker(t, "")
	p := startProxy(t, b.addr())
	q := newMemQueue()
	m := newTestMQTT(t, "mqtt://"+p.addr(), q, nil)
	runMQTT(t, m)
	eventually(t, "connected", 20*time.Second, m.Connected)

	b.stop()
	eventually(t, "the client to notice the outage", 20*time.Second, func() bool { return !m.Connected() })
	numbered(t, q, 0, 1000)
	if m.LastError() == "" {
		t.Error("LastError() empty during an outage")
	}

	// Hold the client off until mosquitto_sub is listening, so nothing is published unseen.
	p.setRefuse(true)
	b.start()
	sub := subscribe(t, b, nil, prefix+"/cameras/+/events")
	p.setRefuse(false)
	eventually(t, "1000 messages in order", 60*time.Second, func() bool {
		return checkInOrder(t, sub.received(prefix+"/cameras/c1/events"), 1000)
	})
	eventually(t, "the queue to empty", 20*time.Second, func() bool { return q.depth("mqtt") == 0 })
	if m.LastError() != "" {
		t.Errorf("LastError() = %q after recovering", m.LastError())
	}
}

func TestConnectionCutMidDrainResendsInOrder(t *testing.T) {
	b := startBroker(t, "")
	p := startProxy(t, b.addr())
	sub := subscribe(t, b, nil, prefix+"/cameras/+/events")
	q := newMemQueue()
	m := newTestMQTT(t, "mqtt://"+p.addr(), q, nil)
	runMQTT(t, m)
	eventually(t, "connected", 20*time.Second, m.Connected)

	numbered(t, q, 0, 5000)
	for range 3 {
		eventually(t, "some progress", 30*time.Second, func() bool {
			return len(sub.received(prefix+"/cameras/c1/events")) > 0
		})
		p.cut()
	}
	eventually(t, "5000 messages in order", 60*time.Second, func() bool {
		return checkInOrder(t, sub.received(prefix+"/cameras/c1/events"), 5000)
	})
}

func TestRetainedRegistrationAndItsClearing(t *testing.T) {
	b := startBroker(t, "")
	q := newMemQueue()
	m := newTestMQTT(t, "mqtt://"+b.addr(), q, nil)
	runMQTT(t, m)

	config := `{"camera_id":"c1","agent_id":"0123456789"}`
	sendConfig(t, q, config)
	late := subscribe(t, b, nil, prefix+"/cameras/#")
	eventually(t, "retained registration", 20*time.Second, func() bool {
		got := late.received(prefix + "/cameras/c1/config")
		return len(got) == 1 && got[0] == config
	})

	sendConfig(t, q, "")
	// Retained messages arrive right after SUBACK, before the probe that subscribe waits for.
	later := subscribe(t, b, nil, prefix+"/cameras/#")
	if got := later.received(prefix + "/cameras/c1/config"); len(got) != 0 {
		t.Errorf("after clearing, a new subscriber still gets %q", got)
	}
}

func TestTelemetryIsSentAtQoS0AndLeavesTheQueue(t *testing.T) {
	b := startBroker(t, "")
	sub := subscribe(t, b, nil, prefix+"/telemetry")
	q := newMemQueue()
	m := newTestMQTT(t, "mqtt://"+b.addr(), q, nil)
	runMQTT(t, m)
	if err := q.Enqueue(context.Background(), "mqtt", store.Message{
		Class: store.ClassTelemetry, Topic: "telemetry", Payload: []byte(`{"uptime_s":1}`),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "telemetry", 20*time.Second, func() bool { return len(sub.received(prefix+"/telemetry")) == 1 })
	eventually(t, "the queue to empty", 20*time.Second, func() bool { return q.depth("mqtt") == 0 })
}

func TestUndeliverableTopicIsDroppedNotBlocking(t *testing.T) {
	b := startBroker(t, "")
	sub := subscribe(t, b, nil, prefix+"/#")
	q := newMemQueue()
	m := newTestMQTT(t, "mqtt://"+b.addr(), q, nil)
	runMQTT(t, m)
	for _, topic := range []string{"", "cameras/+/config", "a#"} {
		if err := q.Enqueue(context.Background(), "mqtt",
			store.Message{Class: store.ClassEvent, Topic: topic, Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Enqueue(context.Background(), "mqtt",
		store.Message{Class: store.ClassEvent, Topic: "after", Payload: []byte(`{"ok":1}`)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the good message behind the bad ones", 20*time.Second, func() bool {
		return len(sub.received(prefix+"/after")) == 1
	})
	eventually(t, "the queue to empty", 20*time.Second, func() bool { return q.depth("mqtt") == 0 })
}

func TestNewMQTTRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*MQTTConfig)
		want string
	}{
		{"scheme", func(c *MQTTConfig) { c.URL = "http://sc.example.com" }, "scheme must be mqtt, mqtts, ws or wss"},
		{"no host", func(c *MQTTConfig) { c.URL = "mqtt://" }, "no host"},
		{"unparsable", func(c *MQTTConfig) { c.URL = "mqtt://[::1" }, "mqtt: url"},
		{"missing ca file", func(c *MQTTConfig) { c.URL = "mqtts://sc.example.com"; c.CAFile = "/nonexistent/ca.pem" },
			"mqtt: ca_file"},
		{"cert without key", func(c *MQTTConfig) { c.URL = "mqtts://sc.example.com"; c.CertFile = "/x.pem" },
			"cert_file and key_file must be set together"},
		{"tls files without tls", func(c *MQTTConfig) { c.CAFile = "/x.pem" }, "is not TLS"},
		{"no prefix", func(c *MQTTConfig) { c.TopicPrefix = "" }, "topic_prefix"},
		{"wildcard prefix", func(c *MQTTConfig) { c.TopicPrefix = "camgate/+" }, "topic_prefix"},
		{"no queue", func(c *MQTTConfig) { c.Queue = "" }, "no outbox queue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := MQTTConfig{URL: "mqtt://sc.example.com", TopicPrefix: prefix, Queue: "mqtt"}
			tt.edit(&cfg)
			_, err := NewMQTT(cfg, newMemQueue())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewMQTT error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBrokerURLDefaults(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mqtt://sc.example.com", "mqtt://sc.example.com:1883"},
		{"mqtts://sc.example.com", "mqtts://sc.example.com:8883"},
		{"ws://sc.example.com/mqtt", "ws://sc.example.com:80/mqtt"},
		{"wss://sc.example.com/mqtt", "wss://sc.example.com:443/mqtt"},
		{"mqtt://[::1]", "mqtt://[::1]:1883"},
		{"mqtt://sc.example.com:1884", "mqtt://sc.example.com:1884"},
	}
	for _, tt := range tests {
		u, err := brokerURL(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("brokerURL(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

func TestClientIDDefaultsFromPrefix(t *testing.T) {
	m, err := NewMQTT(MQTTConfig{URL: "mqtt://h", TopicPrefix: "camgate/gw1/", Queue: "mqtt"}, newMemQueue())
	if err != nil {
		t.Fatal(err)
	}
	if m.clientID != "camgate-gw1" {
		t.Errorf("client id = %q, want camgate-gw1", m.clientID)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestCutWindow(t *testing.T) {
	msgs := func(sizes ...int) []store.Message {
		var out []store.Message
		for _, s := range sizes {
			out = append(out, store.Message{Payload: make([]byte, s)})
		}
		return out
	}
	tests := []struct {
		name     string
		peeked   []store.Message
		n        int
		wantLen  int
		wantNext int
	}{
		{"small and full: grow", msgs(10, 10, 10, 10), 4, 4, 8},
		{"small, not full: keep", msgs(10, 10), 4, 2, 4},
		{"growth is capped", make([]store.Message, maxWindow), maxWindow, maxWindow, maxWindow},
		{"big: cut and shrink", msgs(3<<20, 3<<20, 10), 3, 2, 2},
		{"one huge message still goes", msgs(5<<20, 10), 2, 1, 1},
		{"empty", nil, 64, 0, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next := cutWindow(tt.peeked, tt.n)
			if len(got) != tt.wantLen || next != tt.wantNext {
				t.Errorf("cutWindow = %d messages, next %d; want %d, next %d", len(got), next, tt.wantLen, tt.wantNext)
			}
		})
	}
}

func FuzzBrokerURL(f *testing.F) {
	for _, s := range []string{"mqtt://h", "mqtts://u:p@h:8883", "ws://h/mqtt", "wss://[::1]/x", "mqtt://[::1", "http://h",
		"mqtt://:0", "mqtt://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := brokerURL(raw)
		if err != nil {
			return
		}
		if u.Hostname() == "" || u.Port() == "" {
			t.Fatalf("brokerURL(%q) = %s: accepted without host or port", raw, u)
		}
	})
}
