package rtsp

import (
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// transportCamera is a testServer (fed by ffmpeg) that plays the transport quirks of real
// cameras and servers: some take only UDP or only TCP and answer SETUP over the other with 461
// Unsupported Transport (RFC 2326 11.4.13); behind NAT or a firewall UDP may be set up and
// then never arrive.
type transportCamera struct {
	*testServer
	// udp serves RTP over UDP as well as TCP. Without it gortsplib answers 461 to UDP itself,
	// before the handler can count the SETUP.
	udp bool
	// refuseTCP is how many play SETUPs over TCP get 461; -1 is all of them.
	refuseTCP int
	refuseUDP bool // every play SETUP over UDP gets 461
	// silentUDP gives UDP readers a stream nobody writes to: their packets never arrive.
	silentUDP bool

	mu     sync.Mutex
	setups map[gortsplib.Protocol]int // play SETUPs asked, by transport
	dead   map[string]*gortsplib.ServerStream
}

func startTransportCamera(t *testing.T, c *transportCamera) *transportCamera {
	t.Helper()
	c.testServer = &testServer{addr: freeAddr(t), streams: map[string]*testStream{}}
	c.setups = map[gortsplib.Protocol]int{}
	c.dead = map[string]*gortsplib.ServerStream{}
	c.srv = &gortsplib.Server{Handler: c, RTSPAddress: c.addr, ReadTimeout: 5 * time.Second}
	if c.udp {
		c.srv.UDPRTPAddress, c.srv.UDPRTCPAddress = udpPortPair(t)
	}
	if err := c.srv.Start(); err != nil {
		t.Fatalf("start test RTSP server: %v", err)
	}
	t.Cleanup(func() {
		c.srv.Close()
		for _, s := range c.dead {
			s.Close()
		}
	})
	startCamera(t, c.url("cam"), "libx264", "aac", 60)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return c.snapshot("cam").videoFrames > 0 })
	return c
}

func (c *transportCamera) OnSetup(
	ctx *gortsplib.ServerHandlerOnSetupCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord || ctx.Transport == nil {
		return c.testServer.OnSetup(ctx) // ffmpeg publishing, always over TCP
	}
	proto := ctx.Transport.Protocol
	c.mu.Lock()
	c.setups[proto]++
	refuse := proto == gortsplib.ProtocolTCP && (c.refuseTCP < 0 || c.setups[proto] <= c.refuseTCP) ||
		proto == gortsplib.ProtocolUDP && c.refuseUDP
	silent := proto == gortsplib.ProtocolUDP && c.silentUDP
	c.mu.Unlock()
	if refuse {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	if silent {
		return c.deadStream(ctx)
	}
	return c.testServer.OnSetup(ctx)
}

// deadStream is a stream like path's that nobody writes to.
func (c *transportCamera) deadStream(
	ctx *gortsplib.ServerHandlerOnSetupCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.dead[ctx.Path]; s != nil {
		return &base.Response{StatusCode: base.StatusOK}, s, nil
	}
	st := c.snapshot("cam")
	s := &gortsplib.ServerStream{Server: c.srv, Desc: st.desc}
	if err := s.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, nil
	}
	c.dead[ctx.Path] = s
	return &base.Response{StatusCode: base.StatusOK}, s, nil
}

func (c *transportCamera) setupsOver(p gortsplib.Protocol) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.setups[p]
}

// With the default transport (auto) a relay finds the transport each camera takes, as ffmpeg
// and gortsplib do: TCP first, UDP when TCP gets 461, TCP again when UDP gets 461 or stays
// silent for 3 s. It remembers what worked and says so in Stats.
func TestTransportFallback(t *testing.T) {
	tests := []struct {
		name   string
		camera *transportCamera
		// startUDP starts the relay as if auto had chosen UDP before.
		startUDP bool
		want     gortsplib.Protocol
		// tried is the transport that must have been asked for before the one that works.
		tried gortsplib.Protocol
	}{
		{name: "UDP-only camera (461 to TCP)", camera: &transportCamera{udp: true, refuseTCP: -1},
			want: gortsplib.ProtocolUDP, tried: gortsplib.ProtocolTCP},
		{name: "TCP-only camera (461 to UDP)", camera: &transportCamera{udp: true, refuseUDP: true}, startUDP: true,
			want: gortsplib.ProtocolTCP, tried: gortsplib.ProtocolUDP},
		{name: "UDP camera whose packets never arrive", camera: &transportCamera{udp: true, refuseTCP: 1, silentUDP: true},
			want: gortsplib.ProtocolTCP, tried: gortsplib.ProtocolUDP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := startTransportCamera(t, tt.camera)
			up := newTestServer(t)
			r := NewRelay(RelayConfig{Source: cam.url("cam"), Audio: true, Publish: up.url("out"), Logger: quietLogger()})
			if tt.startUDP {
				r.setTransport("udp")
			}
			runRelay(t, r)
			waitFor(t, 20*time.Second, "relaying", func() bool {
				return r.Stats().Relaying && up.snapshot("out").videoFrames > 25
			})
			sent, got := countWindow(cam.testServer, "cam", up, "out", 2*time.Second)
			if got < sent*90/100 {
				t.Errorf("upstream got %d video frames, camera sent %d: want >= 90%%", got, sent)
			}
			want := map[gortsplib.Protocol]string{gortsplib.ProtocolTCP: "tcp", gortsplib.ProtocolUDP: "udp"}[tt.want]
			if st := r.Stats(); st.Transport != want {
				t.Errorf("Stats.Transport = %q, want %q", st.Transport, want)
			}
			if cam.setupsOver(tt.tried) == 0 {
				t.Errorf("no SETUP over %v was asked: the fallback was not exercised", tt.tried)
			}
		})
	}
}
