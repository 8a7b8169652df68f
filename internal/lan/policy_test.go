package lan

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func tcp(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

// gateway is the routing of a home gateway as the tests see it: "wan0" (index 2) holds the
// default route and the ISP's 192.168.100.0/24 and 10.200.0.0/16 (an ISP handing out private
// addresses); "br-lan" (index 3) holds the home's 192.168.1.0/24, 10.1.0.0/16 and fd12::/64.
var gateway = struct {
	uplink uplinkSet
	routes []struct {
		to  netip.Prefix
		oif int
	}
}{
	uplink: uplinkSet{names: []string{"wan0"}, indexes: []int{2}},
	routes: []struct {
		to  netip.Prefix
		oif int
	}{
		{netip.MustParsePrefix("192.168.1.0/24"), 3},
		{netip.MustParsePrefix("10.1.0.0/16"), 3},
		{netip.MustParsePrefix("fd12::/64"), 3},
		{netip.MustParsePrefix("192.168.100.0/24"), 2},
		{netip.MustParsePrefix("10.200.0.0/16"), 2},
		{netip.MustParsePrefix("0.0.0.0/0"), 2},
		{netip.MustParsePrefix("::/0"), 2},
	},
}

// gatewayRoute answers as the kernel's route lookup would on that gateway.
func gatewayRoute(peer, _ netip.Addr) (int, error) {
	for _, r := range gateway.routes {
		if r.to.Contains(peer) {
			return r.oif, nil
		}
	}
	return 0, errors.New("network is unreachable")
}

func gatewayPolicy(t *testing.T, allow []string) *Policy {
	t.Helper()
	p, err := NewPolicy(allow)
	if err != nil {
		t.Fatal(err)
	}
	p.uplinks = func() uplinkSet { return gateway.uplink }
	p.routeOut = gatewayRoute
	return p
}

func TestPolicyAllowed(t *testing.T) {
	const lanIP, wanIP = "192.168.1.1:1025", "192.168.100.2:1025"
	tests := []struct {
		name   string
		allow  []string
		remote net.Addr
		local  net.Addr
		want   bool
	}{
		{"loopback v4", nil, tcp("127.0.0.1:5000"), tcp("127.0.0.1:1025"), true},
		{"loopback v6", nil, tcp("[::1]:5000"), tcp("[::1]:1025"), true},
		{"RFC 1918 10/8 on LAN", nil, tcp("10.1.2.3:5000"), tcp(lanIP), true},
		{"RFC 1918 192.168/16 on LAN", nil, tcp("192.168.1.50:5000"), tcp(lanIP), true},
		{"just outside 172.16/12", nil, tcp("172.32.0.1:5000"), tcp(lanIP), false},
		{"RFC 4193 ULA on LAN", nil, tcp("[fd12::5]:5000"), tcp("[fd12::1]:1025"), true},
		{"link-local v6 on the LAN interface", nil, tcp("[fe80::1%br-lan]:5000"), tcp("[fe80::2%br-lan]:1025"), true},
		{"IPv4-mapped private on LAN", nil, tcp("[::ffff:192.168.1.9]:5000"), tcp("[::ffff:192.168.1.1]:1025"), true},
		{"LAN host to the WAN address", nil, tcp("192.168.1.50:5000"), tcp(wanIP), true},
		{"unknown local address: judged by the route back", nil, tcp("10.1.0.5:5000"), nil, true},
		{"public address", nil, tcp("8.8.8.8:5000"), tcp(lanIP), false},
		{"public v6", nil, tcp("[2001:db8::77]:5000"), tcp("[fd12::1]:1025"), false},
		{"carrier-grade NAT is not LAN", nil, tcp("100.64.0.1:5000"), tcp(lanIP), false},

		// The complaints: private sources on the WAN side, whatever address they ask for.
		{"private source on the WAN to the WAN address", nil, tcp("192.168.100.1:5000"), tcp(wanIP), false},
		{"private source on the WAN to the LAN address", nil, tcp("192.168.100.1:5000"), tcp(lanIP), false},
		{"ISP's 10.x on the WAN to the LAN address", nil, tcp("10.200.3.4:5000"), tcp(lanIP), false},
		{"private source routed by the default route", nil, tcp("172.20.0.1:5000"), tcp(lanIP), false},
		{"private v6 source routed by the default route", nil, tcp("[fd00::1]:5000"), tcp("[fd12::1]:1025"), false},
		{"IPv4-mapped WAN peer", nil, tcp("[::ffff:10.200.0.1]:5000"), tcp("[::ffff:192.168.1.1]:1025"), false},
		{"link-local v6 from the WAN to the LAN's global address", nil, tcp("[fe80::1%wan0]:5000"),
			tcp("[2001:db8:1::1]:1025"), false},
		{"link-local v6 from the WAN, zone as an index", nil, tcp("[fe80::1%2]:5000"), tcp("[fd12::1]:1025"), false},
		{"link-local v6, zone an index on the LAN", nil, tcp("[fe80::1%3]:5000"), tcp("[fd12::1]:1025"), true},
		{"link-local v4 routed by the default route", nil, tcp("169.254.7.7:5000"), tcp("169.254.1.1:1025"), false},

		{"nil remote", nil, nil, tcp(lanIP), false},
		{"unix socket peer", nil, &net.UnixAddr{Name: "@", Net: "unix"}, nil, true},
		{"allow list admits a public host", []string{"203.0.113.0/24"}, tcp("203.0.113.9:5000"), tcp(wanIP), true},
		{"allow list replaces LAN ranges", []string{"203.0.113.0/24"}, tcp("192.168.1.50:5000"), tcp(lanIP), false},
		{"allow list ignores the interface", []string{"192.168.100.0/24"}, tcp("192.168.100.1:5000"), tcp(lanIP), true},
		{"allow list of one address", []string{"10.1.0.7"}, tcp("10.1.0.7:5000"), tcp(lanIP), true},
		{"allow list of one address, other host", []string{"10.1.0.7"}, tcp("10.1.0.8:5000"), tcp(lanIP), false},
		{"allow list v6", []string{"2001:db8:1::/48"}, tcp("[2001:db8:1::9]:5000"), tcp("[2001:db8::2]:1025"), true},
		{"allow list with mapped prefix", []string{"::ffff:10.0.0.0/104"}, tcp("10.9.9.9:5000"), tcp(lanIP), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gatewayPolicy(t, tt.allow)
			if got := p.Allowed(tt.remote, tt.local); got != tt.want {
				t.Errorf("Allowed(%v, %v) = %v, want %v", tt.remote, tt.local, got, tt.want)
			}
		})
	}
}

