package rtsp

import (
	"syscall"
	"time"
)

const (
	// lowWaterWindow is how much of a camera's stream, in time, the kernel gathers before it
	// wakes an unpaced relay: the same as a Pacer's period.
	lowWaterWindow = DefaultPacePeriod
	// minLowWater is the least worth asking for: below it a stream is slow enough that
	// waking per packet costs little, and a frame's last packet could wait long for company.
	minLowWater = 2 << 10
	// maxLowWater is one read buffer: gathering more saves no read.
	maxLowWater = playBuffer
)

// lowWater decides, once a second, how many bytes must wait in a camera's socket before the
// kernel wakes the relay reading it (SO_RCVLOWAT): what the camera sends in lowWaterWindow.
// Without it a relay wakes whenever a packet burst arrives, some seventy times a second per
// camera, and each wake-up costs more than the bytes it brings; with it, about one wake-up per
// lowWaterWindow's worth of video. A Pacer does the same with a clock for many relays; this
// needs no clock, so it pays from the first camera, and a relay with a mark leaves its Pacer.
// A frame's last bytes may wait for the next frame's first: the delay is at most about one
// frame interval. A read that does not wait still takes whatever is there.
type lowWater struct {
	set    int // what the socket has now; 0 is the kernel's default (1)
	broken bool
	at     time.Time // the last look
	got    int64     // bytes read by then
}

// lowWaterFor is the low-water mark for a camera that sent n bytes over elapsed: 0 (wake at
// every byte) for a slow stream.
func lowWaterFor(n int64, elapsed time.Duration) int {
	if elapsed <= 0 || n <= 0 {
		return 0
	}
	want := int(min(float64(n)*float64(lowWaterWindow)/float64(elapsed), maxLowWater))
	if want < minLowWater {
		return 0
	}
	return want
}

// tune looks at the bytes read so far from raw (got) and moves raw's mark when the stream's
// rate has moved by more than an eighth: each move is a system call. raw is nil for a socket
// behind TLS, which keeps the kernel's default.
func (w *lowWater) tune(raw syscall.RawConn, now time.Time, got int64) {
	if raw == nil || w.broken {
		return
	}
	if w.at.IsZero() {
		w.at, w.got = now, got
		return
	}
	want := lowWaterFor(got-w.got, now.Sub(w.at))
	w.at, w.got = now, got
	diff := want - w.set
	if diff == 0 || (want != 0 && w.set != 0 && 8*max(diff, -diff) < w.set) {
		return
	}
	var err error
	if cerr := raw.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, max(want, 1))
	}); cerr != nil || err != nil {
		// Not every socket takes it; such a relay simply wakes per packet.
		w.broken = true
		return
	}
	w.set = want
}
