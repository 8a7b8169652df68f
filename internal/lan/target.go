package lan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrTargetRefused is matched (errors.Is) by every CheckCameraTarget refusal.
var ErrTargetRefused = errors.New("camera address refused")

// ErrNoAnswer replaces a network error on the way to a camera named from the page or MQTT, so
// that "refused", "reset" and "timed out" cannot be told apart: otherwise add_camera and
// test-stream would be a port scanner of the LAN.
var ErrNoAnswer = errors.New("no camera answered at that address")

// Gateway is what CheckCameraTarget must know of the gateway itself.
type Gateway struct {
	// Addrs are the addresses of the gateway's own interfaces (SystemGateway reads them). A
	// camera is never the gateway, so these are refused whatever the port; loopback is not
	// among them (camera simulators and development setups live there).
	Addrs []netip.Addr
	// Listeners are camgate's own listening sockets (page, SMTP, ONVIF notify, ...). An
	// unspecified address (0.0.0.0, ::) stands for every address, loopback included.
	Listeners []netip.AddrPort
}

// SystemGateway returns the gateway's interface addresses (loopback and the loopback
// interface's addresses left out) with the given
// listeners. A listener that is not a TCP or UDP address is ignored.
func SystemGateway(listeners []net.Addr) (Gateway, error) {
	var g Gateway
	ifs, err := net.Interfaces()
	if err != nil {
		return g, fmt.Errorf("lan: interfaces: %w", err)
	}
	for _, ifc := range ifs {
		// Addresses on the loopback interface are left out with 127/8: a test namespace puts
		// its simulated cameras' addresses there.
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		ias, err := ifc.Addrs()
		if err != nil {
			return g, fmt.Errorf("lan: addresses of %s: %w", ifc.Name, err)
		}
		for _, ia := range ias {
			if a, ok := addrOf(ia); ok && !a.IsLoopback() {
				g.Addrs = append(g.Addrs, a)
			}
		}
	}
	for _, l := range listeners {
		var ap netip.AddrPort
		switch v := l.(type) {
		case *net.TCPAddr:
			ap = v.AddrPort()
		case *net.UDPAddr:
			ap = v.AddrPort()
		default:
			continue
		}
		g.Listeners = append(g.Listeners, netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()))
	}
	return g, nil
}

// defaultPorts are the ports a camera URL without one is dialled on.
var defaultPorts = map[string]uint16{"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}

// CheckCameraTarget decides whether a camera URL that came from the page or MQTT (not from the
// config file, which may name anything) may be dialled: its host must be an IP address in the
// LAN ranges (loopback, link-local, RFC 1918, RFC 4193), not one of the gateway's own addresses,
// and not one of camgate's own listeners. Host names are refused: what a name resolves to can
// change between this check and the dial (DNS rebinding). Refusals match ErrTargetRefused.
func CheckCameraTarget(rawURL string, g Gateway) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrTargetRefused)
	}
	scheme := strings.ToLower(u.Scheme)
	defPort, ok := defaultPorts[scheme]
	if !ok {
		return fmt.Errorf("%w: scheme %q (want rtsp, rtsps, http or https)", ErrTargetRefused, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrTargetRefused)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is a name, not an address: give the camera's LAN IP address", ErrTargetRefused, host)
	}
	addr = addr.Unmap().WithZone("")
	port := defPort
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%w: port %q", ErrTargetRefused, p)
		}
		port = uint16(n)
	}
	if addr.IsUnspecified() || addr.IsMulticast() || !containsAny(lanPrefixes[:], addr) {
		return fmt.Errorf("%w: %s is not a home LAN address (loopback, link-local, 10/8, 172.16/12, 192.168/16, fc00::/7)", ErrTargetRefused, addr)
	}
	for _, a := range g.Addrs {
		if a.Unmap().WithZone("") == addr {
			return fmt.Errorf("%w: %s is the gateway itself", ErrTargetRefused, addr)
		}
	}
	for _, l := range g.Listeners {
		la := l.Addr().Unmap().WithZone("")
		// The gateway's own addresses are refused above, so an unspecified listener is left to
		// match on loopback.
		if l.Port() == port && (la == addr || la.IsUnspecified() && addr.IsLoopback()) {
			return fmt.Errorf("%w: %s is one of camgate's own services", ErrTargetRefused, net.JoinHostPort(addr.String(), strconv.Itoa(int(port))))
		}
	}
	return nil
}

// HideNetworkError returns ErrNoAnswer for an error that comes from the network below the
// camera's protocol (a refused, reset or timed-out connection, an early EOF), and err itself
// otherwise, for errors of a camera named from the page or MQTT. A caller that gets a reply in
// the wrong protocol must say "not a camera" the same way as no answer: wrap it in ErrNoAnswer.
func HideNetworkError(err error) error {
	if err == nil {
		return nil
	}
	var op *net.OpError
	var errno syscall.Errno
	if errors.As(err, &op) || errors.As(err, &errno) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return ErrNoAnswer
	}
	return err
}