// A failed route lookup refuses the connection and says why; a platform without route lookup
// falls back to the source ranges.
func TestPolicyRouteLookupFailures(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		want    bool
		wantErr bool
	}{
		{"lookup failed: fail closed", errors.New("netlink: no buffer space"), false, true},
		{"no route lookup on this platform", errNoRouteLookup, true, false},
		{"the default route's interface has no index", nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gatewayPolicy(t, nil)
			p.routeOut = func(netip.Addr, netip.Addr) (int, error) { return 3, tt.err }
			if tt.err == nil {
				p.uplinks = func() uplinkSet { return uplinkSet{names: []string{"wan0"}, unknown: "wan0"} }
			}
			got, err := p.check(tcp("192.168.1.50:5000"), tcp("192.168.1.1:1025"))
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("check = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// A peer's verdict is looked up once per uplinkCacheTTL, and the cache stays bounded.
func TestPolicyCachesVerdictsBoundedly(t *testing.T) {
	p := gatewayPolicy(t, nil)
	lookups := 0
	p.routeOut = func(peer, local netip.Addr) (int, error) {
		lookups++
		return gatewayRoute(peer, local)
	}
	for range 3 {
		if !p.Allowed(tcp("192.168.1.50:5000"), tcp("192.168.1.1:1025")) {
			t.Fatal("LAN peer refused")
		}
		if p.Allowed(tcp("192.168.100.1:5000"), tcp("192.168.1.1:1025")) {
			t.Fatal("WAN peer allowed")
		}
	}
	if lookups != 2 {
		t.Errorf("%d route lookups for 2 peers asked 3 times each, want 2", lookups)
	}
	base := netip.MustParseAddr("10.1.0.0")
	for i := range 3 * maxPeerVerdicts {
		base = base.Next()
		p.Allowed(net.TCPAddrFromAddrPort(netip.AddrPortFrom(base, 5000)), tcp("192.168.1.1:1025"))
		if n := len(p.verdicts); n > maxPeerVerdicts {
			t.Fatalf("after %d peers the cache holds %d verdicts, more than %d", i+1, n, maxPeerVerdicts)
		}
	}
}

func TestNewPolicyNamesTheBadCIDR(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "lan", "300.1.1.1", "fe80::/10%eth0"} {
		_, err := NewPolicy([]string{"10.0.0.0/8", bad})
		if err == nil {
			t.Errorf("NewPolicy(%q) succeeded", bad)
			continue
		}
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("NewPolicy(%q) error %q does not name it", bad, err)
		}
	}
}

func TestDefaultRouteInterfaces(t *testing.T) {
	const route4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"wan0\t00000000\t0164A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"br-lan\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"down0\t00000000\t0164A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"wan0\t00000000\t0164A8C0\t0003\t0\t0\t10\t00000000\t0\t0\t0\n" +
		"garbage line\n"
	const route6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 " +
		"00000000000000000000000000000000 00000100 00000001 00000000 00000001     br-lan\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 " +
		"fd000000000000000000000000000001 00000400 00000002 00000000 00000003     wan6\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 " +
		"00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 " +
		"00000000000000000000000000000000 ffffffff 00000001 00000000 00000201       rej0\n"
	tests := []struct {
		name  string
		parse func(r io.Reader) []string
		in    string
		want  []string
	}{
		{"ipv4: up default routes, deduplicated", defaultRouteInterfaces4, route4, []string{"wan0"}},
		{"ipv6: not lo, not reject routes", defaultRouteInterfaces6, route6, []string{"wan6"}},
		{"empty ipv4 table", defaultRouteInterfaces4, "", nil},
		{"empty ipv6 table", defaultRouteInterfaces6, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.parse(strings.NewReader(tt.in))
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// The machine's own tables must parse without error, and loopback is never an uplink.
func TestSystemUplinksExcludeLoopback(t *testing.T) {
	u := systemUplinks()
	if u.hasName("lo") {
		t.Errorf("loopback reported as an uplink: %v", u.names)
	}
	if len(u.indexes) != len(u.names) || u.unknown != "" {
		t.Errorf("indexes %v for names %v (unknown %q)", u.indexes, u.names, u.unknown)
	}
}

// When the default route goes (the WAN link drops, its interface stays), its interface is still
// the WAN; when a default route appears elsewhere, that one is.
func TestPolicyKeepsTheWANThroughAnOutage(t *testing.T) {
	p := gatewayPolicy(t, nil)
	tables := []uplinkSet{gateway.uplink, {}, {names: []string{"br-lan"}, indexes: []int{3}}}
	wanPeer, lanPeer, local := tcp("192.168.100.1:5000"), tcp("192.168.1.50:5000"), tcp("192.168.1.1:1025")
	steps := []struct {
		name             string
		wantWAN, wantLAN bool
	}{
		{"default route on wan0", false, true},
		{"no default route: wan0 stays the WAN", false, true},
		{"default route moved to br-lan", true, false},
	}
	for i, st := range steps {
		p.uplinks = func() uplinkSet { return tables[i] }
		p.cachedAt, p.verdicts = time.Time{}, nil // as if uplinkCacheTTL had passed
		if got := p.Allowed(wanPeer, local); got != st.wantWAN {
			t.Errorf("%s: WAN-side peer allowed = %v, want %v", st.name, got, st.wantWAN)
		}
		if got := p.Allowed(lanPeer, local); got != st.wantLAN {
			t.Errorf("%s: LAN-side peer allowed = %v, want %v", st.name, got, st.wantLAN)
		}
	}
}
