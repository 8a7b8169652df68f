package uplink

import (
	"context"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// What SC sees of a gateway differs between brokers where MQTT leaves room; these helpers show
// it the same way against each one (README, "Brokers").

// takeOver connects a second client with m's client id, as a gateway cloned from another's
// backup would, and returns the states published on m's status topic from then until m is
// connected again with the intruder gone. MQTT 3.1.1 §3.1.4 makes the broker close the older
// connection; whether that publishes the older one's Last Will is where brokers differ.
func takeOver(t *testing.T, addr string, m *MQTT, status *subscriber) string {
	t.Helper()
	before := len(statuses(t, status))
	lost := make(chan struct{})
	intruder := paho.NewClient(paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(m.clientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) }))
	if err := wait(context.Background(), intruder.Connect(), 20*time.Second, nil); err != nil {
		t.Fatalf("intruder's CONNECT: %v", err)
	}
	defer intruder.Disconnect(0)
	// camgate reconnects and takes its id back, which drops the intruder in turn.
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("camgate did not take its client id back within 30 s")
	}
	seen := func() string {
		var states []string
		for _, st := range statuses(t, status)[before:] {
			states = append(states, st.State)
		}
		return strings.Join(states, " ")
	}
	eventually(t, "camgate online again", 30*time.Second, func() bool {
		return strings.HasSuffix(seen(), "online") && m.Connected()
	})
	// A Will published late would leave the retained status offline: give it time to show.
	time.Sleep(2 * time.Second)
	return seen()
}

// Mosquitto publishes the Last Will of a client whose id was taken over (its connection ended
// without a DISCONNECT), so SC sees the gateway go offline and come back.
func TestClientIDTakeoverMosquitto(t *testing.T) {
	b := startBroker(t, "")
	q := newMemQueue()
	m := newTestMQTT(t, "mqtt://"+b.addr(), q, nil)
	runMQTT(t, m)
	status := subscribe(t, b, nil, prefix+"/status")
	eventually(t, "connected", 30*time.Second, m.Connected)
	if got := takeOver(t, b.addr(), m, status); got != "offline online" {
		t.Errorf("status after a client id takeover: %q, want %q", got, "offline online")
	}
}

// retainedAfterLoss cuts m's connection abruptly and keeps it from reconnecting, and returns the
// status a subscriber arriving afterwards gets: "offline" if the broker retained the Last Will
// (camgate sets the Will's retain flag), "online" if it kept the last retained status instead.
func retainedAfterLoss(t *testing.T, b *broker, p *proxy, m *MQTT) string {
	t.Helper()
	p.setRefuse(true)
	defer p.setRefuse(false)
	p.cut()
	eventually(t, "the client to notice the loss", 30*time.Second, func() bool { return !m.Connected() })
	// The Will goes out a moment after the broker notices the dead socket: ask again until it
	// shows or 10 s have passed.
	last := ""
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		late := subscribe(t, b, nil, prefix+"/status")
		time.Sleep(500 * time.Millisecond)
		if st := statuses(t, late); len(st) > 0 {
			last = st[len(st)-1].State
		}
		if last == "offline" {
			break
		}
	}
	return last
}

func TestLastWillIsRetainedMosquitto(t *testing.T) {
	b := startBroker(t, "")
	p := startProxy(t, b.addr())
	m := newTestMQTT(t, "mqtt://"+p.addr(), newMemQueue(), nil)
	runMQTT(t, m)
	eventually(t, "connected", 30*time.Second, m.Connected)
	if got := retainedAfterLoss(t, b, p, m); got != "offline" {
		t.Errorf("retained status after an abrupt loss: %q, want offline", got)
	}
	eventually(t, "connected again", 30*time.Second, m.Connected)
}
