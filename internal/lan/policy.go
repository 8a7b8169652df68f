package lan

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// lanPrefixes are the ranges a home LAN uses. 100.64.0.0/10 (carrier-grade NAT) is deliberately
// absent: on a gateway it is the ISP's side, which is exactly what must not reach us.
var lanPrefixes = [...]netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("fc00::/7"),       // RFC 4193
}

// uplinkCacheTTL bounds how often the routing table and interface addresses are re-read: often
// enough to follow a WAN reconnect, rarely enough that a connection flood costs no syscalls.
const uplinkCacheTTL = 5 * time.Second

// Policy decides whether a connection may be served. It is safe for concurrent use.
type Policy struct {
	allow []netip.Prefix // empty: LAN only

	// uplinkAddrs returns the local addresses on the interfaces holding a default route.
	uplinkAddrs func() []netip.Addr

	mu       sync.Mutex
	cachedAt time.Time
	cached   []netip.Addr
}

// NewPolicy builds a policy from client CIDRs (a bare address means just that host). An empty
// list means LAN only.
func NewPolicy(allow []string) (*Policy, error) {
	p := &Policy{uplinkAddrs: systemUplinkAddrs}
	for _, s := range allow {
		s = strings.TrimSpace(s)
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("lan: allow %q: not a CIDR or address", s)
			}
			a = a.Unmap()
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if pfx.Addr().Zone() != "" {
			return nil, fmt.Errorf("lan: allow %q: zones are not allowed in a CIDR", s)
		}
		p.allow = append(p.allow, unmapPrefix(pfx).Masked())
	}
	return p, nil
}

// LANOnly reports whether the policy is the default "home LAN" one.
func (p *Policy) LANOnly() bool { return len(p.allow) == 0 }

// Allowed reports whether a connection from remote that arrived on the local address local may
// be served. Unix-socket peers are local processes and always allowed; an address that cannot be
// understood is not.
func (p *Policy) Allowed(remote, local net.Addr) bool {
	if _, ok := remote.(*net.UnixAddr); ok {
		return true
	}
	ra, ok := addrOf(remote)
	if !ok {
		return false
	}
	if !p.LANOnly() {
		return containsAny(p.allow, ra)
	}
	if !containsAny(lanPrefixes[:], ra) {
		return false
	}
	la, ok := addrOf(local)
	if !ok || la.IsLoopback() {
		return true
	}
	for _, u := range p.uplink() {
		if u == la {
			return false
		}
	}
	return true
}

// uplink returns the addresses on the default route's interfaces, re-read at most every
// uplinkCacheTTL.
func (p *Policy) uplink() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cached == nil || time.Since(p.cachedAt) > uplinkCacheTTL {
		p.cached = p.uplinkAddrs()
		if p.cached == nil {
			p.cached = []netip.Addr{}
		}
		p.cachedAt = time.Now()
	}
	return p.cached
}

// systemUplinkAddrs reads the default-route interfaces from /proc and returns their addresses.
func systemUplinkAddrs() []netip.Addr {
	var ifaces []string
	if f, err := os.Open("/proc/net/route"); err == nil {
		ifaces = append(ifaces, defaultRouteInterfaces4(f)...)
		f.Close()
	}
	if f, err := os.Open("/proc/net/ipv6_route"); err == nil {
		for _, name := range defaultRouteInterfaces6(f) {
			ifaces = appendUnique(ifaces, name)
		}
		f.Close()
	}
	var addrs []netip.Addr
	for _, name := range ifaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		ias, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, ia := range ias {
			if a, ok := addrOf(ia); ok {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs
}

// addrOf extracts an unmapped, zone-less IP from the address types the net package hands out.
func addrOf(a net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch v := a.(type) {
	case *net.TCPAddr:
		ip = v.IP
	case *net.UDPAddr:
		ip = v.IP
	case *net.IPAddr:
		ip = v.IP
	case *net.IPNet:
		ip = v.IP
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, false
		}
		return ap.Addr().Unmap().WithZone(""), true
	}
	na, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	return na.Unmap().WithZone(""), true
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if !p.Addr().Is4In6() {
		return p
	}
	bits := p.Bits() - 96
	if bits < 0 {
		bits = 0
	}
	return netip.PrefixFrom(p.Addr().Unmap(), bits)
}

func containsAny(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
