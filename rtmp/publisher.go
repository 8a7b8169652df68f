package rtmp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// maxFrame bounds one video frame being put together: a 4K keyframe is a few hundred KiB, and
// a stream that never sets the marker bit must not grow memory.
const maxFrame = 4 << 20

// Publisher is one RTMP publishing session. Dial sends the tracks' sequence starts; then each
// RTP packet handed to WritePacket is turned into FLV tags, chunked into a buffer that Flush
// writes. One goroutine at a time writes; ReadLoop, in another, answers what the server asks
// of a publisher. Once a session has seen its largest frame, the write path does not allocate.
type Publisher struct {
	c       *rtmpConn
	tracks  []*track
	timeout time.Duration
	out     []byte
	line    *Timeline
}

// Timeline is where RTMP time 0 of a stream lies, kept over its publishes: the wall-clock time
// of the first packet of the first publish that wrote to it. A server takes each publish as a
// new session, so a publish that restarted at time 0 would step its recording back by
// everything sent before; with one Timeline every publish goes on from the time the one
// before ended, as if the stream had never stopped. It is used by one publish at a time.
type Timeline struct {
	t0 time.Time
}

// Carries says whether RTMP as Flussonic takes it carries f: H.264 video with AAC or G.711
// μ-law audio, per the RTMP row of Flussonic's supported-sources table (SPEC §4). The error
// names the codec.
func Carries(f format.Format) error {
	switch f := f.(type) {
	case *format.H264:
		return nil
	case *format.MPEG4Audio:
		if f.Config == nil {
			return errors.New("AAC without an AudioSpecificConfig")
		}
		if f.SizeLength == 0 {
			return errors.New("AAC without sizelength")
		}
		return nil
	case *format.G711:
		if f.MULaw && f.SampleRate == 8000 && f.ChannelCount == 1 {
			return nil
		}
		if !f.MULaw {
			return errors.New("G.711 A-law (PCMA)")
		}
		return fmt.Errorf("G.711 μ-law at %d Hz, %d channels (RTMP carries 8000 Hz mono)", f.SampleRate, f.ChannelCount)
	}
	return errors.New(codecLabel(f))
}

// codecLabel names a format in errors as Stats names codecs ("H265", "Opus"), since
// gortsplib's Codec is deprecated; others by their RTP encoding name.
func codecLabel(f format.Format) string {
	switch f.(type) {
	case *format.H265:
		return "H265"
	case *format.Opus:
		return "Opus"
	}
	return f.RTPMap()
}

// Dial connects to u, publishes the stream its path names and sends each track's headers.
// params are the video track's parameter sets (VPS, SPS, PPS) known so far. timeout bounds the
// set-up and, later, each write. The session's times are on line, nil for one of its own,
// which starts at its first packet. A track RTMP does not carry (see Carries) is an error.
func Dial(
	ctx context.Context, u *url.URL, formats []format.Format, params [3][]byte, timeout time.Duration,
	line *Timeline,
) (*Publisher, error) {
	if line == nil {
		line = &Timeline{}
	}
	p := &Publisher{timeout: timeout, line: line}
	for _, f := range formats {
		if err := Carries(f); err != nil {
			return nil, fmt.Errorf("RTMP does not carry %w", err)
		}
		t, err := newTrack(f, params)
		if err != nil {
			return nil, err
		}
		p.tracks = append(p.tracks, t)
	}
	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	c, err := dialRTMP(dialCtx, u)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	if err := writeHeaders(c, p.tracks); err != nil {
		c.Close()
		return nil, fmt.Errorf("publish: %w", err)
	}
	_ = c.nc.SetDeadline(time.Time{})
	p.c = c
	return p, nil
}

// WritePacket buffers the FLV tags that the RTP packet of track completes. now is the
// wall-clock time the packet's timestamp stands for (the relay's mapping: the camera's sender
// reports, else the track's first arrival): each track's RTMP time starts at its first
// packet's time on the session's Timeline, then advances by the track's own RTP clock, so
// that audio and video keep the offset the camera states and jitter never moves them.
func (p *Publisher) WritePacket(track int, pkt *rtp.Packet, now time.Time) error {
	if p.line.t0.IsZero() {
		p.line.t0 = now
	}
	t := p.tracks[track]
	if !t.started {
		t.started, t.lastTS, t.base = true, pkt.Timestamp, now.Sub(p.line.t0)
	}
	p.out = t.write(p.out, p.c, pkt)
	return nil
}

// Buffered says how many bytes wait for Flush.
func (p *Publisher) Buffered() int { return len(p.out) }

// Flush writes what is buffered, and the reader's replies ahead of it, within the timeout.
func (p *Publisher) Flush() error {
	p.out = p.c.takeReplies(p.out)
	if len(p.out) == 0 {
		return nil
	}
	_ = p.c.nc.SetWriteDeadline(time.Now().Add(p.timeout))
	_, err := p.c.nc.Write(p.out)
	p.out = p.out[:0]
	return err
}

// TryFlush reports whether nothing is buffered. An RTMP session is not written without
// waiting: its writer, not the caller, flushes.
func (p *Publisher) TryFlush() bool { return len(p.out) == 0 }

// Maintain has nothing to do for RTMP: the server's pings are answered as they come.
func (p *Publisher) Maintain(time.Time) (time.Time, error) { return time.Time{}, nil }

// ReadLoop reads what the server sends until the connection fails, calling wake when an
// answer (acknowledgement, ping response) waits for Flush. The server's acknowledgement window
// and pings must be answered, or it stops reading or drops us; reading also notices a server
// that went away.
func (p *Publisher) ReadLoop(wake func()) error {
	p.c.mu.Lock()
	p.c.queue, p.c.wake = true, wake
	p.c.mu.Unlock()
	for {
		if _, err := p.c.readMessage(); err != nil {
			return err
		}
	}
}

// Close ends the session.
func (p *Publisher) Close() error { return p.c.Close() }

// writeHeaders sends onMetaData and each track's sequence start, which receivers need before
// the first frame.
func writeHeaders(c *rtmpConn, tracks []*track) error {
	meta := amfECMA{}
	for _, t := range tracks {
		key := "audiocodecid"
		if t.typ == rtmpVideo {
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
		if err := c.writeMedia(t.typ, 0, t.header); err != nil {
			return err
		}
	}
	return nil
}
