package rtsp

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	cam := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 30)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })

	res, err := Probe(context.Background(), cam.url("cam"), "", "", 2*time.Second)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if len(res.Tracks) != 2 {
		t.Fatalf("Probe found %d tracks, want video and audio: %+v", len(res.Tracks), res.Tracks)
	}
	v, a := res.Tracks[0], res.Tracks[1]
	if v.Codec != "H264" || v.Width != 640 || v.Height != 360 || v.ClockRate != 90000 {
		t.Errorf("video track = %+v, want H264 640x360 at 90 kHz", v)
	}
	if v.FPS < 15 || v.FPS > 35 || v.BitrateBps <= 0 {
		t.Errorf("video track measured %.1f fps and %d bit/s, want about 25 fps", v.FPS, v.BitrateBps)
	}
	if a.Codec != "AAC" || a.Packets == 0 {
		t.Errorf("audio track = %+v, want AAC with packets", a)
	}
}

func TestProbeFailsWithoutMedia(t *testing.T) {
	cam := newTestServer(t)
	_, err := Probe(context.Background(), cam.url("nothing"), "", "", time.Second)
	if err == nil {
		t.Fatal("Probe of a path with no stream succeeded")
	}
	if want := "DESCRIBE refused: 404"; !strings.Contains(err.Error(), want) {
		t.Errorf("Probe error = %q, want it to contain %q", err, want)
	}
}
