package rtsp

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
)

// restart closes the server and starts a new one on the same address, as a server restart does.
func (s *testServer) restart(t *testing.T, down time.Duration) {
	t.Helper()
	s.srv.Close()
	time.Sleep(down)
	s.mu.Lock()
	s.streams = map[string]*testStream{}
	s.srv = &gortsplib.Server{Handler: s, RTSPAddress: s.addr, ReadTimeout: 5 * time.Second}
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.srv.Start()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart test server: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(s.srv.Close)
}

// TestCameraOutage kills one camera for a few seconds: its video must be back upstream within
// 3 s of its return, on the same upstream session, while a second relay is undisturbed.
func TestCameraOutage(t *testing.T) {
	cam := newTestServer(t)
	up := newTestServer(t)
	camA := startCamera(t, cam.url("a"), "libx264", "", 60)
	startCamera(t, cam.url("b"), "libx264", "", 60)
	waitFor(t, 10*time.Second, "cameras to publish", func() bool {
		return cam.snapshot("a").videoFrames > 0 && cam.snapshot("b").videoFrames > 0
	})
	a, _ := startRelay(t, RelayConfig{Source: cam.url("a"), Publish: up.url("a")})
	b, _ := startRelay(t, RelayConfig{Source: cam.url("b"), Publish: up.url("b")})
	waitFor(t, 10*time.Second, "both relaying", func() bool { return a.Stats().Relaying && b.Stats().Relaying })

	camA.stop()
	waitFor(t, 10*time.Second, "relay to notice the camera is gone", func() bool { return !a.Stats().Online })
	bBefore := up.snapshot("b").videoFrames
	time.Sleep(3 * time.Second)
	if got := up.snapshot("b").videoFrames - bBefore; got < 50 {
		t.Errorf("second relay forwarded %d frames during the first camera's 3 s outage, want about 75", got)
	}

	startCamera(t, cam.url("a"), "libx264", "", 60)
	waitFor(t, 10*time.Second, "camera to return", func() bool { return cam.snapshot("a").videoFrames > 0 })
	returned := time.Now()
	aBefore := up.snapshot("a").videoFrames
	waitFor(t, 10*time.Second, "video upstream again", func() bool { return up.snapshot("a").videoFrames > aBefore })
	if d := time.Since(returned); d > 3*time.Second {
		t.Errorf("video was back upstream %v after the camera returned, want within 3 s", d)
	}
	up.mu.Lock()
	announces := up.announces
	up.mu.Unlock()
	if announces != 2 {
		t.Errorf("upstream saw %d ANNOUNCEs, want 2 (one per relay): an unchanged camera must not re-announce", announces)
	}
	if st := b.Stats(); st.Reconnects != 0 || !st.Relaying {
		t.Errorf("second relay disturbed: %+v", st)
	}
	if st := a.Stats(); st.Reconnects == 0 || st.LastError == "" {
		t.Errorf("first relay stats after outage: reconnects %d, last error %q", st.Reconnects, st.LastError)
	}
}

// TestCameraChangesCodec restarts a camera with another codec: upstream must be announced again.
func TestCameraChangesCodec(t *testing.T) {
	cam := newTestServer(t)
	up := newTestServer(t)
	c := startCamera(t, cam.url("cam"), "libx264", "", 60)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
	r, _ := startRelay(t, RelayConfig{Source: cam.url("cam"), Publish: up.url("out")})
	waitFor(t, 10*time.Second, "relaying", func() bool { return r.Stats().Relaying })
	c.stop()
	waitFor(t, 10*time.Second, "relay to notice the camera is gone", func() bool { return !r.Stats().Online })
	startCamera(t, cam.url("cam"), "libx265", "", 60)
	waitFor(t, 15*time.Second, "H.265 upstream", func() bool {
		s := up.snapshot("out")
		return s.desc != nil && s.desc.Medias[0].Formats[0].RTPMap() == "H265/90000" && s.videoFrames > 0
	})
	if got := up.snapshot("out").firstNALs; len(got) == 0 || got[0] != h265NALVPS {
		t.Errorf("first NAL types after re-announce = %v, want VPS first", got)
	}
	if st := r.Stats(); st.Codec != "H265" {
		t.Errorf("Stats codec = %q, want H265", st.Codec)
	}
}

// TestUpstreamOutage restarts the upstream server: video must be back within 3 s of its return
// and the camera session must stay up throughout.
func TestUpstreamOutage(t *testing.T) {
	cam := newTestServer(t)
	up := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 60)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
	r, _ := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: true, Publish: up.url("out")})
	waitFor(t, 10*time.Second, "relaying", func() bool { return r.Stats().Relaying })

	stopWatch := make(chan struct{})
	cameraDropped := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if !r.Stats().Online {
				select {
				case cameraDropped <- struct{}{}:
				default:
				}
			}
		}
	}()
	up.restart(t, 3*time.Second)
	returned := time.Now()
	waitFor(t, 10*time.Second, "video upstream again", func() bool { return up.snapshot("out").videoFrames > 0 })
	if d := time.Since(returned); d > 3*time.Second {
		t.Errorf("video was back upstream %v after the server returned, want within 3 s", d)
	}
	close(stopWatch)
	select {
	case <-cameraDropped:
		t.Error("the camera session went down during an upstream outage")
	default:
	}
	if got := up.snapshot("out").firstNALs; len(got) < 3 || got[0] != h264NALSPS || got[2] != h264NALIDR {
		t.Errorf("first NAL types after the server returned = %v, want SPS, PPS, IDR", got)
	}
}
