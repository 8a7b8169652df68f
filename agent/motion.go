package agent

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/camgate/camgate/uplink"
)

// motionTracker turns alarms from any source into one started/stopped pair per episode: the first
// alarm starts an episode, every further alarm within motion.hold extends it, and it stops after
// motion.hold of quiet, or at once when every source that raised it said "no motion".
type motionTracker struct {
	mu       sync.Mutex
	episodes map[string]*episode // by camera_id
}

type episode struct {
	motionID string
	started  time.Time
	data     string
	active   map[string]bool // sources still reporting motion explicitly (ONVIF State=true)
	timer    *time.Timer
}

func newMotionTracker() *motionTracker { return &motionTracker{episodes: map[string]*episode{}} }

// motionSource names where an alarm came from, for motion_data and for overlap handling.
const (
	sourceSMTP  = "smtp"
	sourceONVIF = "onvif"
)

// Motion records an alarm (on) or an explicit end of motion (off) from source for a camera.
func (a *Agent) Motion(ctx context.Context, cameraID, source, data string, on bool) {
	cfg := a.config()
	hold := cfg.Motion.Hold.Std()
	m := a.motion
	m.mu.Lock()
	ep := m.episodes[cameraID]
	switch {
	case on && ep == nil:
		ep = &episode{motionID: uuid.NewString(), started: time.Now(), data: data, active: map[string]bool{}}
		m.episodes[cameraID] = ep
		if source == sourceONVIF {
			ep.active[source] = true
		}
		ep.timer = time.AfterFunc(hold, func() { a.endMotion(cameraID, ep, "hold") })
		m.mu.Unlock()
		a.log.Info("motion started", "camera_id", cameraID, "source", source, "motion_id", ep.motionID)
		a.emitMotion(ctx, cameraID, ep, uplink.MotionStarted)
		return
	case on:
		if source == sourceONVIF {
			ep.active[source] = true
		}
		ep.timer.Reset(hold)
	case ep != nil && !on:
		delete(ep.active, source)
		if len(ep.active) == 0 && source == sourceONVIF {
			// The camera said motion is over; a mail alarm inside the hold would have re-armed
			// the timer, and ONVIF speaks for the sensor itself, so stop now.
			ep.timer.Stop()
			m.mu.Unlock()
			a.endMotion(cameraID, ep, "camera reported no motion")
			return
		}
	}
	m.mu.Unlock()
}

func (a *Agent) endMotion(cameraID string, ep *episode, why string) {
	m := a.motion
	m.mu.Lock()
	if m.episodes[cameraID] != ep {
		m.mu.Unlock()
		return // already ended
	}
	delete(m.episodes, cameraID)
	m.mu.Unlock()
	d := time.Since(ep.started)
	a.log.Info("motion stopped", "camera_id", cameraID, "motion_id", ep.motionID, "duration", d.Round(time.Millisecond), "why", why)
	a.emitMotion(a.runContext(), cameraID, ep, uplink.MotionStopped)
}

func (a *Agent) emitMotion(ctx context.Context, cameraID string, ep *episode, kind string) {
	ev := uplink.Event{
		Kind: kind, Media: a.streamNameOf(cameraID), At: time.Now(), Started: ep.started,
		MotionID: ep.motionID, MotionData: ep.data,
	}
	if kind == uplink.MotionStarted {
		ev.At = ep.started
	}
	// The JPEG of the alarm that started the episode (kept just before Motion was called).
	if jpg, ok := a.freshSnapshot(cameraID, time.Since(ep.started)+time.Minute); ok {
		ev.Snapshot = jpg
	}
	a.emitEvent(context.WithoutCancel(ctx), cameraID, ev)
}

// stopAllMotion ends every open episode, so that a clean shutdown never leaves a started event
// without its stopped one.
func (a *Agent) stopAllMotion() {
	m := a.motion
	m.mu.Lock()
	open := make(map[string]*episode, len(m.episodes))
	for id, ep := range m.episodes {
		ep.timer.Stop()
		open[id] = ep
	}
	m.mu.Unlock()
	for id, ep := range open {
		a.endMotion(id, ep, "camgate stopping")
	}
}
