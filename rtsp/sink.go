package rtsp

import (
	"context"
	"net/url"
	"time"
)

// runSink holds one upstream session until it fails, the camera's tracks change, or ctx ends.
// It waits for the first camera session, since there is nothing to announce before it.
func (r *Relay) runSink(ctx context.Context, u *url.URL) error {
	tracks, changed := r.currentTracks()
	for tracks == nil {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		tracks, changed = r.currentTracks()
	}
	if !r.waitGate(ctx) {
		return nil
	}
	up, index, err := r.dialUpstream(ctx, u, tracks)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer up.Close()
	defer context.AfterFunc(ctx, func() { up.Close() })()
	r.log.Info("upstream session up")
	r.fwd.restartSink(time.Now())
	gateMoved, gateEnd := r.gateWatch()
	defer func() { gateEnd.Stop() }()

	readErr := make(chan error, 1)
	go func() { readErr <- up.ReadLoop(r.fwd.wake) }()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	maintain := func(now time.Time) error {
		r.sinkMu.Lock()
		next, err := up.Maintain(now)
		r.sinkMu.Unlock()
		due.Stop()
		if !next.IsZero() {
			due.Reset(next.Sub(now))
		}
		return err
	}
	if err := maintain(time.Now()); err != nil {
		return &stepError{"write", err}
	}

	r.sinkMu.Lock()
	r.inline, r.upTracks = up, index
	r.sinkMu.Unlock()
	defer func() {
		r.sinkMu.Lock()
		r.inline, r.upTracks = nil, nil
		r.sinkMu.Unlock()
	}()
	for {
		r.sinkMu.Lock()
		_, err := r.drain(up, index, time.Now(), true)
		r.sinkMu.Unlock()
		if err != nil {
			return &stepError{"write", err}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case <-changed:
			return errTracksChanged
		case <-r.fwd.notify:
		case <-gateMoved:
			if gateMoved, gateEnd = r.regate(gateEnd); gateMoved == nil {
				return errGateShut
			}
		case <-gateEnd.C:
			if gateMoved, gateEnd = r.regate(gateEnd); gateMoved == nil {
				return errGateShut
			}
		case now := <-due.C:
			if err := maintain(now); err != nil {
				return &stepError{"write", err}
			}
		}
	}
}

// drain moves what is queued into up's buffer and writes it; the caller holds sinkMu. index
// maps camera tracks to upstream tracks (-1: left out). When block is false it writes only
// what the socket takes without waiting and stops at the first write that would wait. It
// reports whether everything queued went out.
func (r *Relay) drain(up upstream, index []int, now time.Time, block bool) (bool, error) {
	flush := func() (bool, error) {
		if block {
			return true, up.Flush()
		}
		return up.TryFlush(), nil
	}
	pkt := &r.popped
	for {
		if up.Buffered() >= publishBuffer {
			if ok, err := flush(); !ok || err != nil {
				return false, err
			}
		}
		if !r.fwd.pop(pkt) {
			return flush()
		}
		if pkt.track >= len(index) || index[pkt.track] < 0 {
			continue
		}
		if err := up.WritePacket(index[pkt.track], &pkt.Packet, pkt.at); err != nil {
			return false, err
		}
		r.sent(pkt)
	}
}

// batchDone is called by the camera side after the packets of one read are queued. It writes
// them upstream at once from the camera's goroutine when the upstream socket takes them
// without waiting (the usual case), and otherwise leaves them to the upstream goroutine: one
// goroutine hand-off less per batch, and a slow uplink still never stalls the camera side.
func (r *Relay) batchDone(now time.Time) {
	r.online.Store(true)
	if r.sampleRates(now) {
		r.logCacheLoss(now)
	}
	if r.sinkMu.TryLock() {
		done := false
		if up := r.inline; up != nil {
			done, _ = r.drain(up, r.upTracks, now, false) // an error is left for the upstream goroutine to meet
		}
		r.sinkMu.Unlock()
		if done {
			return
		}
	}
	r.fwd.wake()
}

// sent accounts for a packet handed to the upstream connection.
func (r *Relay) sent(p *packet) {
	r.relaying.Store(true)
	if p.track == 0 && p.Marker {
		r.fwd.framesOut.Add(1)
	}
}
