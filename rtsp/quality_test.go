package rtsp

import (
	"log/slog"
	"testing"
	"time"
)

// The governor reads a relay's drops only while its upstream session is up: a queue that
// overflows during a server outage is not a short uplink, and stepping down would not help.
func TestQualityGovernorIgnoresDropsWhileTheUpstreamIsDown(t *testing.T) {
	r := NewRelay(RelayConfig{Source: "rtsp://127.0.0.1:1/main", Substream: "rtsp://127.0.0.1:1/sub",
		Publish: "rtsp://127.0.0.1:2/cam", Logger: slog.New(slog.DiscardHandler)})
	g := NewQualityGovernor()
	m := &qualityMember{relay: r, cam: qualityCamera{id: "cam", hasSub: true}}
	members := map[*Relay]*qualityMember{r: m}
	var p qualityPolicy
	p.add(&m.cam)
	now := time.Unix(1_800_000_000, 0)
	dropFor := func(d time.Duration) {
		for end := now.Add(d); now.Before(end); {
			now = now.Add(time.Second)
			r.fwd.dropped.Add(3)
			g.step(&p, members, now)
		}
	}
	dropFor(20 * time.Second)
	if r.quality.want.Load() || !m.cam.runStart.IsZero() {
		t.Fatalf("stepped down during an outage (want sub %v, run from %v)", r.quality.want.Load(), m.cam.runStart)
	}
	r.relaying.Store(true)
	dropFor(5 * time.Second)
	if r.quality.want.Load() {
		t.Fatal("stepped down before 5 s of drops")
	}
	dropFor(time.Second)
	if !r.quality.want.Load() {
		t.Fatal("still on main after 5 s of drops with the upstream up")
	}
}
