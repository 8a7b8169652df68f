package mdns_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netnstest"
	"github.com/camgate/camgate/mdns"
	"github.com/grandcat/zeroconf"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
)

// Multicast tests run inside a network namespace of their own (internal/netnstest), holding
// only a loopback interface: nothing they send can reach a real network.
var inNetns = netnstest.Run

// A terse responder answers each question with exactly the record asked for and nothing
// additional, as some camera firmwares do: the browser must ask for the SRV and A records itself.
// It also sends a malformed packet for every query, which must change nothing.
func TestMDNSAsksForRecordsTheAnswersLeftOut(t *testing.T) {
	inNetns(t, []string{"10.77.0.60"}, func(t *testing.T) {
		lo := loopback(t)
		conn := listenReuseAddr(t, "224.0.0.251:5353")
		defer conn.Close()
		pc := ipv4.NewPacketConn(conn)
		group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
		if err := pc.JoinGroup(lo, group); err != nil {
			t.Fatal(err)
		}
		_ = pc.SetMulticastInterface(lo)
		_ = pc.SetMulticastLoopback(true)

		const (
			service  = "_onvif._tcp.local."
			instance = "Garage Cam._onvif._tcp.local."
			host     = "garage-cam.local."
		)
		answer := func(q dnsmessage.Question) []byte {
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true, Authoritative: true})
			_ = b.StartAnswers()
			h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 120}
			switch {
			case q.Type == dnsmessage.TypePTR && strings.EqualFold(q.Name.String(), service):
				_ = b.PTRResource(h, dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(instance)})
			case q.Type == dnsmessage.TypeSRV && strings.EqualFold(q.Name.String(), instance):
				_ = b.SRVResource(h, dnsmessage.SRVResource{Target: dnsmessage.MustNewName(host), Port: 8899})
			case q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), host):
				_ = b.AResource(h, dnsmessage.AResource{A: netip.MustParseAddr("10.77.0.60").As4()})
			default:
				return nil
			}
			msg, _ := b.Finish()
			return msg
		}
		asked := map[dnsmessage.Type]int{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 9000)
			for {
				n, _, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				var p dnsmessage.Parser
				h, err := p.Start(buf[:n])
				if err != nil || h.Response {
					continue
				}
				qs, _ := p.AllQuestions()
				for _, q := range qs {
					if msg := answer(q); msg != nil {
						asked[q.Type]++
						_, _ = pc.WriteTo(msg, nil, group)
					}
				}
				_, _ = pc.WriteTo([]byte{0, 0, 0x84, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0xc0, 12}, nil, group)
			}
		}()

		cfg := mdns.Config{Interfaces: []string{"lo"}, Services: []string{"_onvif._tcp"}}
		got, err := mdns.Browse(context.Background(), cfg, 3*time.Second)
		conn.Close()
		<-done
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range got {
			names = append(names, fmt.Sprintf("%s %s %s %v:%d", s.Service, s.Instance, s.Host, s.IPv4, s.Port))
		}
		want := []string{"_onvif._tcp Garage Cam garage-cam.local. [10.77.0.60]:8899"}
		if !slices.Equal(names, want) {
			t.Errorf("found %q, want %q", names, want)
		}
		if asked[dnsmessage.TypeSRV] == 0 || asked[dnsmessage.TypeA] == 0 || asked[dnsmessage.TypePTR] < 2 {
			t.Errorf("questions answered by type: %v; want repeated PTR and follow-up SRV and A", asked)
		}
	})
}

func loopback(t *testing.T) *net.Interface {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return lo
}

// listenReuseAddr binds a UDP address with SO_REUSEADDR only, as mDNS responders such as
// avahi-daemon do, so that the browser under test must share the port with it.
func listenReuseAddr(t *testing.T, addr string) net.PacketConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestMDNSFindsCamerasBesideAnotherResponder(t *testing.T) {
	inNetns(t, []string{"10.77.0.50", "10.77.0.51", "10.77.0.52"}, func(t *testing.T) {
		lo := loopback(t)
		// Stand-in for avahi-daemon/umdns: it holds 0.0.0.0:5353 with SO_REUSEADDR, as they do.
		avahi := listenReuseAddr(t, "0.0.0.0:5353")
		defer avahi.Close()

		ifs := []net.Interface{*lo}
		for _, s := range []struct{ instance, service, host, ip string }{
			{"AXIS M3045-V - ACCC8E012345", "_axis-video._tcp", "axis-accc8e012345", "10.77.0.50"},
			{"Porch IPC", "_rtsp._tcp", "ipc-porch", "10.77.0.51"},
			{"HP LaserJet 400", "_http._tcp", "printer", "10.77.0.52"},
		} {
			srv, err := zeroconf.RegisterProxy(s.instance, s.service, "local.", 554, s.host, []string{s.ip},
				[]string{"vendor=test"}, ifs)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
		}

		got, err := mdns.Browse(context.Background(), mdns.Config{Interfaces: []string{"lo"}}, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range got {
			names = append(names, fmt.Sprintf("%s %s %v:%d", s.Service, s.Instance, s.IPv4, s.Port))
		}
		want := []string{"_axis-video._tcp AXIS M3045-V - ACCC8E012345 [10.77.0.50]:554",
			"_rtsp._tcp Porch IPC [10.77.0.51]:554"}
		if !slices.Equal(names, want) {
			t.Errorf("found %q\nwant %q (the printer's _http._tcp left out)", names, want)
		}
	})
}
