//go:build soak

package uplink

import (
	"context"
	"flag"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/testtool"
	"github.com/camgate/camgate/store"
)

// soakAttempts is how many connection attempts the flapping broker gets: `make soak` runs 10,000,
// .ci/run a shorter 2,000.
var soakAttempts = flag.Int("soak.attempts", 10000, "connection attempts against the flapping broker")

// attemptCounter counts the client's failed connection attempts by the one log record Run writes
// for each, and drops every record.
type attemptCounter struct{ n *atomic.Int64 }

func (h attemptCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h attemptCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h attemptCounter) WithGroup(string) slog.Handler            { return h }
func (h attemptCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "mqtt connection failed, will retry" {
		h.n.Add(1)
	}
	return nil
}

// TestSoakFlappingBroker (issue 18, "flat over weeks"): a real mosquitto goes away and comes back
// over and over, stopped cleanly or killed in turn, and the MQTT client retries with its backoff
// shortened to a millisecond. While the broker is down each attempt is refused; each time it is
// back the client connects, publishes its status and drains one queued event. The process must
// stay flat from the sample after the first thousand attempts to the last
// (testtool.SoakBounds).
func TestSoakFlappingBroker(t *testing.T) {
	n := int64(*soakAttempts)
	b := startBroker(t, "")
	q := newMemQueue()
	var attempts atomic.Int64
	m, err := NewMQTT(MQTTConfig{URL: "mqtt://" + b.addr(), TopicPrefix: prefix, Version: "1.2.3", Queue: "mqtt",
		Logger: slog.New(attemptCounter{&attempts})}, q)
	if err != nil {
		t.Fatal(err)
	}
	m.retryMin, m.retryMax, m.spreadAfter, m.spreadMax = time.Millisecond, time.Millisecond, time.Hour, time.Millisecond

	fp := testtool.NewFootprinter(t, "broker flapping")
	stop := runMQTT(t, m)
	defer stop()
	marks := []struct {
		label    string
		attempts int64
	}{{"after 1000 attempts", min(1000, n)}, {"middle", n / 2}, {"end", n}}
	started := time.Now()
	flaps := 0
	for len(marks) > 0 {
		eventually(t, "the client to connect", 60*time.Second, m.Connected)
		eventually(t, "the queued event to be sent", 60*time.Second, func() bool { return q.depth("mqtt") == 0 })
		if flaps%2 == 0 {
			b.stop()
		} else {
			b.m.Kill()
		}
		flaps++
		// Down for about fifty refused attempts, then back.
		from := attempts.Load()
		eventually(t, "refused attempts", 60*time.Second, func() bool { return attempts.Load() >= from+50 })
		msg := store.Message{Topic: prefix + "/soak", Payload: []byte("x")}
		if err := q.Enqueue(context.Background(), "mqtt", msg); err != nil {
			t.Fatal(err)
		}
		if attempts.Load() >= marks[0].attempts {
			fp.Sample(marks[0].label)
			marks = marks[1:]
		}
		b.start()
	}
	t.Logf("soak broker flapping: %d attempts, %d broker restarts in %v", attempts.Load(), flaps,
		time.Since(started).Round(time.Second))
	fp.CheckFlat("after 1000 attempts", testtool.SoakBounds())
}
