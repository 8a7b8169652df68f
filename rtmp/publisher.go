package rtmp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// The RTMP publisher is written here rather than taken from gortmplib: gortmplib pulls in
// go-mp4 and codec packages worth about 0.65 MiB on mipsle, a tenth of what the router's flash
// budget allows the whole daemon, for the small part of RTMP a publisher needs.

// rtmpTrack turns the RTP packets of one track into the FLV tags RTMP carries. RTMP carries
// frames, not packets, so unlike the RTSP sink this one depacketizes; the payload bytes still
// pass through untouched.
type rtmpTrack struct {
	clockRate int
	fourCC    string // Enhanced RTMP codec to announce in connect, if any
	video     bool
	codecID   float64 // onMetaData's videocodecid or audiocodecid
	header    []byte  // the sequence start tag body, sent before any frame; nil if none
	write     func(c *rtmpConn, pkt *rtp.Packet, pts time.Duration) error

	body    []byte // reused tag body
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

// ownPayload returns the packet with a payload of its own. The video decoders return NAL units
// that point into the packets of the whole access unit, while the forwarder reuses one packet
// buffer for every pop: without the copy, a frame sent as several slices would be sent with its
// first slices overwritten by the last.
func ownPayload(pkt *rtp.Packet) *rtp.Packet {
	p := *pkt
	p.Payload = append([]byte(nil), pkt.Payload...)
	return &p
}

// rtmpTime is an RTMP timestamp: milliseconds, wrapping at 2^32 as the protocol does.
func rtmpTime(d time.Duration) uint32 {
	if d < 0 {
		return 0
	}
	return uint32(d.Milliseconds())
}

// videoTimes turns the extracted DTS into RTMP's DTS and composition time, keeping DTS
// monotonic and the composition time non-negative as FLV requires.
func videoTimes(pts time.Duration, dts int64, err error) (uint32, int32) {
	d := time.Duration(dts)
	if err != nil || d > pts {
		d = pts
	}
	if d < 0 {
		d = 0
	}
	return rtmpTime(d), int32((pts - d).Milliseconds())
}

// newRTMPTrack prepares a track for RTMP, or says why RTMP cannot carry it.
func newRTMPTrack(f format.Format, params [3][]byte) (*rtmpTrack, error) {
	t := &rtmpTrack{clockRate: f.ClockRate()}
	switch f := f.(type) {
	case *format.H264:
		if params[1] == nil || params[2] == nil {
			return nil, errors.New("H.264 SPS/PPS not known yet")
		}
		cfg, err := avcDecoderConfig(params[1], params[2])
		if err != nil {
			return nil, err
		}
		t.video, t.codecID = true, flvCodecAVC
		t.header = append(appendAVCVideo(nil, true, 0, 0), cfg...)
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		dts := &h264.DTSExtractor{}
		dts.Initialize()
		t.write = func(c *rtmpConn, pkt *rtp.Packet, pts time.Duration) error {
			au, err := dec.Decode(ownPayload(pkt))
			if err != nil {
				return nil // more packets needed, or a broken frame the decoder skips
			}
			d, err := dts.Extract(au, int64(pts))
			ts, cts := videoTimes(pts, d, err)
			t.body = appendAVCC(appendAVCVideo(t.body[:0], h264.IsRandomAccess(au), 1, cts), au)
			return c.writeMedia(rtmpVideo, ts, t.body)
		}
	case *format.H265:
		if params[0] == nil || params[1] == nil || params[2] == nil {
			return nil, errors.New("H.265 VPS/SPS/PPS not known yet")
		}
		cfg, err := hevcDecoderConfig(params[0], params[1], params[2])
		if err != nil {
			return nil, err
		}
		t.video, t.fourCC, t.codecID = true, fourCCHEVC, fourCCNumber(fourCCHEVC)
		t.header = append(appendExVideo(nil, true, exSequenceStart, fourCCHEVC, 0), cfg...)
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		dts := &h265.DTSExtractor{}
		dts.Initialize()
		t.write = func(c *rtmpConn, pkt *rtp.Packet, pts time.Duration) error {
			au, err := dec.Decode(ownPayload(pkt))
			if err != nil {
				return nil
			}
			d, err := dts.Extract(au, int64(pts))
			ts, cts := videoTimes(pts, d, err)
			pt := byte(exCodedFramesX)
			if cts != 0 {
				pt = exCodedFrames
			}
			t.body = appendAVCC(appendExVideo(t.body[:0], h265.IsRandomAccess(au), pt, fourCCHEVC, cts), au)
			return c.writeMedia(rtmpVideo, ts, t.body)
		}
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil, errors.New("AAC without AudioSpecificConfig")
		}
		asc, err := f.Config.Marshal()
		if err != nil {
			return nil, fmt.Errorf("AAC config: %w", err)
		}
		// Rate and size bits are fixed for AAC: the AudioSpecificConfig says what they are.
		const aacHeader = flvSoundAAC<<4 | 3<<2 | 1<<1 | 1
		t.codecID = flvSoundAAC
		t.header = append([]byte{aacHeader, 0}, asc...)
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.write = func(c *rtmpConn, pkt *rtp.Packet, pts time.Duration) error {
			aus, err := dec.Decode(pkt)
			if err != nil {
				return nil
			}
			for i, au := range aus {
				at := pts + time.Duration(i)*1024*time.Second/time.Duration(t.clockRate)
				t.body = append(append(t.body[:0], aacHeader, 1), au...)
				if err := c.writeMedia(rtmpAudio, rtmpTime(at), t.body); err != nil {
					return err
				}
			}
			return nil
		}
	case *format.G711:
		if f.SampleRate != 8000 {
			return nil, fmt.Errorf("RTMP cannot carry G.711 at %d Hz, only 8000 Hz: publish over rtsp:// or drop audio", f.SampleRate)
		}
		// FLV says G.711 is 8 kHz whatever the rate bits say; 16-bit is what decoders expect.
		hdr := byte(flvSoundPCMA<<4 | 1<<1)
		t.codecID = flvSoundPCMA
		if f.MULaw {
			hdr, t.codecID = flvSoundPCMU<<4|1<<1, flvSoundPCMU
		}
		if f.ChannelCount == 2 {
			hdr |= 1
		}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.write = func(c *rtmpConn, pkt *rtp.Packet, pts time.Duration) error {
			samples, err := dec.Decode(pkt)
			if err != nil {
				return nil
			}
			t.body = append(append(t.body[:0], hdr), samples...)
			return c.writeMedia(rtmpAudio, rtmpTime(pts), t.body)
		}
	case *format.Opus:
		t.fourCC, t.codecID = fourCCOpus, fourCCNumber(fourCCOpus)
		t.header = append([]byte{flvSoundEx<<4 | exSequenceStart}, fourCCOpus...)
		t.header = append(t.header, opusHead(f.ChannelCount)...)
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.write = func(c *rtmpConn, pkt *rtp.Packet, pts time.Duration) error {
			frame, err := dec.Decode(pkt)
			if err != nil {
				return nil
			}
			t.body = append(append(t.body[:0], flvSoundEx<<4|exCodedFrames), fourCCOpus...)
			t.body = append(t.body, frame...)
			return c.writeMedia(rtmpAudio, rtmpTime(pts), t.body)
		}
	default:
		return nil, fmt.Errorf("RTMP cannot carry %s: RTMP takes H.264, H.265, AAC, G.711 (8 kHz) and Opus", f.RTPMap())
	}
	return t, nil
}

