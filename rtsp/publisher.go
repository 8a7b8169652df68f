package rtsp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
)

const (
	// publishBuffer is what one upstream session batches before a write: a few packets of a
	// frame, or a slice of a keyframe.
	publishBuffer = 16 << 10
	// senderReportPeriod is how often each track's RTP clock is tied to wall-clock time.
	senderReportPeriod = 5 * time.Second
	// defaultSessionTimeout is RFC 2326's, for servers that do not state theirs.
	defaultSessionTimeout = 60 * time.Second
)

// publisher is one upstream RTSP session in record mode over TCP interleaving: ANNOUNCE, SETUP
// per track, RECORD, then RTP written as $-framed packets into a buffer that the caller flushes
// once per batch of queued packets. It is written to from one goroutine only; readLoop discards what the server sends.
// It exists instead of gortsplib's client because that one hands every packet to a writer
// goroutine and writes it with its own system call, which costs a gateway more than the relay.
type publisher struct {
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	url     *base.URL // without credentials
	user    string
	pass    string
	hasUser bool
	sender  *auth.Sender
	cseq    int
	session string
	timeout time.Duration
	// keepAlive is how often the session must be refreshed, from the server's session timeout.
	keepAlive time.Duration
	hdr       [4 + 12 + 4*15]byte // interleaved frame header and a marshalled RTP header
	tracks    []sentTrack
}

// sentTrack is what RTCP sender reports of one track are made of. Servers that record use them
// to line up audio and video in wall-clock time.
type sentTrack struct {
	clockRate       int
	ssrc, lastTS    uint32
	packets, octets uint32
	at              time.Time // when the packet with lastTS was sent
}

// deadlineWriter gives every write on conn its own deadline, so that a stalled uplink ends the
// session instead of blocking the relay forever.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.conn.Write(p)
}

// dialPublisher connects to u and brings up a recording session announcing medias, whose
// Control and Profile it sets. Errors name the step that failed.
func dialPublisher(ctx context.Context, u *url.URL, medias []*description.Media, timeout time.Duration) (*publisher, error) {
	host := u.Host
	if u.Port() == "" {
		port := "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, &stepError{"connect", err}
	}
	if u.Scheme == "rtsps" {
		conn = tls.Client(conn, &tls.Config{ServerName: u.Hostname()})
	}
	clean := *u
	clean.User = nil
	p := &publisher{
		conn:      conn,
		br:        bufio.NewReaderSize(conn, 4096),
		bw:        bufio.NewWriterSize(deadlineWriter{conn, timeout}, publishBuffer),
		url:       (*base.URL)(&clean),
		timeout:   timeout,
		keepAlive: defaultSessionTimeout / 2,
		tracks:    make([]sentTrack, len(medias)),
	}
	for i, m := range medias {
		p.tracks[i].clockRate = m.Formats[0].ClockRate()
	}
	if u.User != nil {
		p.user = u.User.Username()
		p.pass, _ = u.User.Password()
		p.hasUser = true
	}
	// Closing the connection is what unblocks a handshake step when ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := p.handshake(medias); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
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
	if _, err := p.do(base.Announce, p.url, base.Header{"Content-Type": base.HeaderValue{"application/sdp"}}, sdp); err != nil {
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
		var s headers.Session
		if err := s.Unmarshal(res.Header["Session"]); err != nil {
			return &stepError{"SETUP", fmt.Errorf("session header: %w", err)}
		}
		p.session = s.Session
		if s.Timeout != nil && *s.Timeout > 0 {
			p.keepAlive = max(time.Duration(*s.Timeout)*time.Second/2, time.Second)
		}
	}
	if _, err := p.do(base.Record, p.url, nil, nil); err != nil {
		return &stepError{"RECORD", err}
	}
	return nil
}

