package rtsp

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// udpCamera is a scripted camera that sends RTP over UDP from sockets the test holds: its
// SETUP answer names them as server_port, as RFC 2326 12.39 has a server do.
type udpCamera struct {
	*scriptedCamera
	rtp, rtcp *net.UDPConn
}

func startUDPCamera(t *testing.T) *udpCamera {
	t.Helper()
	c := &udpCamera{}
	for c.rtp == nil {
		pair, err := listenUDPPair(net.IPv4(127, 0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		c.rtp, c.rtcp = pair.rtp, pair.rtcp
	}
	t.Cleanup(func() { c.rtp.Close(); c.rtcp.Close() })
	serverPort := c.rtp.LocalAddr().(*net.UDPAddr).Port
	c.scriptedCamera = startScriptedCamera(t, "127.0.0.1", func(req *base.Request) *base.Response {
		switch req.Method {
		case base.Describe:
			return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
				"Content-Type": base.HeaderValue{"application/sdp"},
			}, Body: []byte(sdpH264)}
		case base.Setup:
			return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
				"Session": base.HeaderValue{"s1;timeout=60"},
				"Transport": base.HeaderValue{req.Header["Transport"][0] + ";server_port=" +
					strconv.Itoa(serverPort) + "-" + strconv.Itoa(serverPort+1)},
			}}
		}
		return &base.Response{StatusCode: base.StatusOK}
	})
	return c
}

// clientPorts is where the camera was asked to send track 0's RTP and RTCP.
func (c *udpCamera) clientPorts(t *testing.T) (rtpAddr, rtcpAddr *net.UDPAddr) {
	t.Helper()
	for _, r := range c.received() {
		if r.method != base.Setup {
			continue
		}
		var th headers.Transport
		if err := th.Unmarshal(r.req.Header["Transport"]); err != nil || th.ClientPorts == nil {
			t.Fatalf("SETUP asked for %v: %v", r.req.Header["Transport"], err)
		}
		if th.Protocol != headers.TransportProtocolUDP || th.ClientPorts[0]%2 != 0 ||
			th.ClientPorts[1] != th.ClientPorts[0]+1 {
			t.Fatalf("SETUP asked for %v, want UDP to an even port and the next", r.req.Header["Transport"])
		}
		ip := net.IPv4(127, 0, 0, 1)
		return &net.UDPAddr{IP: ip, Port: th.ClientPorts[0]}, &net.UDPAddr{IP: ip, Port: th.ClientPorts[1]}
	}
	t.Fatal("no SETUP")
	return nil, nil
}

func rtpPacket(t *testing.T, seq uint16) []byte { return rtpPacketPT(t, 96, seq) }

func rtpPacketPT(t *testing.T, pt uint8, seq uint16) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, SSRC: 0xcafe},
		Payload: []byte{0x65, 1, 2, 3}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A UDP camera session takes RTP only from the camera's address and the server port its