// writeRTMPHeaders sends onMetaData and each track's sequence start, which receivers need
// before the first frame.
func writeRTMPHeaders(c *rtmpConn, tracks []*rtmpTrack) error {
	meta := amfECMA{}
	for _, t := range tracks {
		key := "audiocodecid"
		if t.video {
			key = "videocodecid"
		}
		meta = append(meta, amfProp{key, t.codecID})
	}
	b := appendAMF(nil, "@setDataFrame")
	b = appendAMF(b, "onMetaData")
	b = appendAMF(b, meta)
	if err := c.writeMedia(rtmpDataAMF0, 0, b); err != nil {
		return err
	}
	for _, t := range tracks {
		if t.header == nil {
			continue
		}
		typ := byte(rtmpAudio)
		if t.video {
			typ = rtmpVideo
		}
		if err := c.writeMedia(typ, 0, t.header); err != nil {
			return err
		}
	}
	return nil
}

// Publisher is one RTMP publishing session: the tracks' sequence starts are sent, then each
// RTP packet handed to WritePacket goes out as FLV tags. One goroutine writes; ReadLoop, in
// another, answers what the server asks of a publisher.
type Publisher struct {
	c       *rtmpConn
	tracks  []*rtmpTrack
	timeout time.Duration
}

// Dial connects to u, publishes the stream its path names and sends the tracks' headers.
// params are the video track's parameter sets (VPS, SPS, PPS) known so far. timeout bounds the
// set-up and, later, each write.
func Dial(ctx context.Context, u *url.URL, formats []format.Format, params [3][]byte, timeout time.Duration) (*Publisher, error) {
	var opts rtmpPublishOptions
	p := &Publisher{timeout: timeout}
	for _, f := range formats {
		t, err := newRTMPTrack(f, params)
		if err != nil {
			return nil, err
		}
		p.tracks = append(p.tracks, t)
		if t.fourCC != "" {
			opts.fourCCs = append(opts.fourCCs, t.fourCC)
		}
	}
	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	c, err := dialRTMP(dialCtx, u, opts)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	if err := writeRTMPHeaders(c, p.tracks); err != nil {
		c.Close()
		return nil, fmt.Errorf("publish: %w", err)
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	p.c = c
	return p, nil
}

// WritePacket sends what the RTP packet of track completes.
func (p *Publisher) WritePacket(track int, pkt *rtp.Packet) error {
	t := p.tracks[track]
	_ = p.c.nc.SetWriteDeadline(time.Now().Add(p.timeout))
	return t.write(p.c, pkt, t.pts(pkt.Timestamp))
}

// ReadLoop reads what the server sends until the connection fails. The server's
// acknowledgement window and pings must be answered, or it stops reading or drops us; reading
// also notices a server that went away.
func (p *Publisher) ReadLoop() error {
	for {
		if _, err := p.c.readMessage(); err != nil {
			return err
		}
	}
}

// Close ends the session.
func (p *Publisher) Close() error { return p.c.Close() }
