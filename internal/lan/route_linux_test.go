package lan

import (
	"net"
	"net/netip"
	"testing"
)

// The kernel answers the route lookup: loopback goes out by lo, and a source address that is not
// ours is an error (which the policy turns into a refusal), not a guess.
func TestSystemRouteOutAsksTheKernel(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		peer, from string
	}{
		{"IPv4 loopback", "127.0.0.1", "127.0.0.1"},
		{"IPv4 loopback, no source", "127.0.0.2", ""},
		{"IPv6 loopback", "::1", "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src netip.Addr
			if tt.from != "" {
				src = netip.MustParseAddr(tt.from)
			}
			oif, err := systemRouteOut(netip.MustParseAddr(tt.peer), src)
			if err != nil || oif != lo.Index {
				t.Errorf("route to %s = interface %d, %v; want lo (%d)", tt.peer, oif, err, lo.Index)
			}
		})
	}
	if _, err := systemRouteOut(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.77")); err == nil {
		t.Error("a route from an address that is not ours was answered")
	}
}
