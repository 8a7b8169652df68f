package rtsp

import (
	"testing"
	"time"
)

// policyRun drives a qualityPolicy second by second on an injected clock: each camera's drop
// counter grows in the seconds its drops function says, and every switch is recorded.
type policyRun struct {
	t       *testing.T
	p       qualityPolicy
	cams    []*qualityCamera
	t0, now time.Time
	log     []policySwitch
	// backlog, when set, says whether camera i's send queue is backlogged at at.
	backlog func(i int, at time.Duration) bool
}

type policySwitch struct {
	at  time.Duration
	id  string
	sub bool
}

func newPolicyRun(t *testing.T, cams ...*qualityCamera) *policyRun {
	r := &policyRun{t: t, cams: cams, t0: time.Unix(1_800_000_000, 0)}
	r.now = r.t0
	for _, c := range cams {
		r.p.add(c)
	}
	return r
}

// run advances the clock by d, a second at a time; dropping says whether camera i drops in
// the second at elapsed time at.
func (r *policyRun) run(d time.Duration, dropping func(i int, at time.Duration) bool) {
	for end := r.now.Add(d); r.now.Before(end); {
		r.now = r.now.Add(time.Second)
		at := r.now.Sub(r.t0)
		for i, c := range r.cams {
			n := c.dropped
			if dropping(i, at) {
				n++
			}
			r.p.observe(c, n, r.backlog != nil && r.backlog(i, at), r.now)
		}
		if c, sub := r.p.decide(r.now); c != nil {
			r.log = append(r.log, policySwitch{at, c.id, sub})
		}
	}
}

func (r *policyRun) want(log ...policySwitch) {
	r.t.Helper()
	if len(r.log) != len(log) {
		r.t.Fatalf("switches %+v, want %+v", r.log, log)
	}
	for i := range log {
		if r.log[i] != log[i] {
			r.t.Fatalf("switch %d is %+v, want %+v (all: %+v)", i, r.log[i], log[i], r.log)
		}
	}
}

func never(int, time.Duration) bool  { return false }
func always(int, time.Duration) bool { return true }

func TestQualityPolicyStepsDownTheLowestPriorityAfterFiveSecondsOfDrops(t *testing.T) {
	hall := &qualityCamera{id: "hall", priority: 5, hasSub: true}
	yard := &qualityCamera{id: "yard", priority: 1, hasSub: true}
	r := newPolicyRun(t, hall, yard)
	r.run(4*time.Second, always)
	r.want() // four seconds of drops are not yet short
	// Both keep dropping until the yard is on its substream; then the uplink carries both.
	r.run(20*time.Second, func(int, time.Duration) bool { return !yard.onSub })
	r.want(policySwitch{6 * time.Second, "yard", true})
	if hall.onSub || !yard.onSub {
		t.Fatalf("hall on sub %v, yard on sub %v", hall.onSub, yard.onSub)
	}
}

func TestQualityPolicyStepsDownOneCameraPerDecision(t *testing.T) {
	a := &qualityCamera{id: "a", priority: 3, hasSub: true}
	b := &qualityCamera{id: "b", priority: 2, hasSub: true}
	c := &qualityCamera{id: "c", priority: 1, hasSub: true}
	r := newPolicyRun(t, a, b, c)
	// The uplink stays short until two cameras are down: each step waits for the drops to go
	// on for another five seconds after the previous one settled.
	r.run(40*time.Second, func(int, time.Duration) bool { return !b.onSub })
	r.want(policySwitch{6 * time.Second, "c", true}, policySwitch{14 * time.Second, "b", true})
	if a.onSub {
		t.Fatal("the highest-priority camera stepped down")
	}
}

func TestQualityPolicyNeverStepsDownACameraWithoutSubstream(t *testing.T) {
	big := &qualityCamera{id: "big", priority: 0, hasSub: false}
	small := &qualityCamera{id: "small", priority: 9, hasSub: true}
	r := newPolicyRun(t, big, small)
	r.run(30*time.Second, always)
	// Only the camera that has a substream can step down, whatever its priority; then nothing
	// is left to do.
	r.want(policySwitch{6 * time.Second, "small", true})
}

func TestQualityPolicyTiesBreakTheSameWayEveryTime(t *testing.T) {
	for range 3 {
		a := &qualityCamera{id: "a", hasSub: true}
		b := &qualityCamera{id: "b", hasSub: true}
		r := newPolicyRun(t, b, a)
		r.run(10*time.Second, func(int, time.Duration) bool { return !a.onSub && !b.onSub })
		r.want(policySwitch{6 * time.Second, "b", true})
	}
}

