package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/pion/rtp"
)

// udpMaxPacket is the largest RTP or RTCP packet a UDP session takes: an IPv4 datagram in one
// Ethernet frame, as gortsplib's client. A larger one arrived truncated and is dropped.
const udpMaxPacket = 1472

// udpSession is a camera session whose media arrive over UDP (RFC 2326 12.39, client_port):
// the player's connection asks OPTIONS, DESCRIBE, SETUP and PLAY and then carries only
// keep-alives; each track has a socket pair on the connection's local address, read by a
// goroutine of its own. It takes packets only from the camera's address (the connection's
// peer) and the server ports its SETUP answer named, as gortsplib's client did before it:
// a spoofed packet from elsewhere on the LAN never reaches the relay. Like that client, it puts
// packets that arrive out of order back in order and drops duplicates (reorderer).
// It exists instead of gortsplib's client, which cost the mipsel binary 576 KiB of flash
// (SRTP, MIKEY, its server-side machinery) for what this file does.
type udpSession struct {
	p     *player
	peer  netip.Addr
	pairs []udpPair
	// mu serializes the readers' callbacks and guards the tracks' receiver statistics,
	// gotRTP and lastPacket, which the session's own goroutine reads for reports and timeouts.
	mu         sync.Mutex
	gotRTP     bool
	lastPacket time.Time // RTP or RTCP, as gortsplib counted for its read timeout
}

// udpPair is one track's RTP and RTCP sockets and where the camera sends from.
type udpPair struct {
	rtp, rtcp             *net.UDPConn
	serverRTP, serverRTCP netip.AddrPort
}

// errSecureUDP refuses rtsps:// over UDP: its media would need SRTP (RTP/SAVP with MIKEY), which
// gortsplib's client spoke and udpSession does not; plain RTP would leave the TLS session's
// video in the clear. Auto then stays on TCP, where the media travel inside TLS.
var errSecureUDP = fmt.Errorf("rtsps:// over UDP would need SRTP, which camgate does not speak: use TCP: %w",
	errTransportRefused)

func dialUDP(ctx context.Context, u *url.URL, o cameraOptions) (*udpSession, error) {
	if u.Scheme == "rtsps" {
		return nil, &stepError{"SETUP", errSecureUDP}
	}
	var s *udpSession
	p, err := dialCamera(ctx, u, o, func(p *player) error {
		s = &udpSession{p: p}
		return s.handshake(o.audio)
	})
	if err != nil {
		if s != nil {
			s.closeSockets()
		}
		return nil, err
	}
	s.p = p
	return s, nil
}

func (s *udpSession) handshake(audio bool) error {
	p := s.p
	if err := p.describeStream(audio); err != nil {
		return err
	}
	tcp, ok := p.conn.RemoteAddr().(*net.TCPAddr)
	local, ok2 := p.conn.LocalAddr().(*net.TCPAddr)
	if !ok || !ok2 {
		return &stepError{"SETUP", errors.New("connection has no TCP addresses")}
	}
	peer, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return &stepError{"SETUP", errors.New("connection has no IP address")}
	}
	s.peer = peer.Unmap()
	p.tracks = make([]playTrack, len(p.sel))
	for i, sel := range p.sel {
		pair, err := listenUDPPair(local.IP)
		if err != nil {
			return &stepError{"SETUP", err}
		}
		s.pairs = append(s.pairs, pair)
		if err := s.setup(i, sel.media); err != nil {
			return &stepError{"SETUP", err}
		}
	}
	return nil
}

// listenUDPPair opens an even port and the odd one after it on ip, as RTP and RTCP need
// (RFC 3550 11).
func listenUDPPair(ip net.IP) (udpPair, error) {
	for range 100 {
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			return udpPair{}, fmt.Errorf("UDP socket: %w", err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port == 65535 {
			a.Close()
			continue
		}
		b, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port + 1})
		if err != nil {
			a.Close()
			continue
		}
		return udpPair{rtp: a, rtcp: b}, nil
	}
	return udpPair{}, errors.New("no free pair of UDP ports")
}

