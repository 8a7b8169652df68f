package lan

import "net/netip"

// ClientKey is the client a rate limit counts addr as: its /64 for IPv6, since one device may
// use any address of its /64 (privacy addresses, SLAAC), and the address itself for IPv4,
// IPv4-mapped IPv6 included.
func ClientKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p
	}
	return netip.PrefixFrom(addr, 32)
}
