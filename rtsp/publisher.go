package rtsp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/pion/rtp"
)

const (
	// publishBuffer is what one upstream session batches before a write: a few packets of a
	// frame, or a slice of a keyframe.
	publishBuffer = 16 << 10
	// senderReportPeriod is how often each track's RTP clock is tied to wall-clock time.
	senderReportPeriod = 5 * time.Second
)

// publisher is one upstream RTSP session in record mode over TCP interleaving: ANNOUNCE, SETUP
// per track, RECORD, then RTP written as $-framed packets into a buffer that the caller flushes
// once per batch of queued packets. It is written to from one goroutine only; readLoop discards what the server sends.
// It exists instead of gortsplib's client because that one hands every packet to a writer
// goroutine and writes it with its own system call, which costs a gateway more than the relay.
type publisher struct {
	rtspConn
	hdr    [4 + 12 + 4*15]byte // interleaved frame header and a marshalled RTP header
	tracks []sentTrack

	nextReport, nextPing time.Time // when Maintain sends them next
}

// sentTrack is what RTCP sender reports of one track are made of. Servers that record use them
// to line up audio and video in wall-clock time (Flussonic does for RTSP ingest), so the
// mapping from the track's RTP clock to wall-clock time they state must be the camera's, and
// must not move with network or scheduling jitter: each packet comes with the wall-clock time
// its timestamp stands for (the forwarder's mapping: the camera's own sender reports, else the
// first packet's arrival, advanced by the RTP clock), and a report states the line through
// the last of them. Re-anchoring to the arrival of every packet, as this once did, moved each
// report by that packet's jitter, and receivers stepped A/V PTS by up to 85 ms at every report.
type sentTrack struct {
	clockRate       int
	ssrc            uint32
	packets, octets uint32
	lastTS          uint32
	lastAt          time.Time // zero until the first packet
}

// dialPublisher connects to u and brings up a recording session announcing medias, whose
// Control and Profile it sets. Errors name the step that failed.
func dialPublisher(
	ctx context.Context, u *url.URL, medias []*description.Media, timeout time.Duration,
) (*publisher, error) {
	c, err := dialRTSP(ctx, u, timeout, 4096, publishBuffer)
	if err != nil {
		return nil, err
	}
	p := &publisher{rtspConn: *c, tracks: make([]sentTrack, len(medias))}
	for i, m := range medias {
		p.tracks[i].clockRate = m.Formats[0].ClockRate()
	}
	if err := p.setUp(ctx, func() error { return p.handshake(medias) }); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *publisher) handshake(medias []*description.Media) error {
	desc := &description.Session{}
	for i, m := range medias {
		m.Control = "trackID=" + strconv.Itoa(i)
		m.Profile = headers.TransportProfileAVP
		desc.Medias = append(desc.Medias, m)
	}
	sdp, err := desc.Marshal()
	if err != nil {
		return &stepError{"ANNOUNCE", err}
	}
	if _, err := p.do(base.Announce, p.url, base.Header{"Content-Type": base.HeaderValue{"application/sdp"}},
		sdp); err != nil {
		return &stepError{"ANNOUNCE", err}
	}
	for i, m := range medias {
		mu, err := m.URL(p.url)
		if err != nil {
			return &stepError{"SETUP", err}
		}
		transport := fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d;mode=record", 2*i, 2*i+1)
		res, err := p.do(base.Setup, mu, base.Header{"Transport": base.HeaderValue{transport}}, nil)
		if err != nil {
			return &stepError{"SETUP", err}
		}
		if err := p.takeSession(res); err != nil {
			return &stepError{"SETUP", err}
		}
	}
	if _, err := p.do(base.Record, p.url, nil, nil); err != nil {
		return &stepError{"RECORD", err}
	}
	return nil
}