// SETUP answer named: a host elsewhere on the LAN, or another port of the camera's own
// address, cannot slip packets into the relayed stream. It tells the camera how its stream
// arrives in RTCP receiver reports sent to the camera's RTCP port, and ends the session when
// the camera falls silent for the read timeout. What arrives out of order or twice goes on in
// order, once; a payload type the track does not have, not at all.
func TestUDPSessionTakesOnlyTheCamerasPackets(t *testing.T) {
	cam := startUDPCamera(t)
	const timeout = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u, err := url.Parse(cam.url("/live"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := dialUDP(ctx, u, cameraOptions{timeout: timeout})
	if err != nil {
		t.Fatalf("dialUDP: %v", err)
	}
	defer s.close()
	clientRTP, _ := cam.clientPorts(t)

	var mu sync.Mutex
	var got []uint16
	done := make(chan error, 1)
	go func() {
		done <- s.play(ctx, nil, func(track int, pkt *rtp.Packet, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, pkt.SequenceNumber)
		}, func(time.Time) {})
	}()
	waitFor(t, 5*time.Second, "PLAY", func() bool {
		for _, r := range cam.received() {
			if r.method == base.Play {
				return true
			}
		}
		return false
	})

	// Before PLAY the session opened the gateway's firewall: an empty RTP packet from its RTP
	// port to the camera's.
	buf := make([]byte, 1500)
	_ = cam.rtp.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := cam.rtp.ReadFromUDP(buf)
	if err != nil || n != 12 || buf[0] != 0x80 || from.Port != clientRTP.Port {
		t.Fatalf("camera's RTP port got %x from %v (%v), want an empty RTP packet from %v", buf[:n], from, err, clientRTP)
	}

	spoofer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer spoofer.Close()
	otherPort, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer otherPort.Close()
	for _, send := range []struct {
		from *net.UDPConn
		pt   uint8
		seq  uint16
	}{
		{cam.rtp, 96, 1}, {spoofer, 96, 2}, {otherPort, 96, 3}, {cam.rtp, 96, 3}, {cam.rtp, 96, 2}, {cam.rtp, 96, 2},
		{cam.rtp, 97, 5}, // a payload type the SDP does not give the track
		{cam.rtp, 96, 4},
	} {
		if _, err := send.from.WriteToUDP(rtpPacketPT(t, send.pt, send.seq), clientRTP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "the camera's packets", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 4
	})
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	if !slices.Equal(got, []uint16{1, 2, 3, 4}) {
		t.Errorf("relayed sequence numbers %v, want [1 2 3 4]: only the camera's server port and the "+
			"track's payload type count, in sequence order, each once", got)
	}
	mu.Unlock()

	// The first receiver report is due receiverReportPeriod after PLAY; packets keep the
	// session alive meanwhile.
	var rr *rtcp.ReceiverReport
	opened := false // the empty report that opened the firewall comes first
	deadline := time.Now().Add(receiverReportPeriod + 5*time.Second)
	for rr == nil && time.Now().Before(deadline) {
		if _, err := cam.rtp.WriteToUDP(rtpPacket(t, 5), clientRTP); err != nil {
			t.Fatal(err)
		}
		_ = cam.rtcp.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := cam.rtcp.ReadFromUDP(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil || len(pkts) != 1 {
			t.Fatalf("camera's RTCP port got %d bytes that are no single RTCP packet: %v", n, err)
		}
		report, ok := pkts[0].(*rtcp.ReceiverReport)
		if !ok {
			t.Fatalf("camera's RTCP port got %T, want a receiver report", pkts[0])
		}
		if !opened && len(report.Reports) == 0 {
			opened = true
			continue
		}
		rr = report
	}
	if !opened {
		t.Error("no empty receiver report opened the firewall before the first real one")
	}
	if rr == nil {
		t.Fatal("no receiver report reached the camera's RTCP port")
	}
	if len(rr.Reports) != 1 || rr.Reports[0].SSRC != 0xcafe || rr.Reports[0].LastSequenceNumber != 5 {
		t.Errorf("receiver report %+v, want one block about SSRC 0xcafe up to sequence 5", rr)
	}

	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no packet arrived over UDP") {
			t.Errorf("play ended with %v, want the silence named", err)
		}
	case <-time.After(timeout + 10*time.Second):
		t.Fatal("the session outlived a silent camera")
	}
}

// An rtsps:// camera is never played over UDP: its media would leave TLS. The refusal is a
// transport's, so auto stays on TCP.
func TestUDPSessionRefusesRTSPS(t *testing.T) {
	u, err := url.Parse("rtsps://127.0.0.1:1/live")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dialUDP(context.Background(), u, cameraOptions{timeout: time.Second})
	if !errors.Is(err, errTransportRefused) || !strings.Contains(err.Error(), "SRTP") {
		t.Fatalf("dialUDP(rtsps) = %v, want a transport refusal naming SRTP", err)
	}
}
