package rtsp

import (
	"sync"
	"sync/atomic"
	"time"
)

// upstreamWriter is the one way anything reaches the upstream socket, RTSP interleaved
// (publisher) or RTMP (rtmp.Publisher) alike. It holds the session while it is up, and the lock
// that whoever writes holds: the upstream goroutine (runSink: blocking drains, sender reports,
// keep-alives) or the camera goroutine after each batch (tryDrain, which waits neither for the
// lock nor for the socket, so that a slow uplink never stalls the camera side). What the
// session's own reader queues for the writer (an RTMP acknowledgement) is taken at the next
// flush, under this lock too.
type upstreamWriter struct {
	fwd      *forwarder
	relaying *atomic.Bool // set by every packet handed to the session

	mu    sync.Mutex
	up    upstream // nil while no session is up
	index []int    // camera track -> session track, -1 left out
	// popped is the packet being written; reused, so that writing allocates nothing.
	popped packet
}

// attach makes up, whose tracks are the camera's as index maps them, the session written to,
// does its first Maintain (it says when the next is due), and sends what is queued: a GOP
// cache's burst (restartSink) goes out here, before the lock is first let go, so that the camera
// goroutine's tryDrain only ever meets what its own batch queued: a burst of megabytes goes at
// the upstream's pace, from the upstream goroutine.
func (w *upstreamWriter) attach(up upstream, index []int, now time.Time) (time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.up, w.index = up, index
	next, err := up.Maintain(now)
	if err != nil {
		return next, err
	}
	_, err = w.drainLocked(true)
	return next, err
}

// detach forgets the session; nothing is written until the next attach.
func (w *upstreamWriter) detach() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.up, w.index = nil, nil
}

// maintain does the session's periodic work due by now and says when it is next due.
func (w *upstreamWriter) maintain(now time.Time) (time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.up == nil {
		return time.Time{}, nil
	}
	return w.up.Maintain(now)
}

// drain writes everything queued, waiting for the socket within the session's timeout.
func (w *upstreamWriter) drain() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.up == nil {
		return nil
	}
	_, err := w.drainLocked(true)
	return err
}

// tryDrain writes what is queued if the lock is free and the socket takes it without waiting,
// and reports whether everything went. An error is left for the upstream goroutine to meet at
// its next write.
func (w *upstreamWriter) tryDrain() bool {
	if !w.mu.TryLock() {
		return false
	}
	defer w.mu.Unlock()
	if w.up == nil {
		return false
	}
	done, _ := w.drainLocked(false)
	return done
}

// drainLocked moves what is queued into the session's buffer and writes it. When block is
// false it writes only what the socket takes without waiting and stops at the first write that
// would wait. It reports whether everything queued went out.
func (w *upstreamWriter) drainLocked(block bool) (bool, error) {
	up := w.up
	flush := func() (bool, error) {
		if block {
			return true, up.Flush()
		}
		return up.TryFlush(), nil
	}
	pkt := &w.popped
	for {
		if up.Buffered() >= publishBuffer {
			if ok, err := flush(); !ok || err != nil {
				return false, err
			}
		}
		if !w.fwd.pop(pkt) {
			return flush()
		}
		if pkt.track >= len(w.index) || w.index[pkt.track] < 0 {
			continue
		}
		if err := up.WritePacket(w.index[pkt.track], &pkt.Packet, pkt.at); err != nil {
			return false, err
		}
		w.relaying.Store(true)
		w.fwd.bytesOut.Add(uint64(len(pkt.Payload)))
		if pkt.track == 0 && pkt.Marker {
			w.fwd.framesOut.Add(1)
		}
	}
}
