package netnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Peer is a second network namespace inside the one Run made: another host, reachable only over
// the veth links the test gives it (Link). It is held by a child process that ends with the test,
// so nothing is left behind and no name is taken in /run/netns.
type Peer struct {
	name string
	pid  int
}

// NewPeer makes an empty network namespace (only a loopback, which it brings up). It may only be
// called from Run's body, so that the host's interfaces are never in reach.
func NewPeer(t *testing.T, name string) *Peer {
	t.Helper()
	mustBeInside(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		failOrSkip(t, "the nsenter command (Debian package util-linux) is needed to configure a peer namespace")
	}
	// The holder is cat reading a pipe only this process writes: it ends when the test ends,
	// however it ends. (Pdeathsig would follow the forking thread, which Dial may retire.)
	holder := exec.Command("cat")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatalf("starting the holder of namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	p := &Peer{name: name, pid: holder.Process.Pid}
	p.IP(t, "link", "set", "lo", "up")
	return p
}

// IP runs the ip command with args inside the peer.
func (p *Peer) IP(t *testing.T, args ...string) {
	t.Helper()
	run(t, p.name, "", "nsenter", append([]string{"--net=" + p.nsPath(), "ip"}, args...)...)
}

// IPScript runs ip commands inside the peer, one a line (ip -batch).
func (p *Peer) IPScript(t *testing.T, script string) {
	t.Helper()
	run(t, p.name, script, "nsenter", "--net="+p.nsPath(), "ip", "-batch", "-")
}

// IP runs the ip command with args in Run's namespace (the host under test).
func IP(t *testing.T, args ...string) {
	t.Helper()
	mustBeInside(t)
	run(t, "the host", "", "ip", args...)
}

// IPScript runs ip commands in Run's namespace, one a line (ip -batch).
func IPScript(t *testing.T, script string) {
	t.Helper()
	mustBeInside(t)
	run(t, "the host", script, "ip", "-batch", "-")
}

func mustBeInside(t *testing.T) {
	t.Helper()
	if !Inside() {
		t.Fatal("netnstest: outside netnstest.Run, refusing to touch the host's network")
	}
}

// run runs a command with stdin on its standard input; where names the namespace for errors.
func run(t *testing.T, where, stdin, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", where, name, strings.Join(args, " "), err, out)
	}
}

// Link joins Run's namespace to p by a veth pair: local stays here, remote moves into p. Both
// ends are down and have no address; IPv6 makes no link-local address of its own, so that a
// test's addresses (added with nodad) are the only ones and usable at once.
func Link(t *testing.T, local string, p *Peer, remote string) {
	t.Helper()
	IP(t, "link", "add", local, "type", "veth", "peer", "name", remote)
	IP(t, "link", "set", local, "addrgenmode", "none")
	IP(t, "link", "set", remote, "addrgenmode", "none")
	IP(t, "link", "set", remote, "netns", strconv.Itoa(p.pid))
}

// Dial connects from inside p, optionally from the address from (host[%zone], "" = the kernel's
// choice).
func (p *Peer) Dial(ctx context.Context, network, from, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, err := p.dialHere(ctx, network, from, addr)
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// dialHere runs on a locked thread: it moves the thread into p, dials, and moves it back. Only a
// thread that is back home is unlocked; one that is not dies with its goroutine, so no other
// goroutine ever runs in p by accident. Letting every such thread die is no option: children
// started with Pdeathsig (the daemon under test) would be killed with the thread that forked them.
func (p *Peer) dialHere(ctx context.Context, network, from, addr string) (net.Conn, error) {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("this thread's namespace: %w", err)
	}
	defer home.Close()
	ns, err := os.Open(p.nsPath())
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("namespace %s: %w", p.name, err)
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering namespace %s: %w", p.name, err)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		ip, zone, _ := strings.Cut(from, "%")
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip), Zone: zone}
	}
	// The socket is made on this thread, so in p; it stays there whatever thread uses it later.
	c, err := d.DialContext(ctx, network, addr)
	if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	if err != nil {
		return nil, fmt.Errorf("from %s (%s): %w", p.name, from, err)
	}
	return c, nil
}

func (p *Peer) nsPath() string { return "/proc/" + strconv.Itoa(p.pid) + "/ns/net" }

// HomeGateway is the network of a home gateway, built inside Run's namespace, which plays the
// gateway:
//
//	isp  (isp0: 10.0.0.1/24, fe80::1, fd99::1/64)
//	  |  an ISP that hands out private addresses; routes to the home's prefixes via the gateway
//	wan  (10.0.0.2/24, fe80::2): holds the IPv4 and IPv6 default routes
//	gateway
//	lan  (10.1.0.1/24, fe80::1, fd00:1::1/64, 2001:db8:1::1/64)
//	  |
//	home (home0: 10.1.0.2/24, fe80::b, fd00:1::2/64; default route via the gateway)
//
// Every link is a veth between namespaces of the test's own; no real interface is involved.
type HomeGateway struct {
	ISP, Home *Peer
}

// NewHomeGateway builds the network HomeGateway describes.
func NewHomeGateway(t *testing.T) *HomeGateway {
	t.Helper()
	g := &HomeGateway{ISP: NewPeer(t, "isp"), Home: NewPeer(t, "home")}
	Link(t, "wan", g.ISP, "isp0")
	Link(t, "lan", g.Home, "home0")
	// ip -batch infers the family from the addresses.
	IPScript(t, `addr add 10.0.0.2/24 dev wan
		addr add fe80::2/64 dev wan nodad
		addr add 10.1.0.1/24 dev lan
		addr add fe80::1/64 dev lan nodad
		addr add fd00:1::1/64 dev lan nodad
		addr add 2001:db8:1::1/64 dev lan nodad
		link set wan up
		link set lan up
		route add default via 10.0.0.1 dev wan
		route add ::/0 via fe80::1 dev wan`)
	g.ISP.IPScript(t, `addr add 10.0.0.1/24 dev isp0
		addr add fe80::1/64 dev isp0 nodad
		addr add fd99::1/64 dev isp0 nodad
		link set isp0 up
		route add 10.1.0.0/24 via 10.0.0.2
		route add fd00:1::/64 via fe80::2 dev isp0
		route add 2001:db8:1::/64 via fe80::2 dev isp0`)
	g.Home.IPScript(t, `addr add 10.1.0.2/24 dev home0
		addr add fe80::b/64 dev home0 nodad
		addr add fd00:1::2/64 dev home0 nodad
		link set home0 up
		route add default via 10.1.0.1`)
	return g
}
