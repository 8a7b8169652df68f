package agent

import (
	"context"
	"fmt"
	"time"
)

// Relay modes (SPEC §2 `relay`, issue 15): always publishes whenever the camera streams;
// on_demand publishes only within a window opened by the MQTT command start_relay (SPEC §6)
// and closed by its end or by stop_relay; motion publishes from pre_roll before a motion
// episode starts until post_roll after it stops (start_relay opens a window there too). The
// camera side of a gated relay stays connected, so that a window starts from the relay's GOP
// cache within a round trip, and a motion window from the pre-roll it keeps.
const (
	relayAlways   = "always"
	relayOnDemand = "on_demand"
	relayMotion   = "motion"
)

// maxStartRelay bounds one start_relay window; SC asks again while someone keeps watching.
const maxStartRelay = 24 * time.Hour

// gated says whether a camera's relay publishes only within windows.
func gated(c CameraConfig) bool { return c.Relay == relayOnDemand || c.Relay == relayMotion }

// preRollOf is how far back a camera's relay keeps its stream: pre_roll in mode motion.
func preRollOf(c CameraConfig) time.Duration {
	if c.Relay != relayMotion {
		return 0
	}
	return c.PreRoll.Std()
}

// StartRelay opens a publishing window of the given length for an on_demand camera and
// returns when it ends. A camera that relays always is already publishing: nothing changes.
func (a *Agent) StartRelay(ctx context.Context, id string, d time.Duration) (map[string]any, error) {
	if d <= 0 || d > maxStartRelay {
		return nil, fmt.Errorf("start_relay: seconds must be from 1 to %d, not %d",
			int(maxStartRelay/time.Second), int(d/time.Second))
	}
	res, err := a.ask(ctx, publishWindowRequest{id: id, until: time.Now().Add(d)})
	if err != nil {
		return nil, err
	}
	return res.window, nil
}

// StopRelay ends an on_demand camera's publishing window now.
func (a *Agent) StopRelay(ctx context.Context, id string) (map[string]any, error) {
	res, err := a.ask(ctx, publishWindowRequest{id: id})
	if err != nil {
		return nil, err
	}
	return res.window, nil
}

// publishWindowRequest opens a camera's window until a time, or shuts it (zero until).
type publishWindowRequest struct {
	id    string
	until time.Time
}

func (q publishWindowRequest) serve(r *registry) result {
	e, ok := r.cameras[q.id]
	if !ok {
		return result{err: fmt.Errorf("%w: %s", ErrUnknownCamera, q.id)}
	}
	mode := e.conf.Relay
	if mode == "" {
		mode = relayAlways
	}
	reply := map[string]any{"camera_id": q.id, "relay": mode}
	if !gated(e.conf) {
		return result{window: reply}
	}
	e.publishUntil = q.until
	r.applyWindow(e)
	if e.relay == nil {
		// Kept for when the relay starts; say why it is not publishing yet.
		reply["problem"] = e.problem
	}
	if !q.until.IsZero() {
		reply["until"] = q.until.UTC().Format(time.RFC3339)
	}
	return result{window: reply}
}

// applyWindow hands a gated camera's window to its running relay: the later end of its
// start_relay window and its motion window, starting from the motion window's pre-roll when
// that is what opens it. startRelay calls it too, so a relay restarted inside a window goes
// on publishing.
func (r *registry) applyWindow(e *cameraEntry) {
	if e.relay == nil || !e.relay.cfg.Gated {
		return
	}
	from, until := time.Time{}, e.publishUntil
	if e.motionUntil.After(until) {
		from, until = e.motionFrom, e.motionUntil
	}
	e.relay.relay.PublishWindow(from, until)
}

// motionWindowRequest is a motion episode of a camera starting (at start) or stopping (at
// end): a motion camera publishes from pre_roll before the start until post_roll after the
// end. seq orders the changes, which reach the loop from the motion owner without it waiting.
type motionWindowRequest struct {
	id         string
	seq        uint64
	started    bool
	start, end time.Time
}

func (q motionWindowRequest) serve(r *registry) result {
	e, ok := r.cameras[q.id]
	if !ok || e.conf.Relay != relayMotion || q.seq <= e.motionSeq {
		return result{}
	}
	e.motionSeq = q.seq
	if q.started {
		// Open until the episode stops; the bound only guards against a stop never coming.
		e.motionFrom, e.motionUntil = q.start.Add(-e.conf.PreRoll.Std()), time.Now().Add(maxStartRelay)
	} else {
		e.motionUntil = q.end.Add(e.conf.PostRoll.Std())
	}
	r.applyWindow(e)
	return result{}
}

// tellMotionWindow hands an episode change to the loop without waiting for it: the motion
// owner never waits on the registry (motionOwner). The loop orders changes by seq.
func (a *Agent) tellMotionWindow(q motionWindowRequest) { go a.tell(q) }
