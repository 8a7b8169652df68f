package rtsp

import (
	"context"
	"net"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestLowWaterFor(t *testing.T) {
	for _, c := range []struct {
		name    string
		n       int64
		elapsed time.Duration
		want    int
	}{
		{"2 Mbit/s gathers 20 ms of it", 250_000, time.Second, 5000},
		{"the rate, not the count", 500_000, 2 * time.Second, 5000},
		{"200 kbit/s wakes per packet", 25_000, time.Second, 0},
		{"just under the floor", 102_000, time.Second, 0},
		{"20 Mbit/s gathers one read buffer", 2_500_000, time.Second, playBuffer},
		{"nothing read", 0, time.Second, 0},
		{"no time passed", 250_000, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := lowWaterFor(c.n, c.elapsed); got != c.want {
				t.Errorf("lowWaterFor(%d, %s) = %d, want %d", c.n, c.elapsed, got, c.want)
			}
		})
	}
}

// tcpPair is a connected loopback TCP pair, with the client's socket for socket options.
func tcpPair(t *testing.T) (client, server *net.TCPConn, clientRaw syscall.RawConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn), s.(*net.TCPConn), raw
}

func rcvLowat(t *testing.T, raw syscall.RawConn) int {
	t.Helper()
	var v int
	var err error
	if cerr := raw.Control(func(fd uintptr) {
		v, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT)
	}); cerr != nil || err != nil {
		t.Fatalf("getsockopt: %v %v", cerr, err)
	}
	return v
}

// The mark follows the camera's rate, once a second, and is left alone for small changes.
func TestLowWaterTune(t *testing.T) {
	_, _, raw := tcpPair(t)
	var w lowWater
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name string
		at   time.Duration
		got  int64
		want int
	}{
		{"first look only starts counting", 0, 0, 1},
		{"2 Mbit/s", time.Second, 250_000, 5000},
		{"a little faster: not worth a system call", 2 * time.Second, 510_000, 5000},
		{"much faster", 3 * time.Second, 910_000, 8000},
		{"slow: back to waking per packet", 4 * time.Second, 920_000, 1},
	}
	for _, s := range steps {
		w.tune(raw, t0.Add(s.at), s.got)
		if got := rcvLowat(t, raw); got != s.want {
			t.Fatalf("%s: SO_RCVLOWAT %d, want %d", s.name, got, s.want)
		}
	}
}

// What the mark is for: a reader waiting on the socket is not woken by less than the mark, and
// is by the mark. (Reading does not wait for the mark: whatever is there is taken.)
func TestLowWaterHoldsWakeUps(t *testing.T) {
	c, s, raw := tcpPair(t)
	var w lowWater
	t0 := time.Unix(1000, 0)
	w.tune(raw, t0, 0)
	w.tune(raw, t0.Add(time.Second), 250_000) // mark 5000
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	read := make(chan int, 1)
	go func() {
		b := make([]byte, 64<<10)
		n, _ := c.Read(b)
		read <- n
	}()
	time.Sleep(50 * time.Millisecond) // let the reader wait on the socket first
	if _, err := s.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-read:
		t.Fatalf("woken by %d bytes, under the 5000-byte mark", n)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := s.Write(make([]byte, 4500)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-read:
		if n < 5000 {
			t.Errorf("read %d bytes after the mark was reached, want all 5500", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not woken with 5500 bytes waiting")
	}
}

// A camera session at 2 Mbit/s gets a mark of about 20 ms of its stream, and its packets keep
// coming. (That nothing is held back is TestRelayToRTSPServer's 2 Mbit/s case.)
func TestPlayerSetsLowWaterForAFastCamera(t *testing.T) {
	cam := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 30, cbr2M...)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
	u, err := url.Parse(cam.url("cam"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := dialPlayer(ctx, u, cameraOptions{audio: true, timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.conn.Close()
	var packets atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- p.play(ctx, nil, func(int, *rtp.Packet, time.Time) { packets.Add(1) }, func(time.Time) {})
	}()
	var mark int
	waitFor(t, 10*time.Second, "a low-water mark", func() bool {
		mark = rcvLowat(t, p.raw)
		return mark > 1
	})
	// 2 Mbit/s of video and AAC, with RTP and interleaving overhead: 20 ms is about 5.2 KB.
	if mark < 4000 || mark > 7000 {
		t.Errorf("SO_RCVLOWAT = %d, want about 20 ms of 2 Mbit/s (4000-7000)", mark)
	}
	before := packets.Load()
	time.Sleep(time.Second)
	if n := packets.Load() - before; n < 100 {
		t.Errorf("%d packets in the second after the mark was set, want a 2 Mbit/s stream's worth", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("play: %v", err)
	}
}
