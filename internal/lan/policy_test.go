package lan

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func tcp(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestPolicyAllowed(t *testing.T) {
	// The gateway's WAN interface holds the default route with these addresses.
	wan := []netip.Addr{netip.MustParseAddr("192.168.100.2"), netip.MustParseAddr("2001:db8::2")}
	const lanIP = "192.168.1.1:1025"
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
		{"RFC 1918 172.16/12 on LAN", nil, tcp("172.31.0.9:5000"), tcp(lanIP), true},
		{"RFC 1918 192.168/16 on LAN", nil, tcp("192.168.1.50:5000"), tcp(lanIP), true},
		{"just outside 172.16/12", nil, tcp("172.32.0.1:5000"), tcp(lanIP), false},
		{"RFC 4193 ULA", nil, tcp("[fd12::5]:5000"), tcp("[fd12::1]:1025"), true},
		{"link-local v4", nil, tcp("169.254.7.7:5000"), tcp("169.254.1.1:1025"), true},
		{"link-local v6 with zone", nil, tcp("[fe80::1%eth1]:5000"), tcp("[fe80::2%eth1]:1025"), true},
		{"IPv4-mapped private", nil, tcp("[::ffff:192.168.1.9]:5000"), tcp("[::ffff:192.168.1.1]:1025"), true},
		{"public address", nil, tcp("8.8.8.8:5000"), tcp(lanIP), false},
		{"public v6", nil, tcp("[2001:db8::77]:5000"), tcp("[fd12::1]:1025"), false},
		{"carrier-grade NAT is not LAN", nil, tcp("100.64.0.1:5000"), tcp(lanIP), false},
		{"private source through the WAN interface", nil, tcp("192.168.100.1:5000"), tcp("192.168.100.2:1025"), false},
		{"private v6 source through the WAN interface", nil, tcp("[fd00::1]:5000"), tcp("[2001:db8::2]:1025"), false},
		{"unknown local address: judged by remote", nil, tcp("10.0.0.5:5000"), nil, true},
		{"nil remote", nil, nil, tcp(lanIP), false},
		{"unix socket peer", nil, &net.UnixAddr{Name: "@", Net: "unix"}, nil, true},
		{"allow list admits a public host", []string{"203.0.113.0/24"}, tcp("203.0.113.9:5000"), tcp("192.168.100.2:1025"),
			true},
		{"allow list replaces LAN ranges", []string{"203.0.113.0/24"}, tcp("192.168.1.50:5000"), tcp(lanIP), false},
		{"allow list of one address", []string{"10.0.0.7"}, tcp("10.0.0.7:5000"), tcp(lanIP), true},
		{"allow list of one address, other host", []string{"10.0.0.7"}, tcp("10.0.0.8:5000"), tcp(lanIP), false},
		{"allow list v6", []string{"2001:db8:1::/48"}, tcp("[2001:db8:1::9]:5000"), tcp("[2001:db8::2]:1025"), true},
		{"allow list with mapped prefix", []string{"::ffff:10.0.0.0/104"}, tcp("10.9.9.9:5000"), tcp(lanIP), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			p.uplinkAddrs = func() []netip.Addr { return wan }
			if got := p.Allowed(tt.remote, tt.local); got != tt.want {
				t.Errorf("Allowed(%v, %v) = %v, want %v", tt.remote, tt.local, got, tt.want)
			}
		})
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
func TestSystemUplinkAddrsExcludesLoopback(t *testing.T) {
	for _, a := range systemUplinkAddrs() {
		if a.IsLoopback() {
			t.Errorf("loopback address %v reported as uplink", a)
		}
	}
}
