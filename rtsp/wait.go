package rtsp

import (
	"context"
	"fmt"
	"net"
	"time"
)

// readWait is how a camera session waits for its camera between batches, one of three ways:
//
//   - plain: a read that waits on the socket, within the read timeout;
//   - marked: the same, with the socket's low-water mark (lowWater) set so that the kernel
//     wakes the relay once about a Pacer period's worth of the stream waits, not per packet;
//   - paced: for the shared Pacer's next tick, then reads that do not wait, with silence
//     measured here instead of by a deadline.
//
// It owns what decides between them and what each needs: the Pacer membership (a relay
// counts among the Pacer's only while its camera is too slow for a mark: a marked socket
// already wakes about once a period without the Pacer's clock, which measured cheaper at every
// count, see bench/README.md), the mark, and the connection's read deadline. The player asks it
// before each read and tells it when data came; what a read brings is the player's business.
// Everything here runs on the camera goroutine.
type readWait struct {
	conn    net.Conn
	rd      *connReader
	timeout time.Duration
	pacer   *Pacer // nil: never paced (none given, or a socket behind TLS)
	leave   func() // set while the relay counts among pacer's
	paced   bool   // waiting for ticks: pacer runs and the relay is a member
	mark    lowWater
	// lastData is when a read last brought something, for silence while paced.
	lastData time.Time
	silence  *time.Timer // while paced: fires at the earliest moment the camera may be silent
	// nextSecond is when the mark and the plain read deadline are next looked at: each is a
	// system call, and once a second is enough for a rate and a timeout of seconds.
	nextSecond time.Time
}

// newReadWait starts a camera session's waiting at now: plain, and a member of pacer if it can
// be paced at all. The caller must call stop.
func newReadWait(conn net.Conn, rd *connReader, timeout time.Duration, pacer *Pacer, now time.Time) *readWait {
	w := &readWait{conn: conn, rd: rd, timeout: timeout, lastData: now}
	if pacer != nil && rd.raw != nil {
		w.pacer = pacer
		w.leave = pacer.join()
	}
	return w
}

// stop leaves the Pacer and makes reads wait again, for the teardown that follows.
func (w *readWait) stop() {
	if w.leave != nil {
		w.leave()
		w.leave = nil
	}
	w.armSilence(false)
	w.rd.block = true
}

// again reports whether the player should read again at once, without waiting: paced, the last
// read filled the buffer, so there is more in the socket for this batch.
func (w *readWait) again() bool { return w.paced && !w.rd.drained }

// wait is called at now, when what is buffered holds no whole frame, before the read that
// fetches more. It returns once that read is due (at once unless paced); an error ends the
// session: a camera silent for the timeout while paced, or a socket that refused a deadline.
// done is set when ctx ended meanwhile.
func (w *readWait) wait(ctx context.Context, now time.Time) (done bool, err error) {
	if now.After(w.nextSecond) {
		w.nextSecond = now.Add(time.Second)
		w.mark.tune(w.rd.raw, now, w.rd.got)
		if marked := w.mark.set > 0; w.pacer != nil && marked == (w.leave != nil) {
			if marked {
				w.leave()
				w.leave = nil
			} else {
				w.leave = w.pacer.join()
			}
		}
		if !w.paced {
			if err := w.conn.SetReadDeadline(now.Add(w.timeout)); err != nil {
				return false, err
			}
		}
	}
	// The tick to wait for and whether the clock runs are taken together: asked apart, a clock
	// that stopped in between would leave the relay waiting for a tick that never comes.
	var tick <-chan struct{}
	on := false
	if w.leave != nil && w.pacer.active() {
		tick, on = w.pacer.next()
	}
	if on != w.paced {
		w.paced = on
		w.rd.block = !on
		// Reads that do not wait still meet a deadline that has passed: paced, there is
		// none, and silence is measured here instead.
		var deadline time.Time
		if !on {
			deadline = now.Add(w.timeout)
		}
		if err := w.conn.SetReadDeadline(deadline); err != nil {
			return false, err
		}
		w.lastData = now
		w.armSilence(on)
	}
	if !w.paced {
		return false, nil
	}
	if now.Sub(w.lastData) > w.timeout {
		return false, w.silent()
	}
	select {
	case <-ctx.Done():
		return true, nil
	case <-tick:
		return false, nil
	case <-w.silence.C:
		// The wait is bounded by the silence check as the plain read is by its deadline,
		// whatever the Pacer's clock does. The timer is set for the timeout after the paced
		// wait began and is pushed on here, once per timeout, not at every read.
		now = time.Now()
		if left := w.lastData.Add(w.timeout).Sub(now); left > 0 {
			w.silence.Reset(left)
			return false, nil
		}
		return false, w.silent()
	}
}

func (w *readWait) silent() error {
	return fmt.Errorf("read: nothing from the camera for %s", w.timeout)
}

// armSilence starts the silence timer for a paced wait (on) or stops it.
func (w *readWait) armSilence(on bool) {
	switch {
	case !on:
		if w.silence != nil {
			w.silence.Stop()
		}
	case w.silence == nil:
		w.silence = time.NewTimer(w.timeout)
	default:
		w.silence.Reset(w.timeout)
	}
}

// arrived records that a read brought data at now.
func (w *readWait) arrived(now time.Time) { w.lastData = now }
