package rtsp

import (
	"log/slog"
	"runtime"
	"strings"
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

// governorRuns counts the goroutines in the process running a governor's loop.
func governorRuns() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "rtsp.(*QualityGovernor).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// The governor's loop runs in one goroutine at a time, also when its only relay leaves and
// comes back at once (reboot_relay): two would add and observe the same camera together.
func TestQualityGovernorRunsOneLoopAtATime(t *testing.T) {
	r := NewRelay(RelayConfig{Source: "rtsp://127.0.0.1:1/main", Substream: "rtsp://127.0.0.1:1/sub",
		Publish: "rtsp://127.0.0.1:2/cam", Logger: slog.New(slog.DiscardHandler)})
	g := NewQualityGovernor()
	for i := range 300 {
		leave := g.join(r, "cam", 0, true)
		if n := governorRuns(); n > 1 {
			t.Fatalf("restart %d: %d governor loops at once, want 1", i, n)
		}
		leave()
	}
	waitFor(t, 10*time.Second, "the loop to end with its last relay", func() bool { return governorRuns() == 0 })
}
