package rtsp

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultPacePeriod is a Pacer's period unless told otherwise: under a frame interval at
	// 25 fps, and 50 wake-ups a second for the whole process however many cameras.
	DefaultPacePeriod = 20 * time.Millisecond
	// DefaultPaceMinRelays is how many relays must share a Pacer before it paces them. Each
	// tick is a timer wake-up, which costs more than the network wake-ups it replaces until
	// there are many cameras to share it. Measured with 500 kbit/s cameras (too slow for a
	// low-water mark, which is all the Pacer now paces; bench/README.md, "Slow cameras"),
	// CPU x ffmpeg, paced against unpaced, medians of 3: 4 relays 0.87 / 0.52, 10 relays
	// 0.56 / 0.50, 20 relays 0.48 / 0.40, 30 relays 0.38 / 0.40, 40 relays 0.38 / 0.49.
	// Pacing costs up to 20, is even at 30 and pays at 40, so it starts at 30. Relays whose
	// camera has a mark do not count: they leave the Pacer.
	DefaultPaceMinRelays = 30
)

// Pacer wakes the camera side of every Relay that shares it together, once a period, to read
// what each camera sent meanwhile and write it upstream as one batch. Without it each relay
// wakes whenever its camera's packets arrive, some seventy times a second per camera, and each
// wake-up costs the process a scheduler round trip; with it the whole process wakes once a
// period. It is for cameras too slow for a low-water mark (lowWater): a relay whose socket has
// one already wakes about once a period's worth of video without any clock, which measured
// cheaper than pacing at every camera count, so it leaves the Pacer once the mark is set. The
// price is at most one period of added latency, which a recorder does not see. Below a number
// of relays (DefaultPaceMinRelays) a Pacer stands aside and its relays read as packets arrive:
// the clock runs only while it pays. The zero value is not usable; use NewPacer.
type Pacer struct {
	period    time.Duration
	minRelays int
	on        atomic.Bool

	mu    sync.Mutex
	users int
	tick  chan struct{} // closed at the next tick, and when the clock stops
	stop  chan struct{} // closed when the clock stops
}

// NewPacer returns a Pacer with the given period that paces once minRelays relays use it;
// zeros mean DefaultPacePeriod and DefaultPaceMinRelays.
func NewPacer(period time.Duration, minRelays int) *Pacer {
	if period <= 0 {
		period = DefaultPacePeriod
	}
	if minRelays <= 0 {
		minRelays = DefaultPaceMinRelays
	}
	return &Pacer{period: period, minRelays: minRelays, tick: make(chan struct{})}
}

// join registers a relay, starting the clock when there are enough; leave undoes it.
func (p *Pacer) join() (leave func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users++
	if p.users == p.minRelays {
		p.stop = make(chan struct{})
		p.on.Store(true)
		go p.run(p.stop)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.users == p.minRelays {
				p.on.Store(false)
				close(p.stop)
				p.tickLocked() // whoever waits for a tick must learn that none comes
			}
			p.users--
		})
	}
}

// active reports whether the clock runs: whether relays should wait for ticks.
func (p *Pacer) active() bool { return p.on.Load() }

func (p *Pacer) run(stop chan struct{}) {
	t := time.NewTicker(p.period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		p.tickLocked()
		p.mu.Unlock()
	}
}

func (p *Pacer) tickLocked() {
	close(p.tick)
	p.tick = make(chan struct{})
}

// next returns a channel that is closed at the next tick, or when the clock stops, and whether
// the clock runs, both as of one moment. They are taken together because a relay that asked
// active and then waited on next could get, if the clock stopped in between, a fresh channel
// that nothing closes until the clock starts again.
func (p *Pacer) next() (tick <-chan struct{}, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tick, p.on.Load()
}