// setup asks for track i to our pair's ports and takes the camera's ports from the answer.
func (s *udpSession) setup(i int, m *description.Media) error {
	pair := &s.pairs[i]
	port := pair.rtp.LocalAddr().(*net.UDPAddr).Port
	transport := "RTP/AVP;unicast;client_port=" + strconv.Itoa(port) + "-" + strconv.Itoa(port+1)
	res, err := s.p.requestSetup(m, transport, "UDP")
	if err != nil {
		return err
	}
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil {
		return fmt.Errorf("transport header: %w", err)
	}
	if th.Protocol != headers.TransportProtocolUDP || th.InterleavedIDs != nil {
		return fmt.Errorf("camera answered UDP with another transport: %w", errTransportRefused)
	}
	if th.ServerPorts == nil || th.ServerPorts[0] <= 0 || th.ServerPorts[1] <= 0 {
		return errors.New("camera named no server_port: its packets could not be told from anyone else's")
	}
	if th.ServerPorts[0] > 65535 || th.ServerPorts[1] > 65535 {
		return fmt.Errorf("camera named invalid server ports %v", *th.ServerPorts)
	}
	pair.serverRTP = netip.AddrPortFrom(s.peer, uint16(th.ServerPorts[0]))
	pair.serverRTCP = netip.AddrPortFrom(s.peer, uint16(th.ServerPorts[1]))
	return nil
}

func (s *udpSession) selected() []selected { return s.p.sel }

func (s *udpSession) close() error {
	s.closeSockets()
	return s.p.close()
}

func (s *udpSession) closeSockets() {
	for _, pair := range s.pairs {
		pair.rtp.Close()
		pair.rtcp.Close()
	}
}

// play starts the readers, asks PLAY and then keeps the session: keep-alives and answers on
// the connection, receiver reports to the camera's RTCP ports, and the timeouts: nothing at
// all within udpSilence is errUDPSilent (auto then tries TCP), nothing for the read timeout
// later ends the session.
func (s *udpSession) play(
	ctx context.Context, _ *Pacer, onPacket func(int, *rtp.Packet, time.Time), onBatch func(time.Time),
) error {
	p := s.p
	var readers sync.WaitGroup
	defer readers.Wait()
	defer s.closeSockets() // ends the readers
	defer context.AfterFunc(ctx, func() { _ = p.conn.SetReadDeadline(time.Unix(1, 0)) })()
	defer p.teardown(ctx)
	for i := range s.pairs {
		readers.Go(func() { s.readRTP(i, onPacket, onBatch) })
		readers.Go(func() { s.readRTCP(i) })
	}
	s.openFirewall()
	if _, err := p.do(base.Play, p.desc.BaseURL, base.Header{"Range": base.HeaderValue{"npt=0.000-"}}, nil); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &stepError{"PLAY", err}
	}
	started := time.Now()
	s.mu.Lock()
	if s.lastPacket.IsZero() { // else a packet came before PLAY's answer
		s.lastPacket = started
	}
	s.mu.Unlock()
	p.nextReport, p.nextKeepAlive = started.Add(receiverReportPeriod), started.Add(p.keepAlive)
	for {
		now := time.Now()
		if err := s.housekeeping(now, started); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// Wake up once a second at most late: for the timeouts, the reports and keep-alives.
		if err := p.conn.SetReadDeadline(now.Add(time.Second)); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		err := s.readControl()
		var timeout net.Error
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &timeout) && timeout.Timeout():
		case err != nil:
			return err
		}
	}
}

// openFirewall sends an empty RTP packet and an empty receiver report to the camera's ports
// before PLAY, as gortsplib's client did: a stateful firewall on the gateway then takes the
// camera's datagrams for answers. One lost is no reason not to play.
func (s *udpSession) openFirewall() {
	rtpHeader := [12]byte{0x80}             // version 2, nothing else
	emptyReport := [8]byte{0x80, 201, 0, 1} // version 2, receiver report, no blocks, SSRC 0
	deadline := time.Now().Add(s.p.timeout)
	for _, pair := range s.pairs {
		if pair.rtp.SetWriteDeadline(deadline) == nil {
			_, _ = pair.rtp.WriteToUDPAddrPort(rtpHeader[:], pair.serverRTP)
		}
		if pair.rtcp.SetWriteDeadline(deadline) == nil {
			_, _ = pair.rtcp.WriteToUDPAddrPort(emptyReport[:], pair.serverRTCP)
		}
	}
}

