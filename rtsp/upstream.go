package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/camgate/camgate/rtmp"
	"github.com/pion/rtp"
)

// upstream is one publishing session, RTSP (publisher) or RTMP (rtmp.Publisher). Writes are
// buffered: WritePacket appends, Flush writes within the timeout, TryFlush writes what the
// socket takes without waiting. upstreamWriter calls these under its lock; ReadLoop runs in a
// goroutine of its own.
//
// The relay picks the implementation by the publish URL's scheme, so rtsp imports rtmp and
// never the other way round: rtmp knows only RTP packets and gortsplib's track formats.
type upstream interface {
	// WritePacket buffers one RTP packet of an announced track; at is the wall-clock time its
	// timestamp stands for, by the camera's sender reports where it sends them.
	WritePacket(track int, pkt *rtp.Packet, at time.Time) error
	Buffered() int
	Flush() error
	TryFlush() bool
	// Maintain does the session's periodic work due by now (sender reports, keep-alives) and
	// says when it is next due; zero means never.
	Maintain(now time.Time) (time.Time, error)
	// ReadLoop reads what the server sends until the connection fails; wake asks the writer
	// to flush answers that ReadLoop buffered.
	ReadLoop(wake func()) error
	Close() error
}

// errNoVideo ends an upstream attempt whose video track the protocol cannot carry.
var errNoVideo = errors.New("no video left to publish")

// upstreamTracks applies Flussonic's supported-sources table (SPEC §4) for the publish scheme:
// over RTSP H.264 and H.265 with AAC, PCMA or PCMU; over RTMP H.264 with AAC or PCMU. It
// returns, per camera track, its index in the upstream session or -1, and a line per track
// left out naming the codec and the protocol. Flussonic would refuse the session or drop the
// track; leaving it out here says so where the owner can read it.
// isRTMP says whether an upstream URL's scheme publishes over RTMP.
func isRTMP(scheme string) bool { return scheme == "rtmp" || scheme == "rtmps" }

func upstreamTracks(scheme string, medias []*description.Media) (index []int, dropped []string) {
	proto := "RTSP"
	if isRTMP(scheme) {
		proto = "RTMP"
	}
	n := 0
	for _, m := range medias {
		f := m.Formats[0]
		var err error
		if proto == "RTMP" {
			err = rtmp.Carries(f)
		} else {
			err = rtspCarries(f)
		}
		if err != nil {
			index = append(index, -1)
			dropped = append(dropped, fmt.Sprintf("%s %s left out: Flussonic does not take it over %s", err, m.Type, proto))
			continue
		}
		index = append(index, n)
		n++
	}
	return index, dropped
}

// rtspCarries is the RTSP row of Flussonic's supported-sources table.
func rtspCarries(f format.Format) error {
	switch f.(type) {
	case *format.H264, *format.H265, *format.MPEG4Audio, *format.G711:
		return nil
	}
	return errors.New(codecName(f))
}

// dialUpstream brings up the upstream session for the camera's tracks, leaving out what the
// protocol does not take (reported in Stats). It returns each camera track's index upstream,
// -1 for one left out.
func (r *Relay) dialUpstream(ctx context.Context, u *url.URL, tracks *trackSet) (upstream, []int, error) {
	index, dropped := upstreamTracks(u.Scheme, tracks.medias)
	r.setDropped(dropped)
	if len(index) == 0 || index[0] < 0 {
		return nil, nil, fmt.Errorf("%s: %w", dropped[0], errNoVideo)
	}
	var medias []*description.Media
	var formats []format.Format
	for i, m := range tracks.medias {
		if index[i] >= 0 {
			medias = append(medias, &description.Media{Type: m.Type, Formats: m.Formats})
			formats = append(formats, m.Formats[0])
		}
	}
	switch u.Scheme {
	case "rtmp", "rtmps":
		var params [3][]byte
		for i := range params {
			params[i], _ = r.fwd.paramSet(i)
		}
		p, err := rtmp.Dial(ctx, u, formats, params, r.cfg.Timeout, &r.rtmpLine)
		if err != nil {
			return nil, nil, &stepError{"RTMP", err}
		}
		return p, index, nil
	}
	p, err := dialPublisher(ctx, u, medias, r.cfg.Timeout)
	if err != nil {
		return nil, nil, err
	}
	return p, index, nil
}
