package rtsp

import (
	"context"
	"errors"
	"net/url"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
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
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  r.cfg.Timeout,
		WriteTimeout: r.cfg.Timeout,
		Protocol:     protocolOf("tcp"),
		UserAgent:    "camgate",
	}
	desc := &description.Session{}
	for _, m := range tracks.medias {
		desc.Medias = append(desc.Medias, &description.Media{Type: m.Type, Formats: m.Formats})
	}
	if err := c.Start(); err != nil {
		return &stepError{"connect", err}
	}
	defer c.Close()
	defer context.AfterFunc(ctx, c.Close)()
	bu := (*base.URL)(u)
	if _, err := c.Announce(bu, desc); err != nil {
		return &stepError{"ANNOUNCE", err}
	}
	if err := c.SetupAll(bu, desc.Medias); err != nil {
		return &stepError{"SETUP", err}
	}
	if _, err := c.Record(); err != nil {
		return &stepError{"RECORD", err}
	}
	r.log.Info("upstream session up")
	r.fwd.restartSink()

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	var pkt packet
	for {
		for r.fwd.pop(&pkt) {
			err := c.WritePacketRTP(desc.Medias[pkt.track], &pkt.Packet)
			var full liberrors.ErrClientWriteQueueFull
			switch {
			case errors.As(err, &full):
				// The connection's own queue is full: the uplink is slower than the camera.
				r.fwd.restartSink()
				continue
			case err != nil:
				return &stepError{"write", err}
			}
			r.sent(&pkt)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-waitErr:
			return err
		case <-changed:
			return errTracksChanged
		case <-r.fwd.notify:
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
