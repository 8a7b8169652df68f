package rtsp

import (
	"context"
	"net/url"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/camgate/camgate/rtmp"
)

func (r *Relay) runRTMPSink(ctx context.Context, u *url.URL, tracks *trackSet, changed <-chan struct{}) error {
	var params [3][]byte
	for i := range params {
		params[i], _ = r.fwd.paramSet(i)
	}
	formats := make([]format.Format, len(tracks.medias))
	for i, m := range tracks.medias {
		formats[i] = m.Formats[0]
	}
	p, err := rtmp.Dial(ctx, u, formats, params, r.cfg.Timeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &stepError{"RTMP", err}
	}
	defer p.Close()
	defer context.AfterFunc(ctx, func() { p.Close() })()
	r.log.Info("upstream session up")
	r.fwd.restartSink()

	readErr := make(chan error, 1)
	go func() { readErr <- p.ReadLoop() }()
	var pkt packet
	for {
		for r.fwd.pop(&pkt) {
			if err := p.WritePacket(pkt.track, &pkt.Packet); err != nil {
				return &stepError{"RTMP write", err}
			}
			r.sent(&pkt)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return &stepError{"RTMP read", err}
		case <-changed:
			return errTracksChanged
		case <-r.fwd.notify:
		}
	}
}
