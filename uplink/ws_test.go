package uplink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/camgate/camgate/store"
)

func TestWebSocketTransport(t *testing.T) {
	wsPort := freePort(t)
	b := startBroker(t, fmt.Sprintf("listener %d 127.0.0.1\nprotocol websockets\n", wsPort))
	sub := subscribe(t, b, nil, prefix+"/#")
	q := newMemQueue()
	m := newTestMQTT(t, fmt.Sprintf("ws://127.0.0.1:%d/mqtt", wsPort), q, nil)
	runMQTT(t, m)
	if err := q.Enqueue(context.Background(), "mqtt", store.Message{
		Class: store.ClassEvent, Topic: "cameras/c1/events", Payload: []byte(`{"n":0}`),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an event over websockets", 20*time.Second, func() bool {
		return len(sub.received(prefix+"/cameras/c1/events")) == 1 && len(sub.received(prefix+"/status")) > 0
	})
}
