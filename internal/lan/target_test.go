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
	"syscall"
	"testing"
	"time"
)

func TestCheckCameraTarget(t *testing.T) {
	gw := Gateway{
		Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("fd00::1"),
			netip.MustParseAddr("100.64.7.2")},
		Listeners: []netip.AddrPort{
			netip.MustParseAddrPort("0.0.0.0:8080"),    // the page, on every address
			netip.MustParseAddrPort("[::]:2525"),       // SMTP, on every address
			netip.MustParseAddrPort("127.0.0.1:18554"), // a loopback-only listener
		},
	}
	tests := []struct {
		url string
		ok  bool
	}{
		{"rtsp://192.168.1.64/Streaming/Channels/101", true},
		{"rtsp://admin:pw@192.168.1.64:8554/live", true},
		{"http://10.0.0.20/onvif/device_service", true},
		{"https://172.16.5.5:8443/onvif/device_service", true},
		{"rtsps://[fd00::64]/main", true},
		{"rtsp://[fe80::1%25eth0]/main", true},
		{"rtsp://169.254.3.3/main", true},
		{"rtsp://127.0.0.1:8554/sim", true},               // simulators live on loopback
		{"http://127.0.0.1:9/onvif/device_service", true}, // a port camgate does not listen on
		{"rtsp://[::ffff:192.168.1.64]/main", true},       // mapped: judged as the IPv4 address
		{"rtsp://8.8.8.8/live", false},                    // the internet
		{"rtsp://[2001:db8::5]/live", false},              // a global IPv6 address
		{"rtsp://100.64.0.9/live", false},                 // carrier-grade NAT: the ISP's side
		{"rtsp://172.32.0.1/live", false},                 // just outside 172.16/12
		{"rtsp://0.0.0.0/live", false},                    // unspecified
		{"rtsp://224.0.0.251/live", false},                // multicast
		{"rtsp://255.255.255.255/live", false},            // broadcast
		{"rtsp://192.168.1.1/live", false},                // the gateway's LAN address
		{"http://192.168.1.1:80/cgi-bin/reboot", false},   // the router's own admin page
		{"rtsp://[fd00::1]:554/live", false},              // the gateway's ULA
		{"http://127.0.0.1:8080/api/login", false},        // the page through a wildcard listener
		{"http://[::1]:2525/", false},                     // SMTP through a wildcard listener
		{"rtsp://127.0.0.1:18554/x", false},               // a loopback listener
		{"http://127.0.0.2:18554/x", true},                // the same port on another loopback address
		{"rtsp://camera.lan/live", false},                 // names can be re-pointed after the check
		{"rtsp://localhost:8554/live", false},             // a name too
		{"ftp://192.168.1.64/", false},                    // not a camera scheme
		{"rtsp://192.168.1.64:0/live", false},             // no port 0
		{"rtsp://192.168.1.64:70000/live", false},         // out of range
		{"rtsp:///live", false},                           // no host
		{"::not a url", false},
	}
	for _, tt := range tests {
		err := CheckCameraTarget(tt.url, gw)
		if (err == nil) != tt.ok {
			t.Errorf("CheckCameraTarget(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrTargetRefused) {
			t.Errorf("CheckCameraTarget(%q) = %v, does not match ErrTargetRefused", tt.url, err)
		}
	}
}

func TestSystemGatewayLeavesLoopbackOutAndKeepsListeners(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g, err := SystemGateway([]net.Addr{l.Addr(), &net.UnixAddr{Name: "/run/x", Net: "unix"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range g.Addrs {
		if a.IsLoopback() {
			t.Errorf("loopback %s among the gateway's addresses", a)
		}
	}
	if len(g.Listeners) != 1 || g.Listeners[0].String() != l.Addr().String() {
		t.Fatalf("listeners %v, want just %s", g.Listeners, l.Addr())
	}
	if err := CheckCameraTarget("http://"+l.Addr().String()+"/", g); !errors.Is(err, ErrTargetRefused) {
		t.Errorf("own listener allowed: %v", err)
	}
}

// A refused port, a reset, a timeout and a silent close read the same, so that the reply to
// add_camera or test-stream says nothing about what listens on a LAN host's port.
func TestHideNetworkError(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	protocol := errors.New("rtsp: DESCRIBE: 404 Not Found")
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"refused", fmt.Errorf("probe: %w", refused), ErrNoAnswer},
		{"reset", syscall.ECONNRESET, ErrNoAnswer},
		{"early EOF", fmt.Errorf("reading answer: %w", io.ErrUnexpectedEOF), ErrNoAnswer},
		{"closed", io.EOF, ErrNoAnswer},
		{"deadline", ctx.Err(), ErrNoAnswer},
		{"i/o timeout", os.ErrDeadlineExceeded, ErrNoAnswer},
		{"a camera's own answer", protocol, protocol},
		{"nil", nil, nil},
	}
	for _, tt := range tests {
		if got := HideNetworkError(tt.err); !errors.Is(got, tt.want) {
			t.Errorf("%s: HideNetworkError(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
	if a, b := HideNetworkError(refused).Error(), HideNetworkError(syscall.ETIMEDOUT).Error(); a != b {
		t.Errorf("refused reads %q, timeout %q", a, b)
	}
}

// FuzzCheckCameraTarget: no input panics, and whatever is allowed names a LAN IP literal.
func FuzzCheckCameraTarget(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		if CheckCameraTarget(raw, Gateway{}) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%q allowed but does not parse: %v", raw, err)
		}
		a, err := netip.ParseAddr(u.Hostname())
		if err != nil || !containsAny(lanPrefixes[:], a.Unmap().WithZone("")) {
			t.Fatalf("%q allowed but its host %q is not a LAN address", raw, u.Hostname())
		}
	})
}
