package uplink

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/camgate/camgate/store"
)

// BenchmarkDrainQoS1 drains b.N queued event messages from the real bbolt outbox to a local
// mosquitto at QoS 1, each acknowledged in the outbox only after its PUBACK.
func BenchmarkDrainQoS1(b *testing.B) {
	br := startBroker(b, "")
	db, err := store.Open(filepath.Join(b.TempDir(), "camgate.db"), store.Options{OutboxMaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	payload := []byte(`{"event":"stream_motion_started","event_id":"0123456789abcdef","media":"gw1-porch",` +
		`"utc_ms":1732400000000,"server":"gw1","motion_id":"6f1c2a4e-0000-4000-8000-000000000000",` +
		`"motion_data":"smtp: Motion Detection Alarm"}`)
	const chunk = 1000
	for i := 0; i < b.N; i += chunk {
		msgs := make([]store.Message, 0, chunk)
		for j := i; j < min(i+chunk, b.N); j++ {
			msgs = append(msgs, store.Message{Class: store.ClassEvent, Topic: "cameras/c1/events", Payload: payload})
		}
		if err := db.Outbox().Enqueue(context.Background(), "mqtt", msgs...); err != nil {
			b.Fatal(err)
		}
	}
	m, err := NewMQTT(MQTTConfig{URL: "mqtt://" + br.addr(), TopicPrefix: prefix, Queue: "mqtt",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, db.Outbox())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)

	b.ResetTimer()
	start := time.Now()
	go func() { done <- m.Run(ctx) }()
	for db.Outbox().Stats().Queues["mqtt"].Depth > 0 {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}
