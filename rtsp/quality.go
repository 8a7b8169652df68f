package rtsp

import (
	"sync"
	"time"
)

// qualityTick is how often the governor measures its relays and decides: once a second, one
// timer for the whole process however many cameras.
const qualityTick = time.Second

// backlogShare: a send queue holding this share of its packets or more is behind. An uplink
// that carries the stream takes every batch as it comes; a keyframe's burst fills a few
// percent of the queue.
const backlogShare = 8

// QualityGovernor steps cameras down to their substreams when the uplink they share cannot
// carry their main streams, and probes them back once it can (issue 15, adaptive quality).
// Each Relay whose RelayConfig names it and has a substream takes part; share one among all
// relays of a process, as they share its uplink. Its goroutine runs while relays use it and
// owns the policy; relays only answer its measurements and take its requests, neither of
// which waits. The zero value is not usable; use NewQualityGovernor.
type QualityGovernor struct {
	mu      sync.Mutex // guards members and running only: joins and leaves, never a decision
	members map[*Relay]*qualityMember
	changed chan struct{} // closed and replaced when members change
	// running is set while the goroutine runs. It ends itself, under mu, when it finds no
	// members, so a relay that leaves and comes back (reboot_relay) never meets an old loop
	// still winding down beside a new one: two would add and observe the same camera.
	running bool
}

// qualityMember is one relay as the governor sees it; the governor's goroutine owns all of it
// but the fields fixed at join.
type qualityMember struct {
	relay *Relay
	cam   qualityCamera
}

// NewQualityGovernor returns a governor with no relays.
func NewQualityGovernor() *QualityGovernor {
	return &QualityGovernor{members: map[*Relay]*qualityMember{}, changed: make(chan struct{})}
}

// join makes r one of the governed relays, starting the governor's goroutine with the first;
// leave undoes it.
func (g *QualityGovernor) join(r *Relay, id string, priority int, hasSub bool) (leave func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members[r] = &qualityMember{relay: r, cam: qualityCamera{id: id, priority: priority, hasSub: hasSub}}
	g.changedLocked()
	if !g.running {
		g.running = true
		go g.run(time.NewTicker(qualityTick))
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			delete(g.members, r)
			g.changedLocked()
		})
	}
}

func (g *QualityGovernor) changedLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// snapshot returns the members now and a channel closed when they change; none means the
// goroutine is to end, and it counts as ended from then on.
func (g *QualityGovernor) snapshot() (map[*Relay]*qualityMember, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running = len(g.members) > 0
	m := make(map[*Relay]*qualityMember, len(g.members))
	for r, q := range g.members {
		m[r] = q
	}
	return m, g.changed
}

// run measures and decides once a tick until the last relay has left.
func (g *QualityGovernor) run(tick *time.Ticker) {
	defer tick.Stop()
	var p qualityPolicy
	members, changed := g.snapshot()
	for _, m := range members {
		p.add(&m.cam)
	}
	for len(members) > 0 {
		select {
		case <-changed:
			for _, m := range members {
				p.remove(&m.cam)
			}
			members, changed = g.snapshot()
			for _, m := range members {
				p.add(&m.cam)
			}
		case now := <-tick.C:
			g.step(&p, members, now)
		}
	}
}

// step measures every member and applies the policy's decision, if any.
func (g *QualityGovernor) step(p *qualityPolicy, members map[*Relay]*qualityMember, now time.Time) {
	for _, m := range members {
		if !m.relay.relaying.Load() {
			// No upstream session: what the queue drops meanwhile is the outage's, not a
			// short uplink's, and stepping down would not bring the server back.
			m.cam.dropped = m.relay.fwd.dropped.Load()
			continue
		}
		queued, capacity := m.relay.fwd.queueDepth()
		p.observe(&m.cam, m.relay.fwd.dropped.Load(), queued >= capacity/backlogShare, now)
	}
	c, sub := p.decide(now)
	if c == nil {
		return
	}
	for _, m := range members {
		if &m.cam == c {
			st := m.relay.Stats()
			m.relay.log.Info("uplink quality: switching camera", "quality", qualityName(sub),
				"priority", c.priority, "switches", c.switches, "uplink_bps", st.UplinkBps,
				"dropped", st.Dropped, "next_probe_after", c.probeWait)
			m.relay.wantQuality(sub)
		}
	}
}

// qualityName is what Stats and the state say for a quality.
func qualityName(sub bool) string {
	if sub {
		return "sub"
	}
	return "main"
}
