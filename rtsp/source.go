package rtsp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// selected is a camera track chosen for relaying.
type selected struct {
	media  *description.Media
	format format.Format
}

// selectTracks picks the first H.264/H.265 video track and, when audio is wanted, the first
// AAC, G.711 or Opus audio track. Metadata and back channels are never relayed.
func selectTracks(desc *description.Session, audio bool) ([]selected, error) {
	var video, snd *selected
	var offered []string
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			offered = append(offered, string(m.Type)+" "+f.RTPMap())
			switch f.(type) {
			case *format.H264, *format.H265:
				if video == nil && m.Type == description.MediaTypeVideo {
					video = &selected{m, f}
				}
			case *format.MPEG4Audio, *format.G711, *format.Opus:
				if snd == nil && audio && m.Type == description.MediaTypeAudio {
					snd = &selected{m, f}
				}
			}
		}
	}
	if video == nil {
		return nil, fmt.Errorf("no H.264 or H.265 video track (camera offers: %s)", strings.Join(offered, ", "))
	}
	out := []selected{*video}
	if snd != nil {
		out = append(out, *snd)
	}
	return out, nil
}

// newTrackSet describes the selected tracks for upstream, with fresh Media values so that the
// upstream client never shares state with the camera client.
func newTrackSet(sel []selected) *trackSet {
	t := &trackSet{}
	for i, s := range sel {
		t.medias = append(t.medias, &description.Media{Type: s.media.Type, Formats: []format.Format{s.format}})
		if i == 0 {
			t.videoName = codecName(s.format)
			if _, ok := s.format.(*format.H265); ok {
				t.video = codecH265
			} else {
				t.video = codecH264
			}
		} else {
			t.audioName = codecName(s.format)
		}
	}
	t.signature = signatureOf(t.medias, false)
	t.codecSignature = signatureOf(t.medias, true)
	return t
}

// parameterSets returns the VPS, SPS and PPS the SDP declares for the video format.
func parameterSets(f format.Format) [3][]byte {
	switch f := f.(type) {
	case *format.H264:
		return [3][]byte{nil, f.SPS, f.PPS}
	case *format.H265:
		return [3][]byte{f.VPS, f.SPS, f.PPS}
	}
	return [3][]byte{}
}

// codecName is the name Stats and the agent use for a relayed format.
func codecName(f format.Format) string {
	switch f := f.(type) {
	case *format.H264:
		return "H264"
	case *format.H265:
		return "H265"
	case *format.MPEG4Audio:
		return "AAC"
	case *format.G711:
		if f.MULaw {
			return "PCMU"
		}
		return "PCMA"
	case *format.Opus:
		return "Opus"
	}
	return f.RTPMap()
}

// udpSilence is how long a UDP session may deliver nothing before auto moves it to TCP: UDP
// gets lost behind NAT and firewalls, and then nothing arrives at all (gortsplib and ffmpeg
// wait about as long).
const udpSilence = 3 * time.Second

var (
	// errTransportRefused is a camera's 461 Unsupported Transport to SETUP.
	errTransportRefused = errors.New("461 Unsupported Transport")
	// errUDPSilent is a UDP session that delivered nothing within udpSilence.
	errUDPSilent = fmt.Errorf("no packet arrived over UDP within %s", udpSilence)
)

// cameraSession is one camera session set up over TCP (player) or UDP (udpSession).
type cameraSession interface {
	selected() []selected
	// play delivers each RTP packet of track i to onPacket (valid only during the call) and
	// calls onBatch after each batch, until the session fails or ctx ends (then nil).
	play(ctx context.Context, pacer *Pacer, onPacket func(int, *rtp.Packet, time.Time), onBatch func(time.Time)) error
	close() error
}

func (p *player) selected() []selected { return p.sel }

// playCamera is the one way camgate plays a camera, for relays and probes alike: it opens a
// session over transport ("tcp" or "udp") and plays it. With auto, a transport the camera
// refuses (461) or a UDP session that stays silent is tried again at once over the other, as
// ffmpeg and gortsplib do. started sees each session's tracks and transport before its first
// packet. It returns the transport last used.
func playCamera(
	ctx context.Context, u *url.URL, o cameraOptions, transport string, auto bool, pacer *Pacer,
	started func(sel []selected, transport string), onPacket func(int, *rtp.Packet, time.Time),
	onBatch func(time.Time),
) (string, error) {
	for switched := false; ; switched = true {
		err := playOver(ctx, u, o, transport, pacer, started, onPacket, onBatch)
		if !auto || switched || ctx.Err() != nil || !otherMayWork(err) {
			return transport, err
		}
		transport = otherTransport(transport)
	}
}

