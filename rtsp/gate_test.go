package rtsp

import (
	"testing"
	"time"
)

// A gated relay (relay modes on_demand and motion) publishes nothing until PublishUntil opens
// it, then starts from the cached keyframe at once, and ends its upstream session when the
// window is over; the camera side stays connected throughout.
func TestGatedRelayPublishesOnlyWhileOpen(t *testing.T) {
	cam := newTestServer(t)
	up := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 60, "-g", "100", "-r", "25")
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
	r, _ := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: true, Publish: up.url("out"), Gated: true})
	waitFor(t, 15*time.Second, "a GOP cached", func() bool {
		st := r.Stats()
		return st.Online && st.Cache.Frames > 25
	})
	if got := up.snapshot("out"); got.videoFrames != 0 || !got.recordAt.IsZero() {
		t.Fatalf("a shut gate published %d frames (RECORD at %v)", got.videoFrames, got.recordAt)
	}

	const window = 3 * time.Second
	opened := time.Now()
	r.PublishUntil(opened.Add(window))
	waitFor(t, 5*time.Second, "video upstream", func() bool { return up.snapshot("out").videoFrames > 0 })
	got := up.snapshot("out")
	if d := got.firstVideoAt.Sub(opened); d > time.Second {
		t.Errorf("first video %v after the gate opened, want within 1 s", d)
	}
	if n := got.firstNALs; len(n) < 3 || n[0] != h264NALSPS || n[1] != h264NALPPS || n[2] != h264NALIDR {
		t.Errorf("first NAL types = %v, want SPS, PPS, IDR", n)
	}

	time.Sleep(time.Until(opened.Add(window + 1500*time.Millisecond)))
	ended := up.snapshot("out")
	if late := ended.lastFrameAt.Sub(opened.Add(window)); late > 500*time.Millisecond {
		t.Errorf("last frame %v after the window ended, want the session over at its end", late)
	}
	time.Sleep(time.Second)
	if after := up.snapshot("out"); after.videoFrames != ended.videoFrames {
		t.Errorf("%d frames arrived after the window", after.videoFrames-ended.videoFrames)
	}
	if st := r.Stats(); st.Relaying || !st.Online {
		t.Errorf("after the window: relaying %v, camera online %v; want false, true", st.Relaying, st.Online)
	}

	// Open again: the next window starts from the cache just as fast.
	reopened := time.Now()
	r.PublishUntil(reopened.Add(window))
	waitFor(t, 5*time.Second, "video upstream again", func() bool {
		return up.snapshot("out").videoFrames > ended.videoFrames
	})
	if d := up.snapshot("out").firstVideoAt.Sub(reopened); d > time.Second {
		t.Errorf("second window: first video %v after the gate opened, want within 1 s", d)
	}
	r.PublishUntil(time.Time{})
}
