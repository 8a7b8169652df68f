package rtsp

import (
	"slices"
	"time"
)

// The numbers of the quality policy. Issue 15 names 5 s of drops and 60 s steady; the rest
// are ours, chosen so that a 1 s GOP camera behind a shaped uplink settles within seconds and
// does not flap.
const (
	// shortAfter: a camera whose upstream has been behind for this long, dropping frames, is
	// short.
	shortAfter = 5 * time.Second
	// dropGap ends a run: this long neither dropping nor backlogged and the uplink carried
	// the stream. It is longer than the gap between two queue overflows of a stream a little
	// over what the uplink carries, which drops only every few seconds.
	dropGap = 5 * time.Second
	// switchEvery is the least time between two switches on one uplink: only one camera steps
	// down per decision, and the next decision waits for what the last one did.
	switchEvery = 5 * time.Second
	// settleAfter: drops this soon after a switch are the switch's own (what was queued for the
	// old stream) and the old stream's backlog draining, not the new one's.
	settleAfter = 3 * time.Second
	// steadyBefore is how long the uplink must go without drops before a camera is probed
	// back to its main stream; probeTrial is how long after the probe a drop counts against
	// it, and each failed probe doubles the wait before the next, up to maxProbeWait.
	steadyBefore = 60 * time.Second
	probeTrial   = 15 * time.Second
	maxProbeWait = 16 * time.Minute
)

// qualityCamera is what the policy knows of one camera: its place in the order, whether it has
// a substream to step down to, what it is asked to play, and its history of drops.
type qualityCamera struct {
	id       string // breaks ties between equal priorities, so that decisions repeat
	priority int
	hasSub   bool
	onSub    bool

	dropped uint64 // the forwarder's drop counter at the last observation
	// A run is a time the upstream is behind: frames dropped, or a backlog in the send queue
	// (the earlier sign, as delay is to loss in WebRTC's congestion control), with no gap of
	// dropGap. runStart is its first observation, zero when there is none; lastBehind its
	// latest, lastDrop the latest with drops.
	runStart, lastBehind, lastDrop time.Time
	// probeWait is how long the camera stays on its substream, steady, before the next probe;
	// probedAt is when it was last stepped up, while that probe is on trial.
	probeWait time.Duration
	probedAt  time.Time
	switches  int
}

// short reports whether the camera's upstream has been behind for shortAfter, and dropping.
func (c *qualityCamera) short(now time.Time) bool {
	return !c.runStart.IsZero() && now.Sub(c.lastDrop) < dropGap && !c.lastDrop.Before(c.runStart) &&
		c.lastBehind.Sub(c.runStart) >= shortAfter
}

// qualityPolicy decides, for the cameras sharing one uplink, which steps down to its substream
// and which is probed back to its main stream. It is plain data driven by observe and decide
// with the time passed in, so that its tests run on an injected clock; the governor's goroutine
// owns it.
type qualityPolicy struct {
	cams       []*qualityCamera
	lastSwitch time.Time
	lastDrop   time.Time // any camera's
}

// add makes c one of the cameras the policy decides for.
func (p *qualityPolicy) add(c *qualityCamera) {
	if c.probeWait == 0 {
		c.probeWait = steadyBefore
	}
	p.cams = append(p.cams, c)
}

// remove forgets c.
func (p *qualityPolicy) remove(c *qualityCamera) {
	p.cams = slices.DeleteFunc(p.cams, func(x *qualityCamera) bool { return x == c })
}

// observe takes c's drop counter and whether its send queue is backlogged at now. What
// happens within settleAfter of a switch does not count.
func (p *qualityPolicy) observe(c *qualityCamera, dropped uint64, backlog bool, now time.Time) {
	grew := dropped != c.dropped
	c.dropped = dropped
	if (!grew && !backlog) || now.Sub(p.lastSwitch) < settleAfter {
		return
	}
	if c.runStart.IsZero() || now.Sub(c.lastBehind) >= dropGap {
		c.runStart = now
	}
	c.lastBehind = now
	if grew {
		c.lastDrop, p.lastDrop = now, now
	}
}

// decide returns the camera to switch at now and whether to its substream, or nil. At most
// one switch is made per switchEvery. A failed probe goes back down at once; otherwise, when
// any camera is short, the lowest-priority camera still on its main stream steps down; and
// after steadyBefore without drops (longer after failed probes) the highest-priority camera on
// its substream is probed back up.
func (p *qualityPolicy) decide(now time.Time) (*qualityCamera, bool) {
	if !p.lastSwitch.IsZero() && now.Sub(p.lastSwitch) < switchEvery {
		return nil, false
	}
	for _, c := range p.cams {
		if c.probedAt.IsZero() {
			continue
		}
		if p.lastDrop.After(c.probedAt) {
			c.probeWait = min(2*c.probeWait, maxProbeWait)
			c.probedAt = time.Time{}
			return p.switchTo(c, true, now), true
		}
		if now.Sub(c.probedAt) >= probeTrial {
			c.probeWait, c.probedAt = steadyBefore, time.Time{} // the probe held
		}
	}
	if slices.ContainsFunc(p.cams, func(c *qualityCamera) bool { return c.short(now) }) {
		var down *qualityCamera
		for _, c := range p.cams {
			if c.hasSub && !c.onSub && (down == nil || below(c, down)) {
				down = c
			}
		}
		if down != nil {
			return p.switchTo(down, true, now), true
		}
		return nil, false
	}
	var up *qualityCamera
	for _, c := range p.cams {
		if !c.onSub || !c.probedAt.IsZero() {
			continue
		}
		steadySince := maxTime(p.lastDrop, p.lastSwitch)
		if now.Sub(steadySince) >= c.probeWait && (up == nil || below(up, c)) {
			up = c
		}
	}
	if up != nil {
		up.probedAt = now
		return p.switchTo(up, false, now), false
	}
	return nil, false
}

// switchTo records a switch of c; a switch starts every camera's drop history afresh, since
// what the uplink carries has changed.
func (p *qualityPolicy) switchTo(c *qualityCamera, sub bool, now time.Time) *qualityCamera {
	c.onSub = sub
	c.switches++
	p.lastSwitch = now
	for _, x := range p.cams {
		x.runStart = time.Time{}
	}
	return c
}

// below reports whether a steps down before b: a lower priority, then the later id.
func below(a, b *qualityCamera) bool {
	if a.priority != b.priority {
		return a.priority < b.priority
	}
	return a.id > b.id
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
