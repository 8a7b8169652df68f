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
	// The goroutine writes whatever is queued when it wakes, in one system call: packets that
	// arrive while it writes or wakes up go out together, at no added delay.
	var pkt packet
	for {
		// One clock reading per wake-up: the packets taken now arrived together.
		now := time.Now()
		wrote := false
		for r.fwd.pop(&pkt) {
			if err := p.writePacket(pkt.track, &pkt, now); err != nil {
				return &stepError{"write", err}
			}
			r.sent(&pkt)
			wrote = true
		}
		if wrote {
			if err := p.flush(); err != nil {
				return &stepError{"write", err}
			}
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
			if err := p.senderReports(time.Now()); err != nil {
				return &stepError{"write", err}
			}
		case <-keepAlive.C:
			if err := p.ping(); err != nil {
				return &stepError{"keep-alive", err}
			}
		}
	}
}

// sent accounts for a packet handed to the upstream connection.
func (r *Relay) sent(p *packet) {
	r.relaying.Store(true)
	if p.track == 0 && p.Marker {
		r.fwd.framesOut.Add(1)
	}
}
