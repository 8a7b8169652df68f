package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/rtp"
)

// rtmpTrack turns the RTP packets of one track into the frames an RTMP writer takes.
// RTMP carries frames, not packets, so unlike the RTSP sink this one depacketizes; the
// payload bytes still pass through untouched.
type rtmpTrack struct {
	track     *gortmplib.Track
	clockRate int
	write     func(w *gortmplib.Writer, pkt *rtp.Packet, pts time.Duration) error

	started bool
	lastTS  uint32
	ticks   int64 // timestamp relative to the first packet, unwrapped
}

func (t *rtmpTrack) pts(ts uint32) time.Duration {
	if !t.started {
		t.started = true
	} else {
		t.ticks += int64(int32(ts - t.lastTS))
	}
	t.lastTS = ts
	return time.Duration(t.ticks * int64(time.Second) / int64(t.clockRate))
}

// newRTMPTrack prepares a track for RTMP, or says why RTMP cannot carry it.
func newRTMPTrack(f format.Format, params [3][]byte) (*rtmpTrack, error) {
	t := &rtmpTrack{clockRate: f.ClockRate()}
	switch f := f.(type) {
	case *format.H264:
		if params[1] == nil || params[2] == nil {
			return nil, errors.New("H.264 SPS/PPS not known yet")
		}
		t.track = &gortmplib.Track{Codec: &codecs.H264{SPS: params[1], PPS: params[2]}}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		dts := &h264.DTSExtractor{}
		dts.Initialize()
		t.write = func(w *gortmplib.Writer, pkt *rtp.Packet, pts time.Duration) error {
			au, err := dec.Decode(pkt)
			if err != nil {
				return nil // more packets needed, or a broken frame the decoder skips
			}
			d, err := dts.Extract(au, int64(pts))
			if err != nil {
				d = int64(pts)
			}
			return w.WriteH264(t.track, pts, time.Duration(d), au)
		}
	case *format.H265:
		if params[0] == nil || params[1] == nil || params[2] == nil {
			return nil, errors.New("H.265 VPS/SPS/PPS not known yet")
		}
		t.track = &gortmplib.Track{Codec: &codecs.H265{VPS: params[0], SPS: params[1], PPS: params[2]}}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		dts := &h265.DTSExtractor{}
		dts.Initialize()
		t.write = func(w *gortmplib.Writer, pkt *rtp.Packet, pts time.Duration) error {
			au, err := dec.Decode(pkt)
			if err != nil {
				return nil
			}
			d, err := dts.Extract(au, int64(pts))
			if err != nil {
				d = int64(pts)
			}
			return w.WriteH265(t.track, pts, time.Duration(d), au)
		}
	case *format.MPEG4Audio:
		t.track = &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: f.Config}}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.write = func(w *gortmplib.Writer, pkt *rtp.Packet, pts time.Duration) error {
			aus, err := dec.Decode(pkt)
			if err != nil {
				return nil
			}
			for i, au := range aus {
				at := pts + time.Duration(i)*1024*time.Second/time.Duration(t.clockRate)
				if err := w.WriteMPEG4Audio(t.track, at, au); err != nil {
					return err
				}
			}
			return nil
		}
	case *format.G711:
		if f.SampleRate != 8000 {
			return nil, fmt.Errorf("RTMP cannot carry G.711 at %d Hz, only 8000 Hz: publish over rtsp:// or drop audio", f.SampleRate)
		}
		t.track = &gortmplib.Track{Codec: &codecs.G711{MULaw: f.MULaw, ChannelCount: f.ChannelCount}}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.write = func(w *gortmplib.Writer, pkt *rtp.Packet, pts time.Duration) error {
			samples, err := dec.Decode(pkt)
			if err != nil {
				return nil
			}
			return w.WriteG711(t.track, pts, samples)
		}
	case *format.Opus:
		t.track = &gortmplib.Track{Codec: &codecs.Opus{IDHeader: &opus.IDHeader{
			Version: 1, ChannelCount: uint8(f.ChannelCount), InputSampleRate: 48000,
		}}}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.write = func(w *gortmplib.Writer, pkt *rtp.Packet, pts time.Duration) error {
			frame, err := dec.Decode(pkt)
			if err != nil {
				return nil
			}
			return w.WriteOpus(t.track, pts, frame)
		}
	default:
		return nil, fmt.Errorf("RTMP cannot carry %s: RTMP takes H.264, H.265, AAC, G.711 (8 kHz) and Opus", f.RTPMap())
	}
	return t, nil
}

func (r *Relay) runRTMPSink(ctx context.Context, u *url.URL, tracks *trackSet, changed <-chan struct{}) error {
	var params [3][]byte
	for i := range params {
		params[i], _ = r.fwd.paramSet(i)
	}
	var rtracks []*rtmpTrack
	var wtracks []*gortmplib.Track
	for _, m := range tracks.medias {
		t, err := newRTMPTrack(m.Formats[0], params)
		if err != nil {
			return &stepError{"RTMP", err}
		}
		rtracks = append(rtracks, t)
		wtracks = append(wtracks, t.track)
	}

	c := &gortmplib.Client{URL: u, Publish: true}
	dialCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	err := c.Initialize(dialCtx)
	cancel()
	if err != nil {
		return &stepError{"RTMP connect", err}
	}
	defer c.Close()
	defer context.AfterFunc(ctx, c.Close)()
	nc := c.NetConn()
	_ = nc.SetDeadline(time.Now().Add(r.cfg.Timeout))
	w := &gortmplib.Writer{Conn: c, Tracks: wtracks}
	if err := w.Initialize(); err != nil {
		return &stepError{"RTMP publish", err}
	}
	_ = nc.SetReadDeadline(time.Time{})
	r.log.Info("upstream session up")
	r.fwd.restartSink()

	// The server's acknowledgements and pings must be read, or its side of the connection
	// fills up; reading also notices a server that went away.
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Read(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	var pkt packet
	for {
		for r.fwd.pop(&pkt) {
			t := rtracks[pkt.track]
			_ = nc.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
			if err := t.write(w, &pkt.Packet, t.pts(pkt.Timestamp)); err != nil {
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
