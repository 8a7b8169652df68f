package lan

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzDefaultRoutes: any routing table text parses without a panic, and every interface named
// comes from the input.
func FuzzDefaultRoutes(f *testing.F) {
	f.Add([]byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"))
	f.Add([]byte("00000000000000000000000000000000 00 00000000000000000000000000000000 00 " +
		"fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		names := append(defaultRouteInterfaces4(bytes.NewReader(data)), defaultRouteInterfaces6(bytes.NewReader(data))...)
		for _, name := range names {
			if name == "" || !strings.Contains(string(data), name) {
				t.Fatalf("interface %q not in the input", name)
			}
		}
	})
}

// FuzzParseRouteReply: any datagram on the route socket parses without a panic or a read out of
// bounds; a reply for our request either names an interface or says why not.
func FuzzParseRouteReply(f *testing.F) {
	f.Add(nlMsg(rtmNewRoute, 1, routeBody(3)), uint32(1))
	f.Add(nlMsg(nlmsgError, 1, errBody(-101)), uint32(1))
	f.Add(append(nlMsg(rtmNewRoute, 2, routeBody(9)), nlMsg(rtmNewRoute, 1, routeBody(0))...), uint32(1))
	f.Fuzz(func(t *testing.T, data []byte, seq uint32) {
		oif, done, err := parseRouteReply(data, seq)
		if !done && (err != nil || oif != 0) {
			t.Fatalf("no reply found, yet interface %d, error %v", oif, err)
		}
		if err != nil && oif != 0 {
			t.Fatalf("interface %d together with error %v", oif, err)
		}
	})
}
