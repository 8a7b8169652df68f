package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// brokerWait bounds every wait in these tests; generous, because the machine may be loaded.
const brokerWait = 10 * time.Second

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+", "a/", true},
		{"+/+", "/x", true},
		{"+", "a/b", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"#", "/", true},
		{"+/b/#", "x/b", true},
		{"#", "$SYS/load", false},
		{"+/load", "$SYS/load", false},
		{"$SYS/#", "$SYS/load", true},
		{"$SYS/+", "$SYS/load", true},
		{"a//c", "a//c", true},
		{"a/+/c", "a//c", true},
	}
	for _, tt := range tests {
		if got := matchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"a/b", true},
		{"#", true},
		{"+", true},
		{"a/+/#", true},
		{"/", true},
		{"", false},
		{"a/#/b", false},
		{"a#", false},
		{"a/b+", false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		if got := validFilter(tt.filter); got != tt.want {
			t.Errorf("validFilter(%q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestBrokerOutLine(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"text as is", []byte(`{"state":"online"}`), `s {"state":"online"}`},
		{"empty", nil, "s "},
		{"multi-line JSON on one line", []byte("{\n\t\"a\": 1\n}"), `s {  "a": 1 }`},
		{"long text cut at 200 bytes", bytes.Repeat([]byte("é"), 150), "s " + strings.Repeat("é", 100) + "… (300 bytes)"},
		{"binary summarised", []byte{0xff, 0x00, 0x01}, "s <3 bytes binary>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			b := &Broker{out: &out}
			b.print(publishPacket{topic: "s", payload: tt.payload})
			if out.String() != tt.want+"\n" {
				t.Errorf("printed %q, want %q", out.String(), tt.want+"\n")
			}
		})
	}
}

func TestBrokerRetainedLimit(t *testing.T) {
	b := startBroker(t, nil, func(l *brokerLimits) { l.maxRetained = 2 })
	for _, topic := range []string{"r/1", "r/2", "r/3"} {
		b.Publish(topic, []byte("v"), true)
	}
	b.Publish("r/1", []byte("replaced"), true)
	for topic, want := range map[string]string{"r/1": "replaced", "r/2": "v", "r/3": ""} {
		if p, _ := b.Retained(topic); string(p) != want {
			t.Errorf("Retained(%q) = %q, want %q", topic, p, want)
		}
	}
}

