//go:build !linux

package lan

import "net/netip"

// systemRouteOut has no portable way to ask; the policy falls back to the source ranges alone.
// camgate ships for Linux only.
func systemRouteOut(netip.Addr, netip.Addr) (int, error) { return 0, errNoRouteLookup }
