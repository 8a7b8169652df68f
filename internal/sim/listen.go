package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"

	"github.com/bluenviron/gortsplib/v5"
)

// rtspListeners are the sockets of one RTSP server, bound by the constructor so that URL() is
// known (and the port taken) before Run, even with port 0.
type rtspListeners struct {
	tcp  net.Listener
	rtp  *net.UDPConn
	rtcp *net.UDPConn
}

// maxPortPairTries bounds the search for an even/odd UDP port pair, which gortsplib requires.
const maxPortPairTries = 50

func listenRTSP(addr string) (*rtspListeners, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen rtsp %s: %w", addr, err)
	}
	host := tcp.Addr().(*net.TCPAddr).IP
	rtp, rtcp, err := listenUDPPair(host)
	if err != nil {
		tcp.Close()
		return nil, err
	}
	return &rtspListeners{tcp: tcp, rtp: rtp, rtcp: rtcp}, nil
}

// listenUDPPair binds an even RTP port and the odd RTCP port after it on ip.
func listenUDPPair(ip net.IP) (*net.UDPConn, *net.UDPConn, error) {
	for range maxPortPairTries {
		rtp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, nil, fmt.Errorf("listen rtp: %w", err)
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port >= 65535 {
			rtp.Close()
			continue
		}
		rtcp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port + 1})
		if err != nil {
			rtp.Close()
			continue
		}
		return rtp, rtcp, nil
	}
	return nil, nil, errors.New("listen rtp/rtcp: no free even/odd UDP port pair")
}

// server returns a gortsplib server that uses the bound sockets instead of binding its own.
func (l *rtspListeners) server(h gortsplib.ServerHandler) *gortsplib.Server {
	udp := map[string]net.PacketConn{
		l.rtp.LocalAddr().String():  l.rtp,
		l.rtcp.LocalAddr().String(): l.rtcp,
	}
	return &gortsplib.Server{
		Handler:        h,
		RTSPAddress:    l.tcp.Addr().String(),
		UDPRTPAddress:  l.rtp.LocalAddr().String(),
		UDPRTCPAddress: l.rtcp.LocalAddr().String(),
		Listen: func(string, string) (net.Listener, error) {
			return l.tcp, nil
		},
		ListenPacket: func(_, address string) (net.PacketConn, error) {
			pc, ok := udp[address]
			if !ok {
				return nil, fmt.Errorf("unexpected UDP listen on %s", address)
			}
			return pc, nil
		},
	}
}

func (l *rtspListeners) close() {
	l.tcp.Close()
	l.rtp.Close()
	l.rtcp.Close()
}

// url is rtsp://host:port with the host as bound (loopback when bound to every address).
func (l *rtspListeners) url() string { return dialURL("rtsp", l.tcp) }

// dialURL is scheme://host:port for a TCP listener, with loopback as host when it is bound to
// every address, so that clients have something to dial.
func dialURL(scheme string, ln net.Listener) string {
	a := ln.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

func loggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// listenTCP binds addr, loopback on a free port when it is empty; name prefixes the error.
func listenTCP(name, addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	return ln, nil
}