// startBroker runs a broker on loopback for the test; limits, if given, adjusts its bounds.
func startBroker(t *testing.T, out io.Writer, limits func(*brokerLimits)) *Broker {
	t.Helper()
	b, err := NewBroker(BrokerConfig{Addr: "127.0.0.1:0", Out: out,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if limits != nil {
		limits(&b.limits)
	}
	runSim(t, b.Run)
	return b
}

// pahoInbox collects the messages a paho client gets.
type pahoInbox struct {
	mu   sync.Mutex
	msgs []mqtt.Message
	note chan struct{}
}

func newPahoInbox() *pahoInbox { return &pahoInbox{note: make(chan struct{}, 1)} }

func (r *pahoInbox) handle(_ mqtt.Client, m mqtt.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.note <- struct{}{}:
	default:
	}
}

// next waits for the i-th message (0-based).
func (r *pahoInbox) next(t *testing.T, i int) mqtt.Message {
	t.Helper()
	deadline := time.After(brokerWait)
	for {
		r.mu.Lock()
		if len(r.msgs) > i {
			m := r.msgs[i]
			r.mu.Unlock()
			return m
		}
		r.mu.Unlock()
		select {
		case <-r.note:
		case <-deadline:
			t.Fatalf("message %d did not arrive", i)
		}
	}
}

func pahoClient(t *testing.T, b *Broker, id string, configure func(*mqtt.ClientOptions)) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(id).
		SetAutoReconnect(false).SetConnectTimeout(brokerWait).SetUsername("any").SetPassword("thing")
	if configure != nil {
		configure(opts)
	}
	c := mqtt.NewClient(opts)
	waitToken(t, "connect "+id, c.Connect())
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func waitToken(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(brokerWait) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestBrokerPahoQoS1(t *testing.T) {
	var out brokerOutBuffer
	b := startBroker(t, &out, nil)
	sub := pahoClient(t, b, "sub", nil)
	got := newPahoInbox()
	waitToken(t, "subscribe", sub.Subscribe("cams/+/config", 1, got.handle))
	pub := pahoClient(t, b, "pub", nil)

	long := strings.Repeat("x", 300)
	waitToken(t, "publish", pub.Publish("cams/porch/config", 1, false, `{"name":"Porch"}`))
	waitToken(t, "publish", pub.Publish("cams/porch/other", 1, false, "not matched"))
	waitToken(t, "publish", pub.Publish("cams/yard/config", 0, false, long))

	m := got.next(t, 0)
	if m.Topic() != "cams/porch/config" || string(m.Payload()) != `{"name":"Porch"}` || m.Qos() != 1 || m.Retained() {
		t.Errorf("first message: topic %q payload %q qos %d retained %v", m.Topic(), m.Payload(), m.Qos(), m.Retained())
	}
	// Delivered at min(publish QoS 0, subscription QoS 1).
	if m := got.next(t, 1); m.Topic() != "cams/yard/config" || m.Qos() != 0 || string(m.Payload()) != long {
		t.Errorf("second message: topic %q qos %d, %d bytes", m.Topic(), m.Qos(), len(m.Payload()))
	}

	lines := out.String()
	for _, want := range []string{
		"cams/porch/config {\"name\":\"Porch\"}\n",
		"cams/porch/other not matched\n",
		"cams/yard/config " + strings.Repeat("x", 200) + "… (300 bytes)\n",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("Out lacks %q; got:\n%s", want, lines)
		}
	}
}

func TestBrokerPahoRetained(t *testing.T) {
	b := startBroker(t, nil, nil)
	pub := pahoClient(t, b, "pub", nil)
	waitToken(t, "publish retained", pub.Publish("gw/status", 1, true, "online"))
	if p, ok := b.Retained("gw/status"); !ok || string(p) != "online" {
		t.Fatalf("Retained after publish = %q, %v", p, ok)
	}

	late := pahoClient(t, b, "late", nil)
	got := newPahoInbox()
	waitToken(t, "subscribe", late.Subscribe("gw/#", 1, got.handle))
	if m := got.next(t, 0); m.Topic() != "gw/status" || string(m.Payload()) != "online" || !m.Retained() || m.Qos() != 1 {
		t.Errorf("retained delivery: topic %q payload %q retained %v qos %d", m.Topic(), m.Payload(), m.Retained(), m.Qos())
	}

	waitToken(t, "clear retained", pub.Publish("gw/status", 1, true, ""))
	// The current subscriber still gets the empty message, as a normal one.
	if m := got.next(t, 1); len(m.Payload()) != 0 || m.Retained() {
		t.Errorf("clearing message: payload %q retained %v", m.Payload(), m.Retained())
	}
	if p, ok := b.Retained("gw/status"); ok {
		t.Fatalf("Retained after clearing = %q, true", p)
	}

	// A new subscriber gets nothing retained: the marker published after subscribing comes first.
	again := pahoClient(t, b, "again", nil)
	got2 := newPahoInbox()
	waitToken(t, "subscribe", again.Subscribe("gw/#", 1, got2.handle))
	waitToken(t, "publish marker", pub.Publish("gw/marker", 1, false, "m"))
	if m := got2.next(t, 0); m.Topic() != "gw/marker" {
		t.Errorf("after clearing, a new subscriber first got %q %q", m.Topic(), m.Payload())
	}
}

func TestBrokerPahoWill(t *testing.T) {
	b := startBroker(t, nil, nil)
	watcher := pahoClient(t, b, "watcher", nil)
	got := newPahoInbox()
	waitToken(t, "subscribe", watcher.Subscribe("gw/status", 1, got.handle))

	conns := make(chan net.Conn, 1)
	pahoClient(t, b, "gw", func(o *mqtt.ClientOptions) {
		o.SetWill("gw/status", "offline", 1, true)
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.Dial("tcp", u.Host)
			if err == nil {
				conns <- c
			}
			return c, err
		})
	})
	(<-conns).Close() // the gateway loses its uplink without a DISCONNECT

	if m := got.next(t, 0); string(m.Payload()) != "offline" {
		t.Errorf("will: got %q", m.Payload())
	}
	if p, ok := b.Retained("gw/status"); !ok || string(p) != "offline" {
		t.Errorf("retained will = %q, %v", p, ok)
	}
}

