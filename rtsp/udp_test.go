package rtsp

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
)

// udpPortPair finds an even loopback UDP port whose successor is free too, as RTP/RTCP need.
func udpPortPair(t *testing.T) (rtpAddr, rtcpAddr string) {
	t.Helper()
	for range 50 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p%2 != 0 || p > 65000 {
			continue
		}
		c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err != nil {
			continue
		}
		c2.Close()
		return fmt.Sprintf("127.0.0.1:%d", p), fmt.Sprintf("127.0.0.1:%d", p+1)
	}
	t.Fatal("no free UDP port pair on loopback")
	return "", ""
}

// TestRelayFromCameraOverUDP pulls the camera with Transport "udp".
func TestRelayFromCameraOverUDP(t *testing.T) {
	cam := &testServer{addr: freeAddr(t), streams: map[string]*testStream{}}
	rtpAddr, rtcpAddr := udpPortPair(t)
	cam.srv = &gortsplib.Server{Handler: cam, RTSPAddress: cam.addr, UDPRTPAddress: rtpAddr, UDPRTCPAddress: rtcpAddr}
	if err := cam.srv.Start(); err != nil {
		t.Fatalf("start test RTSP server with UDP: %v", err)
	}
	t.Cleanup(cam.srv.Close)
	up := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 30)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })

	r, stop := startRelay(t, RelayConfig{Source: cam.url("cam"), Transport: "udp", Audio: true, Publish: up.url("out")})
	waitFor(t, 10*time.Second, "relaying", func() bool { return r.Stats().Relaying })
	sent, got := countWindow(cam, "cam", up, "out", 2*time.Second)
	stop()
	if got < sent*95/100 {
		t.Errorf("upstream got %d video frames over a UDP camera session, camera sent %d: want >= 95%%", got, sent)
	}
}
