package agent

import (
	"testing"
	"time"
)

// A motion camera's window opens pre_roll before an episode's start and closes post_roll after
// its stop. Changes reach the loop without the motion owner waiting, so they may arrive out of
// order: an older one never undoes a newer one. Cameras in other modes ignore episodes.
func TestMotionWindowFollowsEpisodesInOrder(t *testing.T) {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	stop := start.Add(30 * time.Second)
	conf := func(mode string) CameraConfig {
		return CameraConfig{Relay: mode, PreRoll: Duration(5 * time.Second), PostRoll: Duration(10 * time.Second)}
	}
	r := &registry{cameras: map[string]*cameraEntry{
		"porch": {id: "porch", conf: conf(relayMotion)},
		"yard":  {id: "yard", conf: conf(relayOnDemand)},
	}}
	started := motionWindowRequest{id: "porch", seq: 1, started: true, start: start}
	stopped := motionWindowRequest{id: "porch", seq: 2, end: stop}

	started.serve(r)
	e := r.cameras["porch"]
	if want := start.Add(-5 * time.Second); !e.motionFrom.Equal(want) || time.Until(e.motionUntil) < time.Hour {
		t.Errorf("after the start: window %v .. %v, want from %v and open until the stop", e.motionFrom, e.motionUntil, want)
	}
	stopped.serve(r)
	if want := stop.Add(10 * time.Second); !e.motionUntil.Equal(want) {
		t.Errorf("after the stop: window until %v, want %v (post_roll after the stop)", e.motionUntil, want)
	}
	started.serve(r) // late: the stop came first
	if !e.motionUntil.Equal(stop.Add(10 * time.Second)) {
		t.Errorf("a late start reopened the window until %v", e.motionUntil)
	}

	motionWindowRequest{id: "yard", seq: 3, started: true, start: start}.serve(r)
	if y := r.cameras["yard"]; !y.motionUntil.IsZero() {
		t.Errorf("an on_demand camera took a motion window until %v", y.motionUntil)
	}
	motionWindowRequest{id: "gone", seq: 4, started: true, start: start}.serve(r) // removed meanwhile: no panic
}