func TestBrokerPahoDisconnectDropsWill(t *testing.T) {
	b := startBroker(t, nil, nil)
	gw := pahoClient(t, b, "gw", func(o *mqtt.ClientOptions) { o.SetWill("gw/status", "offline", 1, true) })
	gw.Disconnect(250)
	brokerWaitFor(t, "the client to be gone", func() bool { return brokerConnCount(b) == 0 })
	if p, ok := b.Retained("gw/status"); ok {
		t.Errorf("will published after DISCONNECT: %q", p)
	}
}

func TestBrokerPublishInjects(t *testing.T) {
	b := startBroker(t, nil, nil)
	sub := pahoClient(t, b, "agent", nil)
	got := newPahoInbox()
	waitToken(t, "subscribe", sub.Subscribe("gw/cmd/#", 2, got.handle)) // granted QoS 1
	b.Publish("gw/cmd/add", []byte(`{"url":"rtsp://x"}`), false)
	if m := got.next(t, 0); m.Topic() != "gw/cmd/add" || m.Qos() != 1 || string(m.Payload()) != `{"url":"rtsp://x"}` {
		t.Errorf("injected: topic %q qos %d payload %q", m.Topic(), m.Qos(), m.Payload())
	}
}

func TestBrokerMosquittoRetainedOnly(t *testing.T) {
	sub := needTool(t, "mosquitto_sub", "mosquitto-clients")
	pub := needTool(t, "mosquitto_pub", "mosquitto-clients")
	b := startBroker(t, nil, nil)
	host, port := brokerHostPort(t, b)

	runMosquitto(t, pub, "-h", host, "-p", port, "-q", "1", "-r",
		"-t", "gw/cameras/porch/config", "-m", `{"name":"Porch"}`)
	b.Publish("gw/status", []byte("online"), true)
	b.Publish("gw/events", []byte("not retained"), false)

	// mqttv31 speaks protocol level 3, "MQIsdp".
	for _, version := range []string{"mqttv311", "mqttv31"} {
		out := runMosquitto(t, sub, "-V", version, "-h", host, "-p", port,
			"-t", "gw/#", "-v", "-W", "2", "--retained-only", "-C", "2")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		slices.Sort(lines)
		want := []string{`gw/cameras/porch/config {"name":"Porch"}`, "gw/status online"}
		if !slices.Equal(lines, want) {
			t.Errorf("mosquitto_sub -V %s --retained-only printed %q, want %q", version, lines, want)
		}
	}
}

func TestBrokerMosquittoWildcards(t *testing.T) {
	subBin := needTool(t, "mosquitto_sub", "mosquitto-clients")
	pub := needTool(t, "mosquitto_pub", "mosquitto-clients")
	b := startBroker(t, nil, nil)
	host, port := brokerHostPort(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), brokerWait)
	defer cancel()
	sub := exec.CommandContext(ctx, subBin, "-h", host, "-p", port, "-q", "1", "-v", "-C", "3", "-i", "wild",
		"-t", "a/+/c", "-t", "x/#", "-t", "+/+/never")
	var stdout, stderr brokerOutBuffer
	sub.Stdout, sub.Stderr = &stdout, &stderr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	brokerWaitFor(t, "mosquitto_sub to subscribe", func() bool { return brokerSubscribed(b, "wild", "a/+/c", "x/#") })

	for _, topic := range []string{"a/b/d", "a/b/c", "$x/y", "x", "b/b/c", "x/y/z"} {
		runMosquitto(t, pub, "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", "on "+topic)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, stderr.String())
	}
	want := "a/b/c on a/b/c\nx on x\nx/y/z on x/y/z\n"
	if stdout.String() != want {
		t.Errorf("mosquitto_sub printed %q, want %q", stdout.String(), want)
	}
}

