package rtsp

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// rtmpReceiver is a loopback RTMP server that takes one publisher at a time and counts what it
// sends. (ffmpeg's -listen RTMP server does not finish gortmplib's connect exchange, so the
// receiver is built on gortmplib's server side, which mediamtx uses.)
type rtmpReceiver struct {
	ln net.Listener
	wg sync.WaitGroup

	mu          sync.Mutex
	videoCodec  string
	videoFrames int
	audioFrames int
	firstIsIDR  bool
	sawFirst    bool
}

func startRTMPReceiver(t *testing.T) *rtmpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rr := &rtmpReceiver{ln: ln}
	rr.wg.Add(1)
	go func() {
		defer rr.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rr.wg.Add(1)
			go func() {
				defer rr.wg.Done()
				defer c.Close()
				_ = rr.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); rr.wg.Wait() })
	return rr
}

func (rr *rtmpReceiver) url() string { return "rtmp://" + rr.ln.Addr().String() + "/live/x" }

func (rr *rtmpReceiver) serve(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := &gortmplib.ServerConn{RW: c}
	if err := sc.Initialize(); err != nil {
		return err
	}
	if err := sc.AcceptConn(); err != nil {
		return err
	}
	r := &gortmplib.Reader{Conn: sc}
	if err := r.Initialize(); err != nil {
		return err
	}
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *codecs.H264:
			rr.mu.Lock()
			rr.videoCodec = "H264"
			rr.mu.Unlock()
			r.OnDataH264(tr, func(_, _ time.Duration, au [][]byte) {
				rr.mu.Lock()
				defer rr.mu.Unlock()
				if !hasPicture(au) {
					return // the decoder configuration, delivered as parameter sets
				}
				if !rr.sawFirst {
					rr.sawFirst, rr.firstIsIDR = true, h264.IsRandomAccess(au)
				}
				rr.videoFrames++
			})
		case *codecs.MPEG4Audio:
			r.OnDataMPEG4Audio(tr, func(time.Duration, []byte) {
				rr.mu.Lock()
				rr.audioFrames++
				rr.mu.Unlock()
			})
		}
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := r.Read(); err != nil {
			return err
		}
	}
}

func (rr *rtmpReceiver) counts() (video, audio int, firstIDR bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.videoFrames, rr.audioFrames, rr.firstIsIDR
}

func TestRelayToRTMP(t *testing.T) {
	cam := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 30)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
	rr := startRTMPReceiver(t)

	r, stop := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: true, Publish: rr.url()})
	waitFor(t, 10*time.Second, "relaying", func() bool { return r.Stats().Relaying })
	c0 := cam.snapshot("cam").videoFrames
	v0, _, _ := rr.counts()
	time.Sleep(3 * time.Second)
	c1 := cam.snapshot("cam").videoFrames
	time.Sleep(500 * time.Millisecond)
	v1, audio, firstIDR := rr.counts()
	stop()

	if sent, got := c1-c0, v1-v0; got < sent*95/100 {
		t.Errorf("RTMP receiver got %d video frames, camera sent %d meanwhile: want >= 95%%", got, sent)
	}
	if audio == 0 {
		t.Error("no AAC frames over RTMP")
	}
	if !firstIDR {
		t.Error("first video frame over RTMP is not a keyframe")
	}
}

func hasPicture(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && n[0]&0x1f >= 1 && n[0]&0x1f <= 5 {
			return true
		}
	}
	return false
}
