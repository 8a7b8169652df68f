package uplink

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/camgate/camgate/store"
)

func openStore(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	return db
}

// The outbox survives camgate: what was queued during an outage and not yet delivered when the
// process stopped goes out, in order, from a new client on the reopened database.
func TestOutageAcrossARestartWithTheRealStore(t *testing.T) {
	b := startBroker(t, "")
	p := startProxy(t, b.addr())
	path := filepath.Join(t.TempDir(), "camgate.db")

	db := openStore(t, path)
	m := newTestMQTT(t, "mqtt://"+p.addr(), db.Outbox(), nil)
	stop := runMQTT(t, m)
	eventually(t, "connected", 20*time.Second, m.Connected)
	b.stop()
	eventually(t, "the client to notice the outage", 20*time.Second, func() bool { return !m.Connected() })
	numbered(t, db.Outbox(), 0, 1000)
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openStore(t, path)
	t.Cleanup(func() { db.Close() })
	if d := db.Outbox().Stats().Queues["mqtt"].Depth; d != 1000 {
		t.Fatalf("reopened outbox holds %d messages, want 1000", d)
	}
	p.setRefuse(true)
	b.start()
	sub := subscribe(t, b, nil, prefix+"/cameras/+/events")
	p.setRefuse(false)
	m = newTestMQTT(t, "mqtt://"+p.addr(), db.Outbox(), nil)
	runMQTT(t, m)
	eventually(t, "1000 messages in order", 60*time.Second, func() bool {
		return checkInOrder(t, sub.received(prefix+"/cameras/c1/events"), 1000)
	})
	eventually(t, "the outbox to empty", 20*time.Second, func() bool {
		return db.Outbox().Stats().Queues["mqtt"].Depth == 0
	})
}

// A client stopped in the middle of draining leaves the rest for the next one; nothing is lost.
func TestStopMidDrainWithTheRealStore(t *testing.T) {
	b := startBroker(t, "")
	sub := subscribe(t, b, nil, prefix+"/cameras/+/events")
	path := filepath.Join(t.TempDir(), "camgate.db")
	db := openStore(t, path)
	t.Cleanup(func() { db.Close() })
	numbered(t, db.Outbox(), 0, 5000)
	for range 3 {
		m := newTestMQTT(t, "mqtt://"+b.addr(), db.Outbox(), nil)
		stop := runMQTT(t, m)
		before := len(sub.received(prefix + "/cameras/c1/events"))
		eventually(t, "some progress", 30*time.Second, func() bool {
			return len(sub.received(prefix+"/cameras/c1/events")) > before
		})
		stop()
	}
	m := newTestMQTT(t, "mqtt://"+b.addr(), db.Outbox(), nil)
	runMQTT(t, m)
	eventually(t, "5000 messages in order", 60*time.Second, func() bool {
		return checkInOrder(t, sub.received(prefix+"/cameras/c1/events"), 5000)
	})
}