// TestBrokerBadInput: each stream ends the connection that sent it, and nothing else.
func TestBrokerBadInput(t *testing.T) {
	b := startBroker(t, nil, nil)
	bystander := pahoClient(t, b, "bystander", nil)
	got := newPahoInbox()
	waitToken(t, "subscribe", bystander.Subscribe("still/#", 1, got.handle))

	tests := []struct {
		name string
		// handshake sends a CONNECT and waits for CONNACK before the stream.
		handshake bool
		stream    []byte
		// answer is what the broker sends back before closing.
		answer []byte
	}{
		{"garbage instead of CONNECT", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), nil},
		{"PUBLISH before CONNECT", false, rawPublish("a", "b", 0), nil},
		{"remaining length over 4 bytes", false, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, nil},
		{"unsupported protocol level", false, []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 0, 0},
			encodeConnack(connBadProtocol)},
		{"unknown protocol name", false, []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 0}, nil},
		{"empty client id without clean session", false, []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0, 60, 0, 0},
			encodeConnack(connBadClientID)},
		{"oversized packet", true, []byte{0x30, 0x80, 0x80, 0x80, 0x01}, nil}, // announces a 2 MiB PUBLISH
		{"reserved packet type 0", true, []byte{0x00, 0x00}, nil},
		{"reserved packet type 15", true, []byte{0xf0, 0x00}, nil},
		{"QoS 2 PUBLISH", true, rawPublish("a", "b", 2), nil},
		{"QoS 3 PUBLISH", true, []byte{0x36, 0x05, 0, 1, 'a', 0, 1}, nil},
		{"wildcard in topic name", true, rawPublish("a/#", "b", 0), nil},
		{"topic length past the end", true, []byte{0x30, 0x03, 0x00, 0x09, 'a'}, nil},
		{"invalid UTF-8 topic", true, []byte{0x30, 0x04, 0, 2, 0xc3, 0x28}, nil},
		{"second CONNECT", true, connectPacketBytes("bad", 60, nil), nil},
		{"SUBSCRIBE with bad flags", true, []byte{0x80, 0x06, 0, 1, 0, 1, 'a', 0}, nil},
		{"SUBSCRIBE QoS byte 3", true, []byte{0x82, 0x06, 0, 1, 0, 1, 'a', 3}, nil},
		{"PINGREQ with a body", true, []byte{0xc0, 0x01, 0}, nil},
		{"PUBREC of QoS 2", true, []byte{0x50, 0x02, 0, 1}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialBroker(t, b)
			if tt.handshake {
				handshake(t, c, "bad")
			}
			if _, err := c.Write(tt.stream); err != nil {
				t.Fatal(err)
			}
			if rest := readUntilBrokerCloses(t, c); !bytes.Equal(rest, tt.answer) {
				t.Errorf("broker answered % x, want % x", rest, tt.answer)
			}
			// The bystander is undisturbed.
			b.Publish("still/here", []byte(tt.name), false)
			if m := got.next(t, i); string(m.Payload()) != tt.name {
				t.Errorf("bystander got %q", m.Payload())
			}
		})
	}
	if !bystander.IsConnectionOpen() {
		t.Error("bystander lost its connection")
	}
}

func TestBrokerKeepAliveAndWill(t *testing.T) {
	b := startBroker(t, nil, nil)
	watcher := pahoClient(t, b, "watcher", nil)
	got := newPahoInbox()
	waitToken(t, "subscribe", watcher.Subscribe("gw/status", 1, got.handle))

	c := dialBroker(t, b)
	will := &publishPacket{topic: "gw/status", payload: []byte("offline"), qos: 1}
	if _, err := c.Write(connectPacketBytes("silent", 1, will)); err != nil {
		t.Fatal(err)
	}
	// Silent for 1.5 × the 1 s keep alive: the broker gives up and publishes the will.
	rest := readUntilBrokerCloses(t, c)
	if !bytes.Equal(rest, encodeConnack(0)) {
		t.Errorf("broker sent % x, want only CONNACK", rest)
	}
	if m := got.next(t, 0); string(m.Payload()) != "offline" {
		t.Errorf("will: %q", m.Payload())
	}
}