func playOver(ctx context.Context, u *url.URL, o cameraOptions, transport string, pacer *Pacer,
	started func([]selected, string), onPacket func(int, *rtp.Packet, time.Time), onBatch func(time.Time)) error {
	var s cameraSession
	var err error
	if transport == "udp" {
		s, err = dialUDP(ctx, u, o)
	} else {
		s, err = dialPlayer(ctx, u, o)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer s.close()
	started(s.selected(), transport)
	return s.play(ctx, pacer, onPacket, onBatch)
}

// otherMayWork says whether a session's failure was its transport's: a 461 or a silent UDP
// session, which the other transport may not have.
func otherMayWork(err error) bool {
	return errors.Is(err, errTransportRefused) || errors.Is(err, errUDPSilent)
}

func otherTransport(t string) string {
	if t == "udp" {
		return "tcp"
	}
	return "udp"
}

// runSource holds one camera session until it fails or ctx ends, over the transport the
// relay last found to work.
func (r *Relay) runSource(ctx context.Context, u *url.URL) error {
	return r.playSource(ctx, u, r.sources.Add(1), nil)
}

// udpSession is a camera session whose media arrive over UDP. Our client asks OPTIONS and
// DESCRIBE, so redirects, authentication and camera quirks are handled in one place; then
// gortsplib's client, whose port handling the player does not repeat, asks SETUP and PLAY. It
// dials only the camera's configured host and port, gets the credentials only where our
// DESCRIBE needed them under the camera's auth policy, and may not send Basic where that
// policy refuses it.
type udpSession struct {
	c   *gortsplib.Client
	sel []selected
	// stop ends the session when the ctx given to dialUDP ends.
	stop         func() bool
	senderReport func(track int, ntp time.Time, rtpTime uint32) // cameraOptions.senderReport
}

func dialUDP(ctx context.Context, u *url.URL, o cameraOptions) (*udpSession, error) {
	p, err := describeCamera(ctx, u, o)
	if err != nil {
		return nil, err
	}
	p.conn.Close()
	addr := cameraAddr(u)
	pin := &pinnedDialer{addr: addr, refuseBasic: p.refuseBasic}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         addr,
		ReadTimeout:  o.timeout,
		WriteTimeout: o.timeout,
		Protocol:     new(gortsplib.ProtocolUDP),
		UserAgent:    "camgate",
		DialContext:  pin.dial,
		// The camera session only ever writes RTCP receiver reports and keep-alives.
		WriteQueueSize: 16,
	}
	setupURL := *p.desc.BaseURL // on the camera's own host (baseURL)
	if p.sender != nil {
		setupURL.User = u.User
	}
	if err := c.Start(); err != nil {
		return nil, &stepError{"connect", err}
	}
	s := &udpSession{c: c, sel: p.sel, stop: context.AfterFunc(ctx, c.Close)}
	s.senderReport = o.senderReport
	for _, sel := range p.sel {
		if _, err := c.Setup(&setupURL, sel.media, 0, 0); err != nil {
			s.close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if refused := pin.refusal(); refused != nil {
				err = refused
			}
			var bad liberrors.ErrClientBadStatusCode
			if errors.As(err, &bad) && bad.Code == base.StatusUnsupportedTransport {
				err = fmt.Errorf("camera does not send RTP over UDP: %w", errTransportRefused)
			}
			return nil, &stepError{"SETUP", err}
		}
	}
	return s, nil
}

func (s *udpSession) selected() []selected { return s.sel }

func (s *udpSession) close() error {
	s.stop()
	s.c.Close()
	return nil
}

func (s *udpSession) play(
	ctx context.Context, _ *Pacer, onPacket func(int, *rtp.Packet, time.Time), onBatch func(time.Time),
) error {
	var mu sync.Mutex // gortsplib may call from one goroutine per UDP socket
	first := make(chan struct{})
	arrived := false
	for i, sel := range s.sel {
		s.c.OnPacketRTP(sel.media, sel.format, func(pkt *rtp.Packet) {
			mu.Lock()
			defer mu.Unlock()
			if !arrived {
				arrived = true
				close(first)
			}
			// Each packet is its own batch: gortsplib hands them over one by one.
			now := time.Now()
			onPacket(i, pkt, now)
			onBatch(now)
		})
		if s.senderReport != nil {
			s.c.OnPacketRTCP(sel.media, func(pkt rtcp.Packet) {
				if sr, ok := pkt.(*rtcp.SenderReport); ok {
					mu.Lock()
					defer mu.Unlock()
					s.senderReport(i, ntp.Decode(sr.NTPTime), sr.RTPTime)
				}
			})
		}
	}
	if _, err := s.c.Play(nil); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &stepError{"PLAY", err}
	}
	wait := make(chan error, 1)
	go func() { wait <- s.c.Wait() }()
	silence := time.NewTimer(udpSilence)
	defer silence.Stop()
	for {
		select {
		case <-first:
			first = nil
			silence.Stop()
		case <-silence.C:
			s.c.Close()
			<-wait //nolint:errcheck // the session ends for its silence, however Close made it return
			return errUDPSilent
		case err := <-wait:
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// cameraAddr is the host:port a camera URL names, with RTSP's default ports.
func cameraAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "554"
	if u.Scheme == "rtsps" {
		port = "322"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// pinnedDialer is gortsplib's only way out: it connects to the camera's configured address
// and nowhere else, and closes a connection that would carry a Basic password the camera's
// auth policy refuses, before it is written.
type pinnedDialer struct {
	addr        string
	refuseBasic bool
	mu          sync.Mutex
	err         error // why a dial or write was refused
}

func (d *pinnedDialer) refuse(err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
	return err
}

// refusal is why a dial or write was refused, nil if none was.
func (d *pinnedDialer) refusal() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *pinnedDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if address != d.addr {
		return nil, d.refuse(fmt.Errorf("refused to connect to %s: only the camera's %s is dialled", address, d.addr))
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil || !d.refuseBasic {
		return c, err
	}
	return &noBasicConn{Conn: c, d: d}, nil
}

// noBasicConn refuses to write an RTSP request that carries Basic credentials.
type noBasicConn struct {
	net.Conn
	d *pinnedDialer
}

func (c *noBasicConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("\r\nAuthorization: Basic ")) {
		_ = c.Close() // the refusal is what the caller must see
		return 0, c.d.refuse(ErrBasicRefused)
	}
	return c.Conn.Write(b)
}
