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
