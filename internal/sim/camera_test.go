package sim

import (
	"strings"
	"testing"
)

func TestCameraServesClipToFFprobe(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			// A 2 s loop: 5 s of reading crosses the loop point twice.
			cam, err := NewCamera(CameraConfig{Addr: "127.0.0.1:0", clipFrames: 50})
			if err != nil {
				t.Fatal(err)
			}
			runSim(t, cam.Run)

			r := ffprobe(t, cam.URL(), transport, 5)
			v, ok := r.stream("video")
			if !ok || v.CodecName != "h264" || v.Width != 640 || v.Height != 360 {
				t.Errorf("video stream = %+v, want h264 640x360", v)
			}
			a, ok := r.stream("audio")
			if !ok || a.CodecName != "aac" {
				t.Errorf("audio stream = %+v, want aac", a)
			}
			for _, s := range []probeStream{v, a} {
				n, last := 0, int64(-1<<62)
				keys := 0
				for _, p := range r.Packets {
					if p.StreamIndex != s.Index || p.PTS == nil {
						continue
					}
					if *p.PTS <= last {
						t.Fatalf("%s packet %d: pts %d after %d, want increasing across loops", s.CodecType, n, *p.PTS, last)
					}
					last = *p.PTS
					n++
					if strings.Contains(p.Flags, "K") {
						keys++
					}
				}
				// 5 s at 25 fps is 125 frames; 16 kHz AAC is about 78 units. Leave room for a
				// loaded machine.
				if n < 50 {
					t.Errorf("%s: %d packets in 5 s, want a continuous stream", s.CodecType, n)
				}
				if s.CodecType == "video" && keys < 3 {
					t.Errorf("video: %d keyframes in 5 s, want one a second", keys)
				}
			}
		})
	}
}

func TestCameraAuth(t *testing.T) {
	t.Parallel()
	cam, err := NewCamera(CameraConfig{Path: "/live", Username: "admin", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, cam.Run)
	withCreds := strings.Replace(cam.URL(), "rtsp://", "rtsp://admin:s3cret@", 1)

	r := ffprobe(t, withCreds, "tcp", 0)
	if _, ok := r.stream("video"); !ok {
		t.Errorf("with the right credentials: streams = %+v, want video", r.Streams)
	}
	for _, url := range []string{cam.URL(), strings.Replace(cam.URL(), "rtsp://", "rtsp://admin:wrong@", 1)} {
		if err := ffprobeErr(t, url); err == nil {
			t.Errorf("ffprobe %s succeeded, want it refused", url)
		}
	}
}