func TestBrokerTakeover(t *testing.T) {
	b := startBroker(t, nil, nil)
	watcher := pahoClient(t, b, "watcher", nil)
	got := newPahoInbox()
	waitToken(t, "subscribe", watcher.Subscribe("gw/status", 1, got.handle))

	will := &publishPacket{topic: "gw/status", payload: []byte("offline"), qos: 1, retain: true}
	old := dialBroker(t, b)
	brokerSend(t, old, connectPacketBytes("gw", 60, will))
	r := bufio.NewReader(old)
	if p, err := readPacket(r, 1024); err != nil || p.typ != typeConnack {
		t.Fatalf("first connection: %v, %+v", err, p)
	}

	// The new connection of the same client takes over; the old one ends without DISCONNECT,
	// so its will goes out before the new connection says it is online.
	gw := pahoClient(t, b, "gw", nil)
	waitToken(t, "publish", gw.Publish("gw/status", 1, true, "online"))
	if _, err := io.ReadAll(r); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("old connection ended with %v", err)
	}
	if m := got.next(t, 0); string(m.Payload()) != "offline" {
		t.Errorf("first status %q, want the old connection's will", m.Payload())
	}
	if m := got.next(t, 1); string(m.Payload()) != "online" {
		t.Errorf("second status %q", m.Payload())
	}
	if p, _ := b.Retained("gw/status"); string(p) != "online" {
		t.Errorf("retained status %q, want online", p)
	}
	if !gw.IsConnectionOpen() {
		t.Error("the new connection was closed")
	}
}

func TestBrokerSlowClient(t *testing.T) {
	b := startBroker(t, nil, func(l *brokerLimits) { l.queue = 4; l.writeTimeout = time.Second })
	slow := dialBroker(t, b)
	brokerSend(t, slow, connectPacketBytes("slow", 0, nil))
	brokerSend(t, slow, []byte{0x82, 0x06, 0, 1, 0, 1, '#', 1}) // SUBSCRIBE # QoS 1, then never read
	brokerWaitFor(t, "the subscription", func() bool { return brokerSubscribed(b, "slow", "#") })

	payload := bytes.Repeat([]byte("v"), 64<<10)
	brokerWaitFor(t, "the slow client to be dropped", func() bool {
		b.Publish("video", payload, false)
		return brokerConnCount(b) == 0
	})
	if p, ok := b.Retained("video"); ok {
		t.Errorf("unexpected retained %d bytes", len(p))
	}
}

func TestBrokerMaxClients(t *testing.T) {
	b := startBroker(t, nil, func(l *brokerLimits) { l.maxClients = 2 })
	pahoClient(t, b, "one", nil)
	pahoClient(t, b, "two", nil)
	c := dialBroker(t, b)
	brokerSend(t, c, connectPacketBytes("three", 60, nil))
	if rest := readUntilBrokerCloses(t, c); len(rest) != 0 {
		t.Errorf("third client got % x, want the connection closed", rest)
	}
}

