package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netnstest"
)

// Issue 13 acceptance 7: a gateway with a WAN link holding the default route (10.0.0.2/24,
// toward "isp" at 10.0.0.1: an ISP that hands out private addresses) and a LAN link (10.1.0.1/24,
// toward "home" at 10.1.0.2), as netnstest.HomeGateway draws it. A real `camgate run` on the
// gateway serves the page and SMTP on every address. From isp, whatever address it asks for (the
// LAN's, the WAN's) and whatever its source (private v4, link-local or ULA v6), the connection is
// accepted by the kernel and closed by camgate without a byte, and counted. From home both are
// served. Every link is a veth between namespaces made by the test: nothing reaches a real
// interface.
func TestLANOnlyByIncomingInterface(t *testing.T) {
	netnstest.Run(t, nil, func(t *testing.T) {
		g := netnstest.NewHomeGateway(t)
		isp, home := g.ISP, g.Home

		// The defaults of SPEC §2: the page on :8080, SMTP on :1025, every address, allow: [].
		dir := t.TempDir()
		cfg := fmt.Sprintf("gateway_id: gwlan\ndata_dir: %s\nweb: {listen: ':8080'}\nsmtp: {listen: ':1025'}\n"+
			"discovery: {onvif: false, mdns: false}\n", dir)
		if err := os.WriteFile(filepath.Join(dir, "camgate.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		start(t, camgateBin, "run", "-c", filepath.Join(dir, "camgate.yaml"))
		waitFor(t, 30*time.Second, "the page to listen", func() bool { return dialableAddr("127.0.0.1:8080") })
		waitFor(t, 30*time.Second, "SMTP to listen", func() bool { return dialableAddr("127.0.0.1:1025") })

		const page, smtp = "page", "smtp"
		tests := []struct {
			name       string
			from       *netnstest.Peer
			src, addr  string
			service    string
			wantServed bool
		}{
			{"LAN host, LAN address", home, "", "10.1.0.1", page, true},
			{"LAN host, LAN address", home, "", "10.1.0.1", smtp, true},
			{"LAN host, the gateway's WAN address", home, "", "10.0.0.2", page, true},
			{"LAN host, ULA", home, "fd00:1::2", "fd00:1::1", page, true},
			{"LAN host, link-local", home, "fe80::b%home0", "fe80::1%home0", smtp, true},
			{"WAN host with a private source, LAN address", isp, "", "10.1.0.1", page, false},
			{"WAN host with a private source, LAN address", isp, "", "10.1.0.1", smtp, false},
			{"WAN host with a private source, WAN address", isp, "", "10.0.0.2", page, false},
			{"WAN host with a private source, WAN address", isp, "", "10.0.0.2", smtp, false},
			{"WAN link-local to the LAN's global address", isp, "fe80::1%isp0", "2001:db8:1::1", page, false},
			{"WAN link-local to the LAN's global address", isp, "fe80::1%isp0", "2001:db8:1::1", smtp, false},
			{"WAN link-local to the LAN's ULA", isp, "fe80::1%isp0", "fd00:1::1", smtp, false},
			{"WAN link-local to the WAN link-local", isp, "fe80::1%isp0", "fe80::2%isp0", page, false},
			{"WAN ULA source to the LAN's ULA", isp, "fd99::1", "fd00:1::1", page, false},
		}
		refused := map[string]int{}
		for _, tt := range tests {
			t.Run(tt.service+": "+tt.name, func(t *testing.T) {
				got := exchange(t, tt.from, tt.src, tt.addr, tt.service == page)
				switch {
				case tt.wantServed && tt.service == page && !strings.HasPrefix(got, "HTTP/1.1 200"):
					t.Errorf("page answered %q, want 200", got)
				case tt.wantServed && tt.service == smtp && !strings.HasPrefix(got, "220 "):
					t.Errorf("SMTP answered %q, want its 220 banner", got)
				case !tt.wantServed && got != "":
					t.Errorf("refused connection got %d bytes back: %q", len(got), got)
				}
			})
			if !tt.wantServed {
				refused[tt.service]++
			}
		}

		// Counted, as SPEC §8 says; the page's owner reads it from the gateway itself (logged in,
		// in case /metrics ever needs a session).
		owner := loginPage(t, "http://127.0.0.1:8080", dir)
		resp, err := owner.c.Get(owner.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			fmt.Sprintf("camgate_web_denied_connections_total %d\n", refused[page]),
			fmt.Sprintf("camgate_smtp_denied_connections_total %d\n", refused[smtp]),
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %q:\n%s", want, body)
			}
		}
	})
}

// exchange connects from peer (from its address src, "" = the kernel's choice) to addr's page
// (sending a GET /healthz) or SMTP port (sending nothing: the server speaks first), and returns
// everything it got until the server closed the connection. The connection must be accepted:
// a refused or unreachable one would prove nothing about camgate.
func exchange(t *testing.T, peer *netnstest.Peer, src, addr string, page bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port := "1025"
	if page {
		port = "8080"
	}
	host := addr
	if strings.Contains(addr, ":") {
		host = "[" + addr + "]"
	}
	c, err := peer.Dial(ctx, "tcp", src, host+":"+port)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if page {
		// A refused connection may already be closed: then this write is answered by a reset.
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
	} else {
		// Read the banner only; then QUIT so that the server closes.
		b := make([]byte, 512)
		n, err := c.Read(b)
		if n > 0 {
			_, _ = io.WriteString(c, "QUIT\r\n")
			rest, _ := io.ReadAll(c)
			return string(b[:n]) + string(rest)
		}
		if !closedByPeer(err) {
			t.Fatalf("SMTP neither answered nor closed: %v", err)
		}
		return ""
	}
	got, err := io.ReadAll(c)
	if err != nil && !closedByPeer(err) {
		t.Fatalf("reading after %d bytes: %v (the connection was held open, not closed)", len(got), err)
	}
	return string(got)
}

// closedByPeer: EOF or a reset, not a timeout.
func closedByPeer(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