// readControl reads what the camera says on the connection during the session: the answers
// to keep-alives, a request of its own, or an interleaved frame it should not send.
func (s *udpSession) readControl() error {
	p := s.p
	b, err := p.br.Peek(1)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	// The first byte is there: the rest of the message follows within the read timeout.
	if err := p.conn.SetReadDeadline(time.Now().Add(p.timeout)); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if b[0] == base.InterleavedFrameMagicByte {
		return p.discardFrame()
	}
	res, err := p.readMessage()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if res != nil && res.StatusCode == base.StatusSessionNotFound {
		return errors.New("session lost: 454 Session Not Found")
	}
	return nil
}

// housekeeping checks the timeouts and writes receiver reports and keep-alives when due.
func (s *udpSession) housekeeping(now, started time.Time) error {
	p := s.p
	s.mu.Lock()
	gotRTP, last := s.gotRTP, s.lastPacket
	s.mu.Unlock()
	switch {
	case !gotRTP && now.Sub(started) >= udpSilence:
		return errUDPSilent
	case now.Sub(last) >= p.timeout:
		return fmt.Errorf("no packet arrived over UDP for %s", p.timeout)
	}
	return p.housekeep(now, s.receiverReports)
}

// receiverReports sends one RTCP receiver report per track that has received something. A
// report lost or refused is no reason to end the session: the next one follows.
func (s *udpSession) receiverReports(now time.Time) {
	var b [receiverReportSize]byte
	for i, pair := range s.pairs {
		s.mu.Lock()
		t := &s.p.tracks[i]
		started := t.started
		if started {
			t.receiverReport(b[:], s.p.ssrc, now)
		}
		s.mu.Unlock()
		if started && pair.rtcp.SetWriteDeadline(now.Add(s.p.timeout)) == nil {
			_, _ = pair.rtcp.WriteToUDPAddrPort(b[:], pair.serverRTCP)
		}
	}
}

// readRTP hands each RTP packet the camera sends for track i to onPacket in sequence order
// (see reorderer), one batch per datagram, until the socket is closed.
func (s *udpSession) readRTP(i int, onPacket func(int, *rtp.Packet, time.Time), onBatch func(time.Time)) {
	pair := s.pairs[i]
	buf := make([]byte, udpMaxPacket+1)
	var pkt rtp.Packet
	var order reorderer
	pt := s.p.sel[i].format.PayloadType()
	for {
		n, from, err := pair.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n > udpMaxPacket || !fromCamera(from, pair.serverRTP) {
			continue
		}
		if pkt.Unmarshal(buf[:n]) != nil || pkt.Version != 2 {
			continue // not RTP: a stray datagram is no reason to end the session
		}
		if pkt.PayloadType != pt {
			continue // another of the track's formats, which gortsplib's client did not hand on either
		}
		now := time.Now()
		s.mu.Lock()
		s.gotRTP, s.lastPacket = true, now
		s.p.tracks[i].count(pkt.SSRC, pkt.SequenceNumber)
		parsed := true // pkt is b's until a held packet is parsed into it
		order.push(buf[:n], pkt.SequenceNumber, func(b []byte, held bool) {
			if held || !parsed {
				parsed = !held
				if pkt.Unmarshal(b) != nil { // cannot fail: each was RTP when it came
					return
				}
			}
			onPacket(i, &pkt, now)
		})
		onBatch(now)
		s.mu.Unlock()
	}
}

// readRTCP takes the camera's sender reports for track i until the socket is closed.
func (s *udpSession) readRTCP(i int) {
	pair := s.pairs[i]
	buf := make([]byte, udpMaxPacket+1)
	for {
		n, from, err := pair.rtcp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n > udpMaxPacket || !fromCamera(from, pair.serverRTCP) {
			continue
		}
		now := time.Now()
		s.mu.Lock()
		s.lastPacket = now
		t := &s.p.tracks[i]
		if t.takeRTCP(buf[:n], now) && s.p.senderReport != nil {
			s.p.senderReport(i, ntp.Decode(t.srNTP), t.srRTP)
		}
		s.mu.Unlock()
	}
}

// fromCamera says whether a datagram from came from the camera's port server, however the
// socket spells an IPv4 address.
func fromCamera(from, server netip.AddrPort) bool {
	return from.Port() == server.Port() && from.Addr().Unmap() == server.Addr()
}
