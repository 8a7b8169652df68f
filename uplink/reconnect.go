package uplink

import (
	"context"
	"math/rand/v2"
	"time"
)

// reconnectPolicy decides when the MQTT client tries the broker again. It has to serve one
// gateway, whose broker should be back in seconds after a blip, and a fleet of thousands, all of
// which lose the broker in the same second when it restarts and would otherwise all come back in
// the same second too.
//
// During the first minute of an outage (spreadAfter) waits double from min up to fast, each drawn
// from [d/2, d]: a short outage costs at most fast of delay. After that each gateway spreads
// itself over a window that grows with the outage, a quarter of it, between 3*fast and
// spreadMax: the first wait is drawn from [0, window] ("full jitter"), which scatters the fleet's
// gateways uniformly over the window whatever their phases were; later waits are drawn from
// [3/4 window, window], which keeps each gateway near its place there instead of letting short
// draws pile the fleet up at the start of the window again. With the fleet's next attempts spread
// uniformly over a window W, a broker coming back sees about N/W CONNECTs per second and never
// much more than 2N/W; the time until all have reconnected is at most W.
type reconnectPolicy struct {
	min, fast   time.Duration // first wait; cap of the waits during the first minute
	spreadAfter time.Duration // how long an outage is short
	spreadMax   time.Duration // cap of the spread window

	next    time.Duration
	spreads int // waits drawn in the spread regime since the last reset
}

func newReconnectPolicy(min, fast, spreadAfter, spreadMax time.Duration) *reconnectPolicy {
	return &reconnectPolicy{min: min, fast: fast, spreadAfter: spreadAfter, spreadMax: spreadMax, next: min}
}

// window is the spread window for an outage that has lasted outage.
func (p *reconnectPolicy) window(outage time.Duration) time.Duration {
	return min(max(outage/4, 3*p.fast), p.spreadMax)
}

// delay returns the wait before the next attempt, the broker having been unreachable for outage.
func (p *reconnectPolicy) delay(outage time.Duration) time.Duration {
	if outage < p.spreadAfter {
		d := p.next
		p.next = min(2*p.next, p.fast)
		return d/2 + rand.N(d/2+1)
	}
	w := p.window(outage)
	p.spreads++
	if p.spreads == 1 {
		return rand.N(w + 1)
	}
	return w - rand.N(w/4+1)
}

// spreading reports whether the outage has lasted long enough that the fleet spreads itself,
// reconnects and drains included.
func (p *reconnectPolicy) spreading(outage time.Duration) bool { return outage >= p.spreadAfter }

func (p *reconnectPolicy) reset() {
	p.next = p.min
	p.spreads = 0
}

// drainPace bounds how fast a gateway catches up on what it queued during a long outage: a
// thousand gateways that each dump a day of backlog at full speed the moment they are back would
// turn the broker's return into the next outage (PUBACKs slower than ackTimeout make every client
// drop its connection and start over), and the burst would also take the gateway's own uplink
// from its video relays.
type drainPace struct {
	msgsPerSec  float64
	bytesPerSec float64
	window      int // messages per window while paced
}

// catchUpPace: 100 messages and 128 KiB (1 Mbit/s) per second, a small share of a home uplink;
// a day's backlog of a 4-camera gateway (~10,000 messages) takes under two minutes.
func catchUpPace() drainPace { return drainPace{msgsPerSec: 100, bytesPerSec: 128 << 10, window: 32} }

// wait is how long to pause after a window of msgs messages and bytes payload bytes that took
// took to publish and acknowledge, so that the average stays within the pace.
func (p drainPace) wait(msgs, bytes int, took time.Duration) time.Duration {
	need := max(float64(msgs)/p.msgsPerSec, float64(bytes)/p.bytesPerSec)
	return max(time.Duration(need*float64(time.Second))-took, 0)
}

// pause waits d unless ctx ends or the connection is lost first, and reports why it stopped.
func pause(ctx context.Context, d time.Duration, lost <-chan struct{}) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-lost:
		return errConnectionLost
	}
}
