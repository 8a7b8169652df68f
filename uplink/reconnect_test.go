package uplink

import (
	"fmt"
	"testing"
	"time"
)

func productionPolicy() *reconnectPolicy {
	return newReconnectPolicy(500*time.Millisecond, 5*time.Second, time.Minute, 5*time.Minute)
}

// During the first minute waits start at half a second and double up to 5 s, never more.
func TestReconnectFirstMinuteIsQuick(t *testing.T) {
	p := productionPolicy()
	outage, cap := time.Duration(0), 500*time.Millisecond
	for outage < time.Minute {
		d := p.delay(outage)
		if d < cap/2 || d > cap {
			t.Fatalf("at %v into the outage: wait %v, want within [%v, %v]", outage, d, cap/2, cap)
		}
		outage += d
		cap = min(2*cap, 5*time.Second)
	}
}

// After the first minute the window is a quarter of the outage, at least 15 s, at most 5 min,
// and no wait is longer than the window.
func TestReconnectSpreadWindowGrowsWithTheOutage(t *testing.T) {
	for _, c := range []struct{ outage, window time.Duration }{
		{time.Minute, 15 * time.Second},
		{2 * time.Minute, 30 * time.Second},
		{5 * time.Minute, 75 * time.Second},
		{10 * time.Minute, 150 * time.Second},
		{20 * time.Minute, 5 * time.Minute},
		{24 * time.Hour, 5 * time.Minute},
	} {
		p := productionPolicy()
		if w := p.window(c.outage); w != c.window {
			t.Errorf("window after %v: %v, want %v", c.outage, w, c.window)
		}
		for i := range 1000 {
			d := p.delay(c.outage)
			if d < 0 || d > c.window {
				t.Fatalf("after %v, wait %d: %v, outside [0, %v]", c.outage, i, d, c.window)
			}
			if i > 0 && d < c.window*3/4 {
				t.Fatalf("after %v, wait %d: %v, want at least 3/4 of the window once the fleet is spread", c.outage, i, d)
			}
		}
	}
}

// The bound the policy promises: a fleet that lost its broker all at the same moment and sees
// it return after an outage comes back at no more than 2N/W CONNECTs in any second, W being the
// window at that point (5 s during the first minute), and entirely within W.
func TestReconnectFleetSpreadsItselfOverTheWindow(t *testing.T) {
	const fleet = 10_000
	for _, outage := range []time.Duration{30 * time.Second, 90 * time.Second, 5 * time.Minute, 30 * time.Minute} {
		t.Run(fmt.Sprint(outage), func(t *testing.T) {
			p0 := productionPolicy()
			w := p0.fast
			if p0.spreading(outage) {
				w = p0.window(outage)
			}
			perSecond := map[int]int{}
			for range fleet {
				p := productionPolicy()
				at := time.Duration(0) // each gateway tries at once when the connection is lost
				for at < outage {
					at += p.delay(at)
				}
				if at-outage > w {
					t.Fatalf("a gateway's first attempt after the return came %v later, beyond the window %v", at-outage, w)
				}
				perSecond[int((at-outage)/time.Second)]++
			}
			peak := 0
			for _, n := range perSecond {
				peak = max(peak, n)
			}
			bound := 2 * fleet / w.Seconds()
			t.Logf("outage %v: window %v, peak %d CONNECTs in one second, N/W = %.0f, bound 2N/W = %.0f",
				outage, w, peak, fleet/w.Seconds(), bound)
			if float64(peak) > bound {
				t.Errorf("peak %d CONNECTs/s beyond the bound 2N/W = %.0f", peak, bound)
			}
		})
	}
}

// After a long outage the backlog goes out at the catch-up pace (here 100 messages/s), in
// order, and the pace ends with the backlog.
func TestCatchUpAfterALongOutageIsPaced(t *testing.T) {
	b := startBroker(t, "")
	q := newMemQueue()
	const backlog = 300
	numbered(t, q, 0, backlog)
	sub := subscribe(t, b, nil, prefix+"/cameras/+/events")
	m := newTestMQTT(t, "mqtt://"+b.addr(), q, nil)
	m.spreadAfter = 0 // every outage counts as long, the first connect included
	start := time.Now()
	runMQTT(t, m)
	eventually(t, "the backlog in order", 60*time.Second, func() bool {
		return checkInOrder(t, sub.received(prefix+"/cameras/c1/events"), backlog)
	})
	// A lower bound only: a loaded machine can make it slower, never faster.
	if took, least := time.Since(start), 2*time.Second; took < least {
		t.Errorf("%d messages at a pace of %.0f/s took %v, want at least %v", backlog, m.pace.msgsPerSec, took, least)
	}
}

func TestDrainPaceWait(t *testing.T) {
	p := drainPace{msgsPerSec: 100, bytesPerSec: 1000, window: 32}
	for _, c := range []struct {
		msgs, bytes int
		took, want  time.Duration
	}{
		{32, 0, 0, 320 * time.Millisecond},
		{32, 0, 100 * time.Millisecond, 220 * time.Millisecond},
		{32, 0, time.Second, 0},
		{1, 2000, 0, 2 * time.Second}, // bytes bind
	} {
		if got := p.wait(c.msgs, c.bytes, c.took); got != c.want {
			t.Errorf("wait(%d msgs, %d bytes, took %v) = %v, want %v", c.msgs, c.bytes, c.took, got, c.want)
		}
	}
}
