package rtsp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/bluenviron/gortsplib/v5/pkg/sdpunmarshaler"
	"github.com/pion/rtp"
)

const (
	// playBuffer is the camera connection's read buffer. An interleaved frame that fits is
	// handled where it lies; one read takes in everything the camera sent since the last.
	playBuffer = 16 << 10
	// receiverReportPeriod is how often the camera hears how its stream arrives. Some cameras
	// end sessions that send neither RTSP requests nor RTCP.
	receiverReportPeriod = 5 * time.Second
	// maxRedirects bounds the redirects followed on DESCRIBE.
	maxRedirects = 3
)

// player is one camera session played over TCP interleaving: OPTIONS, DESCRIBE, SETUP per
// relayed track, PLAY, then $-framed RTP read in batches. Keep-alives and RTCP receiver
// reports are written from the reading goroutine between batches, so a session costs one
// goroutine and no timer.
// It exists instead of gortsplib's client for the same reason as publisher: that one reads
// each frame through its own goroutines and callbacks, which costs a gateway more than the relay.
type player struct {
	rtspConn
	desc *description.Session
	sel  []selected
	// chans maps an interleaved channel to 2*track (RTP) or 2*track+1 (RTCP); -1 is unknown.
	chans        [256]int16
	tracks       []playTrack
	getParameter bool   // the camera lists GET_PARAMETER, the lighter keep-alive
	ssrc         uint32 // ours, in receiver reports
	pkt          rtp.Packet
	scratch      []byte // frames larger than the read buffer
	// When the next receiver reports and keep-alive are due.
	nextReport, nextKeepAlive time.Time
	rr                        [4 + receiverReportSize]byte
	senderReport              func(track int, ntp time.Time, rtpTime uint32) // cameraOptions.senderReport
}

// playTrack is what receiver reports of one track are made of (RFC 3550 appendix A.1 and A.3).
type playTrack struct {
	rtcpChannel     int
	ssrc            uint32
	started         bool
	baseSeq, maxSeq uint16
	cycles          uint32
	received        uint32
	expectedPrior   uint32
	receivedPrior   uint32
	lastSR          uint32 // middle 32 bits of the last sender report's NTP time
	lastSRAt        time.Time
	srNTP           uint64 // the last sender report's NTP time and RTP time
	srRTP           uint32
}

// cameraOptions is what a camera session is set up with besides its URL.
type cameraOptions struct {
	audio bool // relay the first audio track too
	// basic is the camera's auth: basic mark: it may get its password in Basic over rtsp://.
	basic   bool
	timeout time.Duration
	// senderReport, if set, hears each of the camera's RTCP sender reports: track's RTP time
	// rtpTime was at ntp on the camera's clock.
	senderReport func(track int, ntp time.Time, rtpTime uint32)
}

// dialPlayer connects to the camera at u and sets up the tracks worth relaying (see
// selectTracks) over TCP interleaving. On success the caller owns the player and must close
// it. Errors name the step that failed.
func dialPlayer(ctx context.Context, u *url.URL, o cameraOptions) (*player, error) {
	return dialCamera(ctx, u, o, func(p *player) error { return p.handshake(o.audio) })
}

func dialCamera(ctx context.Context, u *url.URL, o cameraOptions, handshake func(*player) error) (*player, error) {
	c, err := dialRTSP(ctx, u, o.timeout, playBuffer, 1024)
	if err != nil {
		return nil, err
	}
	c.refuseBasic = !o.basic && u.Scheme != "rtsps"
	p := &player{rtspConn: *c, ssrc: rand.Uint32(), senderReport: o.senderReport}
	if err := p.setUp(ctx, func() error { return handshake(p) }); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *player) handshake(audio bool) error {
	if err := p.describeStream(audio); err != nil {
		return err
	}
	for i := range p.chans {
		p.chans[i] = -1
	}
	p.tracks = make([]playTrack, len(p.sel))
	for i, s := range p.sel {
		if err := p.setup(i, s.media); err != nil {
			return &stepError{"SETUP", err}
		}
	}
	if _, err := p.do(base.Play, p.desc.BaseURL, base.Header{"Range": base.HeaderValue{"npt=0.000-"}}, nil); err != nil {
		return &stepError{"PLAY", err}
	}
	return nil
}

