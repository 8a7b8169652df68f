package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/camgate/camgate/motion"
	"github.com/camgate/camgate/store"
	"github.com/camgate/camgate/uplink"
)

// motionOwner is the goroutine that owns the motion episodes (a motion.Tracker). Alarms from
// mail and ONVIF reach it as requests; it stores each started and stopped event in the outbox
// before it answers, so that an alarm mail is acknowledged only once its event is on disk. It
// never waits for the registry loop or a relay: one camera's motion never waits on another's
// relay restart.
type motionOwner struct {
	a       *Agent
	tracker *motion.Tracker
	alarms  chan motionAlarm
	done    chan struct{} // closed when run has returned
	seq     uint64        // numbers the episode changes told to relays in mode motion
}

// motionAlarm is motion (on) or its end (off) from a source, for one camera.
type motionAlarm struct {
	camera, data string
	source       motion.Source
	on           bool
	reply        chan error // buffered
}

// retryStop is how soon a stopped event that could not be stored is tried again.
const retryStop = 5 * time.Second

func newMotionOwner(a *Agent, hold time.Duration) (*motionOwner, error) {
	m := &motionOwner{a: a, alarms: make(chan motionAlarm), done: make(chan struct{})}
	t, err := motion.New(motion.Config{
		Hold: hold, NewID: uuid.NewString, Store: episodeStore{a.db.Episodes()}, Emit: m.emit,
		OnError: func(msg string, err error) { a.log.Error(msg, "err", err) },
	})
	if err != nil {
		return nil, err
	}
	m.tracker = t
	return m, nil
}

// restore takes up the episodes of the previous run. It runs once the registry loop is serving,
// before m.run: restoring emits stops, and each open episode asks the loop for its publish window.
func (m *motionOwner) restore() {
	a := m.a
	if err := m.tracker.Restore(); err != nil {
		a.log.Error("motion: episodes of the previous run", "err", err)
	}
	for _, ep := range m.tracker.Open() {
		a.log.Info("motion episode continues from the previous run", "camera_id", ep.Camera, "motion_id", ep.MotionID)
		m.seq++ // a camera in relay mode motion goes on publishing until the episode stops
		a.tellMotionWindow(motionWindowRequest{id: ep.Camera, seq: m.seq, started: true, start: ep.Start})
	}
}

// report hands an alarm to the motion owner and waits until its event is stored.
func (m *motionOwner) report(ctx context.Context, camera string, source motion.Source, data string, on bool) error {
	req := motionAlarm{camera: camera, source: source, data: data, on: on, reply: make(chan error, 1)}
	select {
	case m.alarms <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return errStopping
	}
	select {
	case err := <-req.reply:
		return err
	case <-m.done:
		return errStopping
	}
}

func (m *motionOwner) run(ctx context.Context) {
	defer close(m.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var retryAt time.Time // a failed stop is tried again no sooner than this
	for {
		m.arm(timer, retryAt)
		select {
		case <-ctx.Done():
			if err := m.tracker.Shutdown(); err != nil {
				m.a.log.Error("motion: stopping open episodes", "err", err)
			}
			return
		case req := <-m.alarms:
			var err error
			if req.on {
				err = m.tracker.Alarm(req.camera, req.source, req.data)
			} else {
				err = m.tracker.Clear(req.camera, req.source)
			}
			req.reply <- err
		case <-timer.C:
			retryAt = time.Time{}
			if err := m.tracker.Expire(); err != nil {
				m.a.log.Error("motion: stopping an episode, will retry", "err", err, "retry_in", retryStop)
				retryAt = time.Now().Add(retryStop)
			}
		}
	}
}

// arm sets the timer for the tracker's next deadline, but not before notBefore.
func (m *motionOwner) arm(timer *time.Timer, notBefore time.Time) {
	wait := time.Hour
	if at, ok := m.tracker.Next(); ok {
		wait = max(time.Until(at), time.Until(notBefore))
	}
	timer.Stop()
	select {
	case <-timer.C:
	default:
	}
	timer.Reset(wait)
}

// emit stores one started or stopped event for every event sink and for MQTT.
func (m *motionOwner) emit(c motion.Change) error {
	a := m.a
	ep := c.Episode
	ev := uplink.Event{Media: a.streamNameOf(ep.Camera), At: ep.Start, Started: ep.Start,
		MotionID: ep.MotionID, MotionData: ep.Data}
	switch c.Kind {
	case motion.Started:
		ev.Kind = uplink.MotionStarted
		a.log.Info("motion started", "camera_id", ep.Camera, "motion_id", ep.MotionID)
	case motion.Stopped:
		ev.Kind, ev.At = uplink.MotionStopped, c.End
		a.log.Info("motion stopped",
			"camera_id", ep.Camera, "motion_id", ep.MotionID, "duration", c.Duration().Round(time.Millisecond), "why", c.Why)
	}
	m.seq++
	m.a.tellMotionWindow(motionWindowRequest{id: ep.Camera, seq: m.seq, started: c.Kind == motion.Started,
		start: ep.Start, end: c.End})
	// The JPEG of the alarm that started the episode (kept just before the alarm was reported).
	if jpg, ok := a.freshSnapshot(ep.Camera, time.Since(ep.Start)+time.Minute); ok {
		ev.Snapshot = jpg
	}
	return a.emitEvent(context.Background(), ep.Camera, ev)
}

// episodeStore keeps open episodes in the store's episodes table, one JSON record per camera.
type episodeStore struct{ t *store.Table }

func (s episodeStore) SaveEpisode(ep motion.Episode) error {
	b, err := json.Marshal(ep)
	if err != nil {
		return fmt.Errorf("encoding episode: %w", err)
	}
	return s.t.Put(ep.Camera, b)
}

func (s episodeStore) DeleteEpisode(camera string) error { return s.t.Delete(camera) }

func (s episodeStore) Episodes() ([]motion.Episode, error) {
	all, err := s.t.All()
	if err != nil {
		return nil, err
	}
	var out []motion.Episode
	var errs []error
	for cam, b := range all {
		var ep motion.Episode
		if err := json.Unmarshal(b, &ep); err != nil || ep.Camera != cam {
			errs = append(errs, fmt.Errorf("episode of %s does not parse: %w", cam, err))
			continue
		}
		out = append(out, ep)
	}
	return out, errors.Join(errs...)
}