// do sends one request and reads its answer, answering one authentication challenge.
func (p *publisher) do(method base.Method, u *base.URL, h base.Header, body []byte) (*base.Response, error) {
	res, err := p.roundTrip(method, u, h, body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == base.StatusUnauthorized && p.hasUser && p.sender == nil {
		p.sender = &auth.Sender{WWWAuth: res.Header["WWW-Authenticate"], User: p.user, Pass: p.pass}
		if err := p.sender.Initialize(); err != nil {
			return nil, fmt.Errorf("authentication: %w", err)
		}
		if res, err = p.roundTrip(method, u, h, body); err != nil {
			return nil, err
		}
	}
	if res.StatusCode != base.StatusOK {
		return nil, liberrors.ErrClientBadStatusCode{Code: res.StatusCode, Message: res.StatusMessage}
	}
	return res, nil
}

func (p *publisher) roundTrip(method base.Method, u *base.URL, h base.Header, body []byte) (*base.Response, error) {
	if err := p.writeRequest(method, u, h, body); err != nil {
		return nil, err
	}
	if err := p.bw.Flush(); err != nil {
		return nil, err
	}
	if err := p.conn.SetReadDeadline(time.Now().Add(p.timeout)); err != nil {
		return nil, err
	}
	for {
		b, err := p.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] == base.InterleavedFrameMagicByte {
			if err := p.discardFrame(); err != nil {
				return nil, err
			}
			continue
		}
		var res base.Response
		if err := res.Unmarshal(p.br); err != nil {
			return nil, err
		}
		if cs, ok := res.Header["CSeq"]; ok && len(cs) == 1 && cs[0] != strconv.Itoa(p.cseq) {
			continue // the answer to an earlier keep-alive
		}
		return &res, nil
	}
}

// writeRequest buffers a request; the caller flushes.
func (p *publisher) writeRequest(method base.Method, u *base.URL, h base.Header, body []byte) error {
	req := &base.Request{Method: method, URL: u, Header: base.Header{}, Body: body}
	for k, v := range h {
		req.Header[k] = v
	}
	p.cseq++
	req.Header["CSeq"] = base.HeaderValue{strconv.Itoa(p.cseq)}
	req.Header["User-Agent"] = base.HeaderValue{"camgate"}
	if p.session != "" {
		req.Header["Session"] = base.HeaderValue{p.session}
	}
	if p.sender != nil {
		p.sender.AddAuthorization(req)
	}
	b, err := req.Marshal()
	if err != nil {
		return err
	}
	_, err = p.bw.Write(b)
	return err
}

// writePacket buffers one RTP packet of track, sent at about now, as an interleaved frame. It
// does not allocate.
func (p *publisher) writePacket(track int, pkt *packet, now time.Time) error {
	t := &p.tracks[track]
	t.ssrc, t.lastTS, t.at = pkt.SSRC, pkt.Timestamp, now
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
	if _, err := p.bw.Write(p.hdr[:4+n]); err != nil {
		return err
	}
	_, err = p.bw.Write(pkt.Payload)
	return err
}

// senderReports buffers an RTCP sender report for every track that has sent something,
// mapping its RTP clock to now.
func (p *publisher) senderReports(now time.Time) error {
	for i := range p.tracks {
		t := &p.tracks[i]
		if t.at.IsZero() {
			continue
		}
		b := p.hdr[:4+28]
		b[0], b[1] = base.InterleavedFrameMagicByte, byte(2*i+1)
		binary.BigEndian.PutUint16(b[2:], 28)
		b[4], b[5] = 0x80, 200 // version 2, no reception reports; sender report
		binary.BigEndian.PutUint16(b[6:], 28/4-1)
		binary.BigEndian.PutUint32(b[8:], t.ssrc)
		binary.BigEndian.PutUint64(b[12:], ntp.Encode(now))
		binary.BigEndian.PutUint32(b[20:], t.lastTS+uint32(now.Sub(t.at).Seconds()*float64(t.clockRate)))
		binary.BigEndian.PutUint32(b[24:], t.packets)
		binary.BigEndian.PutUint32(b[28:], t.octets)
		if _, err := p.bw.Write(b); err != nil {
			return err
		}
	}
	return p.bw.Flush()
}

// flush writes the batch.
func (p *publisher) flush() error { return p.bw.Flush() }

// ping refreshes the session with OPTIONS, which every server answers; readLoop discards
// the answer.
func (p *publisher) ping() error {
	if err := p.writeRequest(base.Options, p.url, nil, nil); err != nil {
		return err
	}
	return p.bw.Flush()
}

// readLoop reads and discards what the server sends during the session (RTCP receiver reports,
// answers to keep-alives) until the connection fails. The server must say something within a
// keep-alive period, since each ping is answered.
func (p *publisher) readLoop() error {
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
		if b, err := p.br.Peek(5); err == nil && string(b) != "RTSP/" {
			// A request from the server (SET_PARAMETER and the like): nothing a publisher needs.
			var req base.Request
			if err := req.Unmarshal(p.br); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			continue
		}
		var res base.Response
		if err := res.Unmarshal(p.br); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if res.StatusCode == base.StatusSessionNotFound {
			return errors.New("session lost: 454 Session Not Found")
		}
	}
}

func (p *publisher) discardFrame() error {
	var h [4]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return err
	}
	_, err := p.br.Discard(int(binary.BigEndian.Uint16(h[2:])))
	return err
}

func (p *publisher) close() error { return p.conn.Close() }