// FuzzBrokerPacket feeds arbitrary streams to the packet decoder: it must not panic, must stop,
// and whatever PUBLISH it accepts must survive encoding and decoding again unchanged.
func FuzzBrokerPacket(f *testing.F) {
	connect := connectPacketBytes("cam", 30, &publishPacket{topic: "s", payload: []byte("off"), qos: 1, retain: true})
	f.Add(connect)
	f.Add(append(append([]byte{}, connect...), rawPublish("a/b", "hello", 1)...))
	f.Add([]byte{0x82, 0x0b, 0, 7, 0, 3, 'a', '/', '+', 1, 0, 1, '#', 0})
	f.Add([]byte{0xa2, 0x05, 0, 3, 0, 1, '#'})
	f.Add([]byte{0x40, 0x02, 0x12, 0x34, 0xc0, 0x00, 0xe0, 0x00})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range len(data) + 1 {
			p, err := readPacket(r, 4096)
			if err != nil {
				return
			}
			// The decoders' results do not matter here, only that they return.
			switch p.typ {
			case typeConnect:
				_, _ = decodeConnect(p)
			case typeSubscribe:
				_, _ = decodeSubscribe(p)
			case typeUnsubscribe:
				_, _ = decodeUnsubscribe(p)
			case typePuback:
				_, _ = decodeAck(p)
			case typePublish:
				m, err := decodePublish(p)
				if err != nil {
					continue
				}
				again, err := readPacket(bufio.NewReader(bytes.NewReader(encodePublish(m))), 4096)
				if err != nil {
					t.Fatalf("re-read of an encoded PUBLISH: %v", err)
				}
				m2, err := decodePublish(again)
				if err != nil {
					t.Fatalf("re-decode of an encoded PUBLISH: %v", err)
				}
				if !reflect.DeepEqual(normalizedPublish(m), normalizedPublish(m2)) {
					t.Fatalf("PUBLISH round trip: %+v != %+v", m, m2)
				}
			}
		}
		t.Fatal("readPacket did not consume its input")
	})
}

func normalizedPublish(m publishPacket) publishPacket {
	if len(m.payload) == 0 {
		m.payload = nil
	}
	return m
}

// connectPacketBytes is an MQTT 3.1.1 CONNECT with clean session.
func connectPacketBytes(id string, keepAlive uint16, will *publishPacket) []byte {
	flags := byte(0x02)
	var body []byte
	body = appendMQTTString(body, "MQTT")
	body = append(body, 4, 0)
	body = binary.BigEndian.AppendUint16(body, keepAlive)
	body = appendMQTTString(body, id)
	if will != nil {
		flags |= 0x04 | will.qos<<3
		if will.retain {
			flags |= 0x20
		}
		body = appendMQTTString(body, will.topic)
		body = appendMQTTString(body, string(will.payload))
	}
	body[7] = flags
	return append(appendFixedHeader(nil, typeConnect<<4, len(body)), body...)
}

func appendMQTTString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

func rawPublish(topic, payload string, qos byte) []byte {
	return encodePublish(publishPacket{topic: topic, payload: []byte(payload), qos: qos, id: 1})
}

// handshake connects c as client id and reads the CONNACK.
func handshake(t *testing.T, c net.Conn, id string) {
	t.Helper()
	if _, err := c.Write(connectPacketBytes(id, 60, nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(brokerWait)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || !bytes.Equal(ack, encodeConnack(connAccepted)) {
		t.Fatalf("CONNACK: % x, %v", ack, err)
	}
}

func dialBroker(t *testing.T, b *Broker) net.Conn {
	t.Helper()
	host, port := brokerHostPort(t, b)
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), brokerWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// brokerSend writes raw bytes to the broker, failing the test if they cannot be sent.
func brokerSend(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("send to the broker: %v", err)
	}
}

// readUntilClosed returns what the broker sent before closing c, failing if it keeps it open.
func readUntilBrokerCloses(t *testing.T, c net.Conn) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(brokerWait)); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("broker kept the connection open (got % x)", data)
	}
	return data
}

func brokerHostPort(t *testing.T, b *Broker) (string, string) {
	t.Helper()
	u, err := url.Parse(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), u.Port()
}

func runMosquitto(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokerWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func brokerWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(brokerWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func brokerConnCount(b *Broker) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

func brokerSubscribed(b *Broker, client string, filters ...string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.clients[client]
	if !ok {
		return false
	}
	for _, f := range filters {
		if _, ok := c.subs[f]; !ok {
			return false
		}
	}
	return true
}

// brokerOutBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type brokerOutBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *brokerOutBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *brokerOutBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