func TestQualityPolicyProbesBackAfterSixtySecondsSteady(t *testing.T) {
	yard := &qualityCamera{id: "yard", hasSub: true}
	r := newPolicyRun(t, yard)
	r.run(10*time.Second, func(int, time.Duration) bool { return !yard.onSub })
	r.run(80*time.Second, never)
	// Down at 6 s; the last drop was at 6 s too, so steady from the switch on: up at 66 s.
	r.want(policySwitch{6 * time.Second, "yard", true}, policySwitch{66 * time.Second, "yard", false})
	r.run(10*time.Minute, never)
	if len(r.log) != 2 {
		t.Fatalf("a held probe was followed by more switches: %+v", r.log)
	}
}

func TestQualityPolicyDoublesTheWaitAfterAFailedProbe(t *testing.T) {
	yard := &qualityCamera{id: "yard", hasSub: true}
	r := newPolicyRun(t, yard)
	// The uplink never carries the main stream: every probe fails as soon as it settles.
	r.run(8*time.Minute, func(int, time.Duration) bool { return !yard.onSub })
	r.want(
		policySwitch{6 * time.Second, "yard", true},
		policySwitch{66 * time.Second, "yard", false},  // after 60 s steady
		policySwitch{71 * time.Second, "yard", true},   // drops after the settle: back at the next decision
		policySwitch{191 * time.Second, "yard", false}, // after 120 s
		policySwitch{196 * time.Second, "yard", true},
		policySwitch{436 * time.Second, "yard", false}, // after 240 s
		policySwitch{441 * time.Second, "yard", true},
	)
	if yard.probeWait != 8*time.Minute {
		t.Fatalf("wait after three failed probes %s, want 8m", yard.probeWait)
	}
}

func TestQualityPolicyAHeldProbeResetsTheWait(t *testing.T) {
	yard := &qualityCamera{id: "yard", hasSub: true}
	r := newPolicyRun(t, yard)
	shortUntil := 100 * time.Second
	r.run(4*time.Minute, func(_ int, at time.Duration) bool { return !yard.onSub && at < shortUntil })
	// The first probe (66 s) fails, the second (191 s) holds; the wait is back to 60 s.
	r.want(
		policySwitch{6 * time.Second, "yard", true},
		policySwitch{66 * time.Second, "yard", false},
		policySwitch{71 * time.Second, "yard", true},
		policySwitch{191 * time.Second, "yard", false},
	)
	if yard.onSub || yard.probeWait != steadyBefore {
		t.Fatalf("on sub %v, wait %s", yard.onSub, yard.probeWait)
	}
}

func TestQualityPolicyIgnoresDropsTheSwitchItselfCauses(t *testing.T) {
	yard := &qualityCamera{id: "yard", hasSub: true}
	hall := &qualityCamera{id: "hall", priority: 1, hasSub: true}
	r := newPolicyRun(t, yard, hall)
	switched := time.Duration(0)
	r.run(30*time.Second, func(_ int, at time.Duration) bool {
		if switched == 0 && yard.onSub {
			switched = at
		}
		// Drops until the switch and for two seconds after it (the old stream's backlog).
		return switched == 0 || at <= switched+2*time.Second
	})
	r.want(policySwitch{6 * time.Second, "yard", true})
}

func TestQualityPolicyShortDropsAreNotShort(t *testing.T) {
	yard := &qualityCamera{id: "yard", hasSub: true}
	r := newPolicyRun(t, yard)
	// A burst of drops every ten seconds (say, a neighbour's upload) never lasts five.
	r.run(2*time.Minute, func(_ int, at time.Duration) bool { return at%(10*time.Second) < 3*time.Second })
	r.want()
}

func TestQualityPolicyTakesABackloggedQueueAsTheStartOfBeingShort(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backlog bool
		want    []policySwitch
	}{
		// The queue grows for five seconds before it overflows: short at the first drop.
		{"backlog then drops", true, []policySwitch{{6 * time.Second, "yard", true}}},
		// Without the backlog the same single drop is a blip.
		{"a drop alone", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yard := &qualityCamera{id: "yard", hasSub: true}
			r := newPolicyRun(t, yard)
			if tc.backlog {
				r.backlog = func(_ int, at time.Duration) bool { return at < 6*time.Second }
			}
			r.run(20*time.Second, func(_ int, at time.Duration) bool { return at == 6*time.Second })
			r.want(tc.want...)
		})
	}
}
