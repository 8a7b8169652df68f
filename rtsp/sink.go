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
	open, from := r.waitGate(ctx)
	if !open {
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
	r.fwd.restartSink(time.Now(), from)
	gateMoved, gateEnd := r.gateWatch()
	defer func() { gateEnd.Stop() }()

	readErr := make(chan error, 1)
	go func() { readErr <- up.ReadLoop(r.fwd.wake) }()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	schedule := func(next time.Time, now time.Time) {
		due.Stop()
		if !next.IsZero() {
			due.Reset(next.Sub(now))
		}
	}
	now := time.Now()
	next, err := r.writer.attach(up, index, now)
	defer r.writer.detach()
	if err != nil {
		return &stepError{"write", err}
	}
	schedule(next, now)
	for {
		if err := r.writer.drain(); err != nil {
			return &stepError{"write", err}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case <-changed:
			// What the old tracks queued is the old session's: it goes before the session ends.
			if err := r.writer.drain(); err != nil {
				return &stepError{"write", err}
			}
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
			next, err := r.writer.maintain(now)
			if err != nil {
				return &stepError{"write", err}
			}
			schedule(next, now)
		}
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
		r.logPreRollShrink()
	}
	if r.writer.tryDrain() {
		return
	}
	r.fwd.wake()
}
