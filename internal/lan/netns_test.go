package lan

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netnstest"
)

// The real kernel's answers, on netnstest.HomeGateway: a listener on every address serves the
// home and closes, without a byte and counted, every connection from the ISP's side, private
// source and all, whichever of the gateway's addresses it asked for.
func TestListenerJudgesByTheRouteBack(t *testing.T) {
	netnstest.Run(t, nil, func(t *testing.T) {
		g := netnstest.NewHomeGateway(t)
		p, err := NewPolicy(nil)
		if err != nil {
			t.Fatal(err)
		}
		l := listenAndGreet(t, ":0", p)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		tests := []struct {
			name       string
			from       *netnstest.Peer
			src, dst   string
			wantServed bool
		}{
			{"home to the LAN address", g.Home, "", "10.1.0.1", true},
			{"home to the WAN address", g.Home, "", "10.0.0.2", true},
			{"home, link-local", g.Home, "fe80::b%home0", "fe80::1%home0", true},
			{"home, ULA", g.Home, "fd00:1::2", "fd00:1::1", true},
			{"ISP to the LAN address", g.ISP, "", "10.1.0.1", false},
			{"ISP to the WAN address", g.ISP, "", "10.0.0.2", false},
			{"ISP link-local to the LAN's global address", g.ISP, "fe80::1%isp0", "2001:db8:1::1", false},
			{"ISP ULA to the LAN's ULA", g.ISP, "fd99::1", "fd00:1::1", false},
		}
		wantDenied := uint64(0)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, err := tt.from.Dial(ctx, "tcp", tt.src, net.JoinHostPort(tt.dst, port))
				if err != nil {
					t.Fatalf("not even accepted by the kernel: %v", err)
				}
				defer c.Close()
				if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatalf("read: %v (held open, not closed)", err)
				}
				if served := len(got) > 0; served != tt.wantServed {
					t.Errorf("served = %v (%q), want %v", served, got, tt.wantServed)
				}
			})
			if !tt.wantServed {
				wantDenied++
			}
		}
		if d := l.Denied(); d != wantDenied {
			t.Errorf("Denied() = %d, want %d", d, wantDenied)
		}
	})
}
