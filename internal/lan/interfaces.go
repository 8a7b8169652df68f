package lan

import (
	"errors"
	"fmt"
	"net"
	"slices"
)

// MulticastInterfaces resolves the configured interface names, or, when there are none, picks
// the LAN interfaces a discovery may multicast on: up, multicast-capable, with an IPv4 address,
// and never one holding the IPv4 default route, which on a home gateway faces the ISP.
// WS-Discovery and mDNS share it so that both look at the same interfaces.
func MulticastInterfaces(names []string) ([]*net.Interface, error) {
	if len(names) > 0 {
		var out []*net.Interface
		for _, n := range names {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("discovery interface %q: %w", n, err)
			}
			out = append(out, ifi)
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	var wan []string
	if f, err := openProcNet("route"); err == nil {
		wan = defaultRouteInterfaces4(f)
		f.Close()
	}
	var out []*net.Interface
	for i := range all {
		ifi := &all[i]
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || slices.Contains(wan, ifi.Name) {
			continue
		}
		if _, err := InterfaceIPv4(ifi); err != nil {
			continue
		}
		out = append(out, ifi)
	}
	if len(out) == 0 {
		return nil, errors.New("no multicast-capable LAN interface (the default route's interface is never used)")
	}
	return out, nil
}

// InterfaceIPv4 returns the first IPv4 address of ifi.
func InterfaceIPv4(ifi *net.Interface) (net.IP, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("interface %s has no IPv4 address", ifi.Name)
}
