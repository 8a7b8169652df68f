package rtsp

import (
	"context"
	"net/url"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
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
	switch u.Scheme {
	case "rtmp", "rtmps":
		return r.runRTMPSink(ctx, u, tracks, changed)
	}
	return r.runRTSPSink(ctx, u, tracks, changed)
}

func (r *Relay) runRTSPSink(ctx context.Context, u *url.URL, tracks *trackSet, changed <-chan struct{}) error {
	medias := make([]*description.Media, len(tracks.medias))
	for i, m := range tracks.medias {
		medias[i] = &description.Media{Type: m.Type, Formats: m.Formats}
	}
	p, err := dialPublisher(ctx, u, medias, r.cfg.Timeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer p.close()
	defer context.AfterFunc(ctx, func() { p.close() })()
	r.log.Info("upstream session up")
	r.fwd.restartSink()

	readErr := make(chan error, 1)
	go func() { readErr <- p.readLoop() }()
	keepAlive := time.NewTicker(p.keepAlive)
	defer keepAlive.Stop()
	reports := time.NewTicker(senderReportPeriod)
	defer reports.Stop()

	if p.raw != nil {
		r.sinkMu.Lock()
		r.inline = p
		r.sinkMu.Unlock()
	}
	defer func() {
		r.sinkMu.Lock()
		r.inline = nil
		r.sinkMu.Unlock()
	}()
	for {
		r.sinkMu.Lock()
		_, err := r.drain(p, time.Now(), true)
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
		case <-reports.C:
			r.sinkMu.Lock()
			err := p.senderReports(time.Now())
			r.sinkMu.Unlock()
			if err != nil {
				return &stepError{"write", err}
			}
		case <-keepAlive.C:
			r.sinkMu.Lock()
			err := p.ping()
			r.sinkMu.Unlock()
			if err != nil {
				return &stepError{"keep-alive", err}
			}
		}
	}
}

// drain moves what is queued into p's buffer and writes it; the caller holds sinkMu. When
// block is false it writes only what the socket takes without waiting and stops at the first
// write that would wait. It reports whether everything queued went out.
func (r *Relay) drain(p *publisher, now time.Time, block bool) (bool, error) {
	flush := func() (bool, error) {
		if block {
			return true, p.flush()
		}
		return p.tryFlush(), nil
	}
	pkt := &r.popped
	for {
		if len(p.out) >= publishBuffer {
			if ok, err := flush(); !ok || err != nil {
				return false, err
			}
		}
		if !r.fwd.pop(pkt) {
			return flush()
		}
		if err := p.writePacket(pkt.track, pkt, now); err != nil {
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
	r.sampleRates(now)
	if r.sinkMu.TryLock() {
		done := false
		if p := r.inline; p != nil {
			done, _ = r.drain(p, now, false) // an error is left for the upstream goroutine to meet
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
