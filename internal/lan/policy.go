package lan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
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

// uplinkCacheTTL bounds how often the routing table is re-read for the default route's
// interfaces, and how long a peer's verdict is kept: often enough to follow a WAN reconnect,
// rarely enough that a connection flood costs no syscalls.
const uplinkCacheTTL = 5 * time.Second

// maxPeerVerdicts bounds the per-peer cache. Peers are hosts that completed a TCP handshake
// (a spoofed source never does), so a home's worth fits; beyond that the cache starts over.
const maxPeerVerdicts = 1024

// errNoRouteLookup says the platform cannot tell the interface; the source ranges decide alone.
var errNoRouteLookup = errors.New("route lookup is only implemented on Linux")

// Policy decides whether a connection may be served. It is safe for concurrent use.
type Policy struct {
	allow []netip.Prefix // empty: LAN only

	// uplinks returns the interfaces holding a default route (IPv4 or IPv6).
	uplinks func() uplinkSet
	// routeOut returns the index of the interface a packet to peer, sent from local, leaves by.
	routeOut func(peer, local netip.Addr) (int, error)

	mu       sync.Mutex
	cachedAt time.Time
	cached   *uplinkSet
	verdicts map[peerKey]verdict
}

// uplinkSet names the WAN side: the interfaces holding a default route.
type uplinkSet struct {
	names   []string
	indexes []int
	// unknown names an interface of the routing table whose index could not be read: then no
	// route can be told apart from it, and connections are refused until it can.
	unknown string
}

func (u uplinkSet) hasName(name string) bool { return slices.Contains(u.names, name) }
func (u uplinkSet) hasIndex(i int) bool      { return slices.Contains(u.indexes, i) }

type peerKey struct{ peer, local netip.Addr }

type verdict struct {
	allowed bool
	at      time.Time
}

// NewPolicy builds a policy from client CIDRs (a bare address means just that host). An empty
// list means LAN only.
func NewPolicy(allow []string) (*Policy, error) {
	p := &Policy{uplinks: systemUplinks, routeOut: systemRouteOut}
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
// understood is not, and neither is one whose interface cannot be found out.
func (p *Policy) Allowed(remote, local net.Addr) bool {
	ok, _ := p.check(remote, local)
	return ok
}

// check is Allowed with the reason a LAN-only verdict could not be reached; then the answer is
// false (fail closed).
//
// "Arrived through the interface holding the default route" cannot be read off the local
// address: Linux accepts a packet for any of its addresses on any interface (the weak host
// model), so a WAN packet to the LAN address arrives at the LAN address. What a TCP peer cannot
// fake is the route back: the handshake only completes if the peer receives our SYN-ACK, which
// leaves by the route to the peer. So the interface is the route's output interface, and for a
// link-local peer (whose route depends on the interface) the zone the kernel reports.
func (p *Policy) check(remote, local net.Addr) (bool, error) {
	if _, ok := remote.(*net.UnixAddr); ok {
		return true, nil
	}
	ra, ok := addrOf(remote)
	if !ok {
		return false, nil
	}
	if !p.LANOnly() {
		return containsAny(p.allow, ra), nil
	}
	if !containsAny(lanPrefixes[:], ra) {
		return false, nil
	}
	if ra.IsLoopback() {
		return true, nil // the kernel drops loopback sources arriving on any other interface
	}
	if zone := zoneOf(remote); zone != "" {
		up := p.uplink()
		idx, err := strconv.Atoi(zone)
		return !up.hasName(zone) && (err != nil || !up.hasIndex(idx)), nil
	}
	la, _ := addrOf(local)
	key := peerKey{ra, la}
	if v, ok := p.verdict(key); ok {
		return v, nil
	}
	oif, err := p.routeOut(ra, la)
	switch {
	case errors.Is(err, errNoRouteLookup):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("lan: finding the interface of %v: %w", ra, err)
	}
	up := p.uplink()
	if up.unknown != "" {
		return false, fmt.Errorf("lan: the default route's interface %s has no index", up.unknown)
	}
	allowed := !up.hasIndex(oif)
	p.remember(key, allowed)
	return allowed, nil
}

func (p *Policy) verdict(k peerKey) (allowed, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.verdicts[k]
	if !ok || time.Since(v.at) > uplinkCacheTTL {
		return false, false
	}
	return v.allowed, true
}

func (p *Policy) remember(k peerKey, allowed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.verdicts) >= maxPeerVerdicts {
		for k, v := range p.verdicts {
			if time.Since(v.at) > uplinkCacheTTL {
				delete(p.verdicts, k)
			}
		}
	}
	if p.verdicts == nil || len(p.verdicts) >= maxPeerVerdicts {
		p.verdicts = make(map[peerKey]verdict)
	}
	p.verdicts[k] = verdict{allowed: allowed, at: time.Now()}
}

// uplink returns the default route's interfaces, re-read at most every uplinkCacheTTL. While
// there is no default route (the uplink is down, its interface still there) the last ones seen
// stay the WAN: an outage must not open the page to the ISP's side.
func (p *Policy) uplink() uplinkSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cached == nil || time.Since(p.cachedAt) > uplinkCacheTTL {
		u := p.uplinks()
		if len(u.names) == 0 && p.cached != nil {
			u = *p.cached
		}
		p.cached, p.cachedAt = &u, time.Now()
	}
	return *p.cached
}

// systemUplinks reads the default-route interfaces from /proc (IPv4 and IPv6).
func systemUplinks() uplinkSet {
	var u uplinkSet
	if f, err := openProcNet("route"); err == nil {
		u.names = append(u.names, defaultRouteInterfaces4(f)...)
		f.Close()
	}
	if f, err := openProcNet("ipv6_route"); err == nil {
		for _, name := range defaultRouteInterfaces6(f) {
			u.names = appendUnique(u.names, name)
		}
		f.Close()
	}
	for _, name := range u.names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			u.unknown = name // gone between the two reads, or unreadable: fail closed
			continue
		}
		u.indexes = append(u.indexes, ifi.Index)
	}
	return u
}

// openProcNet opens a file of /proc/net as the calling thread sees it. /proc/net is the main
// thread's view, which differs from ours when the main thread has entered another network
// namespace (setns is per thread); kernels before 3.17 have no /proc/thread-self.
func openProcNet(name string) (*os.File, error) {
	f, err := os.Open("/proc/thread-self/net/" + name)
	if err != nil {
		return os.Open("/proc/net/" + name)
	}
	return f, nil
}

// zoneOf returns the IPv6 zone (the interface, by name or index) of a link-local address.
func zoneOf(a net.Addr) string {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.Zone
	case *net.UDPAddr:
		return v.Zone
	case *net.IPAddr:
		return v.Zone
	}
	return ""
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