// WritePacket buffers one RTP packet of track, whose timestamp stands for wall-clock time at,
// as an interleaved frame. A track's first packet follows a sender report, so that receivers
// line the tracks up from the start instead of from the first periodic report. It does not
// allocate.
func (p *publisher) WritePacket(track int, pkt *rtp.Packet, at time.Time) error {
	t := &p.tracks[track]
	first := t.lastAt.IsZero()
	t.lastTS, t.lastAt = pkt.Timestamp, at
	t.ssrc = pkt.SSRC
	if first {
		p.senderReport(track, at)
	}
	t.packets++
	t.octets += uint32(len(pkt.Payload))
	n, err := pkt.Header.MarshalTo(p.hdr[4:])
	if err != nil {
		return err
	}
	size := n + len(pkt.Payload)
	if size > 0xffff {
		return fmt.Errorf("RTP packet of %d bytes does not fit an interleaved frame", size)
	}
	p.hdr[0] = base.InterleavedFrameMagicByte
	p.hdr[1] = byte(2 * track)
	binary.BigEndian.PutUint16(p.hdr[2:4], uint16(size))
	p.out = append(p.out, p.hdr[:4+n]...)
	p.out = append(p.out, pkt.Payload...)
	return nil
}

// senderReports writes an RTCP sender report for every track that has sent something.
func (p *publisher) senderReports(now time.Time) error {
	for i := range p.tracks {
		if !p.tracks[i].lastAt.IsZero() {
			p.senderReport(i, now)
		}
	}
	return p.flush()
}

// senderReport buffers an RTCP sender report of track: now, and the RTP time the track's
// mapping gives for it.
func (p *publisher) senderReport(i int, now time.Time) {
	t := &p.tracks[i]
	rtpNow := t.lastTS + uint32(int64(now.Sub(t.lastAt))*int64(t.clockRate)/int64(time.Second))
	b := p.hdr[:4+28]
	b[0], b[1] = base.InterleavedFrameMagicByte, byte(2*i+1)
	binary.BigEndian.PutUint16(b[2:], 28)
	b[4], b[5] = 0x80, 200 // version 2, no reception reports; sender report
	binary.BigEndian.PutUint16(b[6:], 28/4-1)
	binary.BigEndian.PutUint32(b[8:], t.ssrc)
	binary.BigEndian.PutUint64(b[12:], ntp.Encode(now))
	binary.BigEndian.PutUint32(b[20:], rtpNow)
	binary.BigEndian.PutUint32(b[24:], t.packets)
	binary.BigEndian.PutUint32(b[28:], t.octets)
	p.out = append(p.out, b...)
}

// Buffered says how many bytes wait for Flush.
func (p *publisher) Buffered() int { return len(p.out) }

// Flush writes what is buffered within the timeout.
func (p *publisher) Flush() error { return p.flush() }

// TryFlush writes what the socket takes without waiting and reports whether all went.
func (p *publisher) TryFlush() bool { return p.tryFlush() }

// Close ends the session.
func (p *publisher) Close() error { return p.close() }

// Maintain sends the sender reports and the keep-alive that are due by now.
func (p *publisher) Maintain(now time.Time) (time.Time, error) {
	if p.nextReport.IsZero() {
		p.nextReport, p.nextPing = now.Add(senderReportPeriod), now.Add(p.keepAlive)
	}
	if !now.Before(p.nextReport) {
		p.nextReport = now.Add(senderReportPeriod)
		if err := p.senderReports(now); err != nil {
			return time.Time{}, err
		}
	}
	if !now.Before(p.nextPing) {
		p.nextPing = now.Add(p.keepAlive)
		if err := p.ping(); err != nil {
			return time.Time{}, fmt.Errorf("keep-alive: %w", err)
		}
	}
	if p.nextPing.Before(p.nextReport) {
		return p.nextPing, nil
	}
	return p.nextReport, nil
}

// ping refreshes the session with OPTIONS, which every server answers; readLoop discards
// the answer.
func (p *publisher) ping() error {
	if err := p.writeRequest(base.Options, p.url, nil, nil); err != nil {
		return err
	}
	return p.flush()
}

// ReadLoop reads and discards what the server sends during the session (RTCP receiver reports,
// answers to keep-alives) until the connection fails. The server must say something within a
// keep-alive period, since each ping is answered.
func (p *publisher) ReadLoop(func()) error {
	for {
		if err := p.conn.SetReadDeadline(time.Now().Add(p.keepAlive + p.timeout)); err != nil {
			return err
		}
		b, err := p.br.Peek(1)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if b[0] == base.InterleavedFrameMagicByte {
			if err := p.discardFrame(); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			continue
		}
		res, err := p.readMessage()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if res != nil && res.StatusCode == base.StatusSessionNotFound {
			return errors.New("session lost: 454 Session Not Found")
		}
	}
}
