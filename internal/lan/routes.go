package lan

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Route flags from linux/route.h and linux/ipv6_route.h.
const (
	rtfUp     = 0x0001
	rtfReject = 0x0200
)

// maxRouteLines bounds how much of a routing table is read: a gateway has a handful of routes, and
// a file that never ends must not hold the caller.
const maxRouteLines = 4096

// defaultRouteInterfaces4 returns the interfaces holding an IPv4 default route, read from the
// format of /proc/net/route.
func defaultRouteInterfaces4(r io.Reader) []string {
	var ifaces []string
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan() && n < maxRouteLines; n++ {
		f := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) < 8 || f[0] == "Iface" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		if isZeroHex(f[1]) && isZeroHex(f[7]) {
			ifaces = appendUnique(ifaces, f[0])
		}
	}
	return ifaces
}

// defaultRouteInterfaces6 returns the interfaces holding an IPv6 default route, read from the
// format of /proc/net/ipv6_route. The kernel's unreachable default on lo is not a route out.
func defaultRouteInterfaces6(r io.Reader) []string {
	var ifaces []string
	sc := bufio.NewScanner(r)
	for n := 0; sc.Scan() && n < maxRouteLines; n++ {
		// dest destlen src srclen nexthop metric refcnt use flags iface
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		flags, err := strconv.ParseUint(f[8], 16, 32)
		if err != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		if isZeroHex(f[0]) && isZeroHex(f[1]) && f[9] != "lo" {
			ifaces = appendUnique(ifaces, f[9])
		}
	}
	return ifaces
}

func isZeroHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c != '0' {
			return false
		}
	}
	return true
}

func appendUnique(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}
