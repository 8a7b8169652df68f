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
