package rtsp

import (
	"context"
	"errors"
	"sync"
	"time"
)

// gate holds a gated relay's upstream side shut except while its owner has opened it (relay
// modes on_demand and motion, issue 15). The camera side runs whatever the gate says, so the
// GOP cache stays warm and an opening costs no camera handshake: the new upstream session
// starts with the cached keyframe at once.
type gate struct {
	mu      sync.Mutex
	from    time.Time     // where a session opening the window starts (pre-roll); zero: now
	until   time.Time     // open until then; zero: shut
	changed chan struct{} // closed and replaced at each change
}

func newGate() *gate { return &gate{changed: make(chan struct{})} }

// set opens the gate from from until t, or shuts it when t is not in the future.
func (g *gate) set(from, t time.Time) {
	g.mu.Lock()
	g.from, g.until = from, t
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// state says until when the gate is open (zero or past: shut) and when that next changes.
func (g *gate) state() (time.Time, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until, g.changed
}

// start is where a session opening the window starts.
func (g *gate) start() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.from
}

// errGateShut ends an upstream session because its gate shut; the loop waits for it to open
// again without counting a failure.
var errGateShut = errors.New("publishing window over")

// PublishUntil opens a gated relay's upstream side until t (RelayConfig.Gated): the session
// starts at once, from the cached GOP, and ends at t. A later call moves t; a t not in the
// future ends the session now. It never waits, so an owner loop may call it. Ungated relays
// publish always and ignore it.
func (r *Relay) PublishUntil(t time.Time) { r.PublishWindow(time.Time{}, t) }

// PublishWindow is PublishUntil for a window that reaches back to from (relay mode motion:
// pre_roll before the alarm): a session opening it starts at the newest cached keyframe at or
// before from, as far back as RelayConfig.PreRoll kept, with the frames' own timestamps. A
// session already running goes on; from matters only to the next one to open.
func (r *Relay) PublishWindow(from, until time.Time) {
	if r.gate != nil {
		r.gate.set(from, until)
	}
}

// waitGate waits until the gate is open and reports whether it is (false: ctx ended), and
// where the session starts: the window's from when the gate was shut on entry (the session
// opens the window), zero when it was open (a reconnect inside a window starts at the latest
// keyframe: the server has the past already). While the gate is shut the forwarder queues
// nothing: the camera's packets go only to the GOP cache.
func (r *Relay) waitGate(ctx context.Context) (bool, time.Time) {
	if r.gate == nil {
		return true, time.Time{}
	}
	opens := false
	for {
		until, changed := r.gate.state()
		if time.Until(until) > 0 {
			if !opens {
				return true, time.Time{}
			}
			return true, r.gate.start()
		}
		opens = true
		r.fwd.park(true)
		select {
		case <-ctx.Done():
			return false, time.Time{}
		case <-changed:
		}
	}
}

// logPreRollShrink says once in the log that the pre-roll is shorter than configured because
// the GOP cache's bounds (2 MiB a camera, relay.cache_bytes in all) do not hold it. The camera
// goroutine calls it, with no lock held.
func (r *Relay) logPreRollShrink() {
	if r.cfg.PreRoll <= 0 || r.loggedShrink {
		return
	}
	if st := r.fwd.cacheStats(); st.Shrinks > 0 {
		r.loggedShrink = true
		r.log.Warn("pre-roll shortened to what the GOP cache holds", "pre_roll", r.cfg.PreRoll,
			"holds", st.PreRoll.Round(100*time.Millisecond),
			"why", "the camera's 2 MiB cache share or relay.cache_bytes is spent")
	}
}

// gateWatch returns a channel that is ready when the gate moves, and a timer that fires at its
// deadline; either way the session asks regate. An ungated relay's never fire.
func (r *Relay) gateWatch() (<-chan struct{}, *time.Timer) {
	if r.gate == nil {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return nil, t
	}
	until, changed := r.gate.state()
	return changed, time.NewTimer(time.Until(until))
}

// regate stops the previous watch and, while the gate is open, returns a new one; a shut gate
// returns a nil channel and the stopped timer.
func (r *Relay) regate(prev *time.Timer) (<-chan struct{}, *time.Timer) {
	prev.Stop()
	if until, _ := r.gate.state(); time.Until(until) <= 0 {
		return nil, prev
	}
	return r.gateWatch()
}