// describeStream asks OPTIONS and DESCRIBE and picks the tracks to relay.
func (p *player) describeStream(audio bool) error {
	// OPTIONS says which keep-alive the camera takes. A camera that refuses it may still
	// play, so only a broken connection or a refused password ends the session here.
	res, err := p.do(base.Options, p.url, nil, nil)
	var bad liberrors.ErrClientBadStatusCode
	switch {
	case errors.As(err, &bad):
	case err != nil:
		return &stepError{"OPTIONS", err}
	default:
		for _, v := range res.Header["Public"] {
			for m := range strings.SplitSeq(v, ",") {
				if strings.TrimSpace(m) == string(base.GetParameter) {
					p.getParameter = true
				}
			}
		}
	}
	if err := p.describe(); err != nil {
		return &stepError{"DESCRIBE", err}
	}
	sel, err := selectTracks(p.desc, audio)
	if err != nil {
		return &stepError{"DESCRIBE", err}
	}
	p.sel = sel
	return nil
}

// describe asks for the session description, following redirects within the same host only:
// the credentials the integrator gave for this camera are never sent anywhere else.
func (p *player) describe() error {
	target := p.url
	for redirects := 0; ; redirects++ {
		res, err := p.do(base.Describe, target, base.Header{"Accept": base.HeaderValue{"application/sdp"}}, nil)
		if res != nil && res.StatusCode >= 300 && res.StatusCode < 400 && len(res.Header["Location"]) == 1 {
			loc, perr := base.ParseURL(res.Header["Location"][0])
			switch {
			case perr != nil:
				return fmt.Errorf("redirected to an invalid location: %w", perr)
			case loc.Host != target.Host || (loc.Scheme != "rtsp" && loc.Scheme != "rtsps"):
				return fmt.Errorf("redirected to %s, another host: not followed, configure that URL instead",
					(*url.URL)(loc).Redacted())
			case redirects == maxRedirects:
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			loc.User = nil
			target = loc
			continue
		}
		if err != nil {
			return err
		}
		ct := res.Header["Content-Type"]
		if len(ct) != 1 || strings.TrimSpace(strings.Split(ct[0], ";")[0]) != "application/sdp" {
			return fmt.Errorf("answer is %q, not application/sdp", strings.Join(ct, ", "))
		}
		sd, err := sdpunmarshaler.Unmarshal(res.Body)
		if err != nil {
			return fmt.Errorf("invalid SDP: %w", err)
		}
		var desc description.Session
		if err := desc.Unmarshal2(sd); err != nil {
			return fmt.Errorf("invalid SDP: %w", err)
		}
		desc.BaseURL, err = baseURL(target, sd.Attribute, res.Header["Content-Base"])
		if err != nil {
			return err
		}
		p.desc = &desc
		return nil
	}
}

// baseURL is what track controls are relative to: the SDP's session-level control URL, else
// Content-Base, else the URL described (RFC 2326 C.1.1). The host is always the camera's own.
func baseURL(described *base.URL, attr func(string) (string, bool), contentBase base.HeaderValue) (*base.URL, error) {
	var s string
	if control, ok := attr("control"); ok && control != "*" {
		s = control
	} else if len(contentBase) == 1 {
		s = contentBase[0]
	} else {
		return described, nil
	}
	if strings.HasPrefix(s, "/") {
		s = described.Scheme + "://" + described.Host + s
	}
	u, err := base.ParseURL(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base URL %q: %w", s, err)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, fmt.Errorf("invalid base URL %q: not rtsp", s)
	}
	u.User = nil
	u.Host = described.Host
	return u, nil
}

// setup asks for track i over interleaved channels 2i and 2i+1; the camera may choose others.
func (p *player) setup(i int, m *description.Media) error {
	res, err := p.requestSetup(m, fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d", 2*i, 2*i+1), "TCP")
	if err != nil {
		return err
	}
	ids := [2]int{2 * i, 2*i + 1}
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err == nil && th.InterleavedIDs != nil {
		ids = *th.InterleavedIDs
	}
	for _, id := range ids {
		if id < 0 || id > 255 || p.chans[id] != -1 {
			return fmt.Errorf("camera chose unusable interleaved channels %v", ids)
		}
	}
	p.chans[ids[0]] = int16(2 * i)
	p.chans[ids[1]] = int16(2*i + 1)
	p.tracks[i].rtcpChannel = ids[1]
	return nil
}

// requestSetup asks SETUP of m with transport and takes the session from the answer. A 461
// says the camera does not send RTP over over (TCP or UDP): errTransportRefused.
func (p *player) requestSetup(m *description.Media, transport, over string) (*base.Response, error) {
	mu, err := m.URL(p.desc.BaseURL)
	if err != nil {
		return nil, err
	}
	res, err := p.do(base.Setup, mu, base.Header{"Transport": base.HeaderValue{transport}}, nil)
	if err != nil {
		var bad liberrors.ErrClientBadStatusCode
		if errors.As(err, &bad) && bad.Code == base.StatusUnsupportedTransport {
			return nil, fmt.Errorf("camera does not send RTP over %s: %w", over, errTransportRefused)
		}
		return nil, err
	}
	if err := p.takeSession(res); err != nil {
		return nil, err
	}
	return res, nil
}

// frameReady reports whether the next message is buffered whole, so that handling it takes no
// read. A frame larger than the buffer counts as ready: it is read on its own.
func (p *player) frameReady() bool {
	n := p.br.Buffered()
	if n < 4 {
		return false
	}
	h, _ := p.br.Peek(4)
	if h[0] != base.InterleavedFrameMagicByte {
		return true
	}
	size := 4 + int(binary.BigEndian.Uint16(h[2:]))
	return n >= size || size > p.br.Size()
}

// play reads the session until it fails or ctx ends, handing each RTP packet of track i to
// onPacket (its payload is valid only during the call) and calling onBatch after the packets
// of each batch, with the time they arrived. How it waits between batches is readWait's
// business: while pacer paces this relay a batch is what arrived since the pacer's last tick;
// otherwise, what one read returned.
func (p *player) play(
	ctx context.Context, pacer *Pacer, onPacket func(track int, pkt *rtp.Packet, now time.Time),
	onBatch func(now time.Time),
) error {
	defer context.AfterFunc(ctx, func() { _ = p.conn.SetReadDeadline(time.Unix(1, 0)) })()
	defer p.teardown(ctx)
	now := time.Now()
	w := newReadWait(p.conn, p.rd, p.timeout, pacer, now)
	defer w.stop()
	p.nextReport, p.nextKeepAlive = now.Add(receiverReportPeriod), now.Add(p.keepAlive)
	for {
		pending := false
		for p.frameReady() {
			delivered, err := p.readOne(now, onPacket)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			pending = pending || delivered
		}
		if pending {
			// Hand on each buffer's worth at once, even when more waits in the socket: the
			// queue then holds one read, not a whole keyframe's burst.
			onBatch(now)
		}
		if w.again() {
			if err := p.fill(); err != nil && !errors.Is(err, errWouldBlock) {
				return p.readError(ctx, err)
			}
			continue
		}
		now = time.Now()
		if err := p.housekeeping(now); err != nil {
			return err
		}
		if done, err := w.wait(ctx, now); done || err != nil {
			return err
		}
		err := p.fill()
		if errors.Is(err, errWouldBlock) {
			continue
		}
		if err != nil {
			return p.readError(ctx, err)
		}
		now = time.Now()
		w.arrived(now)
	}
}

// fill reads once into the buffer, which holds no whole frame: more of a frame, or the next.
func (p *player) fill() error {
	if n := p.br.Buffered(); n < p.br.Size() {
		_, err := p.br.Peek(n + 1)
		return err
	}
	return nil
}

func (p *player) readError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("read: %w", err)
}

// blocking reads the rest of a message that does not fit one batch (an RTSP answer, a frame
// larger than the buffer) waiting for it, within the read timeout.
func (p *player) blocking(read func() error) error {
	if p.rd.block {
		return read()
	}
	if err := p.conn.SetReadDeadline(time.Now().Add(p.timeout)); err != nil {
		return err
	}
	p.rd.block = true
	err := read()
	p.rd.block = false
	if err != nil {
		return err
	}
	return p.conn.SetReadDeadline(time.Time{})
}

// housekeeping writes receiver reports and keep-alives when they are due.
func (p *player) housekeeping(now time.Time) error { return p.housekeep(now, p.receiverReports) }

// housekeep calls reports and writes a keep-alive when they are due: GET_PARAMETER where the
// camera lists it, else OPTIONS, to the stream's base URL (some cameras answer nothing else).
func (p *player) housekeep(now time.Time, reports func(now time.Time)) error {
	if now.After(p.nextReport) {
		p.nextReport = now.Add(receiverReportPeriod)
		reports(now)
	}
	if now.After(p.nextKeepAlive) {
		p.nextKeepAlive = now.Add(p.keepAlive)
		method := base.Options
		if p.getParameter {
			method = base.GetParameter
		}
		if err := p.writeRequest(method, p.desc.BaseURL, nil, nil); err != nil {
			return &stepError{"keep-alive", err}
		}
	}
	if err := p.flush(); err != nil { // nothing to write is no system call
		return &stepError{"write", err}
	}
	return nil
}

// readOne handles the next message and reports whether it delivered a packet.
func (p *player) readOne(now time.Time, onPacket func(int, *rtp.Packet, time.Time)) (bool, error) {
	h, err := p.br.Peek(4)
	if err != nil {
		return false, fmt.Errorf("read: %w", err)
	}
	if h[0] != base.InterleavedFrameMagicByte {
		var res *base.Response
		err := p.blocking(func() (err error) {
			res, err = p.readMessage()
			return err
		})
		if err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
		if res != nil && res.StatusCode == base.StatusSessionNotFound {
			return false, errors.New("session lost: 454 Session Not Found")
		}
		return false, nil
	}
	ch := h[1]
	size := int(binary.BigEndian.Uint16(h[2:]))
	var frame []byte
	if 4+size <= p.br.Size() {
		b, err := p.br.Peek(4 + size)
		if err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
		frame = b[4:]
		// Discarding what Peek just returned cannot fail.
		defer func() { _, _ = p.br.Discard(4 + size) }()
	} else {
		_, _ = p.br.Discard(4) // the header, peeked above
		if cap(p.scratch) < size {
			p.scratch = make([]byte, size)
		}
		frame = p.scratch[:size]
		if err := p.blocking(func() error {
			_, err := io.ReadFull(p.br, frame)
			return err
		}); err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
	}
	id := p.chans[ch]
	if id < 0 {
		return false, nil
	}
	track := int(id / 2)
	if id%2 == 1 {
		if t := &p.tracks[track]; t.takeRTCP(frame, now) && p.senderReport != nil {
			p.senderReport(track, ntp.Decode(t.srNTP), t.srRTP)
		}
		return false, nil
	}
	if err := p.pkt.Unmarshal(frame); err != nil || p.pkt.Version != 2 {
		return false, nil // not RTP: a camera's stray frame is no reason to end the session
	}
	p.tracks[track].count(p.pkt.SSRC, p.pkt.SequenceNumber)
	onPacket(track, &p.pkt, now)
	return true, nil
}

func (t *playTrack) count(ssrc uint32, seq uint16) {
	if !t.started || ssrc != t.ssrc {
		*t = playTrack{rtcpChannel: t.rtcpChannel, ssrc: ssrc, started: true, baseSeq: seq, maxSeq: seq}
	} else if d := seq - t.maxSeq; d != 0 && d < 0x8000 {
		if seq < t.maxSeq {
			t.cycles += 1 << 16
		}
		t.maxSeq = seq
	}
	t.received++
}

// takeRTCP remembers the camera's last sender report, which receiver reports refer to, and
// says whether b had one.
func (t *playTrack) takeRTCP(b []byte, now time.Time) (sr bool) {
	for len(b) >= 4 {
		n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
		if b[0]>>6 != 2 || n > len(b) {
			return sr
		}
		if b[1] == 200 && n >= 28 {
			t.lastSR = binary.BigEndian.Uint32(b[10:])
			t.lastSRAt = now
			t.srNTP, t.srRTP = binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint32(b[16:])
			sr = true
		}
		b = b[n:]
	}
	return sr
}

// receiverReports buffers one RTCP receiver report per track that has received something.
func (p *player) receiverReports(now time.Time) {
	for i := range p.tracks {
		t := &p.tracks[i]
		if !t.started {
			continue
		}
		b := p.rr[:]
		b[0], b[1] = base.InterleavedFrameMagicByte, byte(t.rtcpChannel)
		binary.BigEndian.PutUint16(b[2:], receiverReportSize)
		t.receiverReport(b[4:], p.ssrc, now)
		p.out = append(p.out, b...)
	}
}

// receiverReportSize is the length of an RTCP receiver report with one report block.
const receiverReportSize = 32

// receiverReport writes into b (receiverReportSize bytes) the RTCP receiver report that ssrc,
// ours, sends about the track at now (RFC 3550 6.4.2 and appendix A.3).
func (t *playTrack) receiverReport(b []byte, ssrc uint32, now time.Time) {
	extMax := t.cycles + uint32(t.maxSeq)
	expected := extMax - uint32(t.baseSeq) + 1
	lost := int64(expected) - int64(t.received)
	lost = min(max(lost, 0), 0x7fffff)
	expInterval := expected - t.expectedPrior
	recvInterval := t.received - t.receivedPrior
	t.expectedPrior, t.receivedPrior = expected, t.received
	var fraction byte
	if expInterval > 0 && expInterval > recvInterval {
		fraction = byte((uint64(expInterval-recvInterval) << 8) / uint64(expInterval))
	}
	var dlsr uint32
	if !t.lastSRAt.IsZero() {
		dlsr = uint32(now.Sub(t.lastSRAt).Seconds() * 65536)
	}
	b[0], b[1] = 0x81, 201 // version 2, one report block; receiver report
	binary.BigEndian.PutUint16(b[2:], receiverReportSize/4-1)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	binary.BigEndian.PutUint32(b[8:], t.ssrc)
	binary.BigEndian.PutUint32(b[12:], uint32(lost))
	b[12] = fraction
	binary.BigEndian.PutUint32(b[16:], extMax)
	binary.BigEndian.PutUint32(b[20:], 0) // jitter: not measured
	binary.BigEndian.PutUint32(b[24:], t.lastSR)
	binary.BigEndian.PutUint32(b[28:], dlsr)
}

// teardown ends the session politely when the relay stops, so that a camera with few
// sessions to give has this one back at once; a failed session is only closed.
func (p *player) teardown(ctx context.Context) {
	if ctx.Err() != nil {
		// Straight to the connection, with a short deadline of its own: a camera that does
		// not read must not hold the relay's shutdown.
		p.out = p.out[:0]
		if p.writeRequest(base.Teardown, p.desc.BaseURL, nil, nil) == nil &&
			p.conn.SetWriteDeadline(time.Now().Add(time.Second)) == nil {
			_, _ = p.conn.Write(p.out) // best effort: the session ends either way
		}
	}
	p.conn.Close()
}
