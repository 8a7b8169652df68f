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

func TestCamerasInOneProcess(t *testing.T) {
	t.Parallel()
	paths := []string{"/stream1", "/Streaming/Channels/101", "/h264/ch1/main/av_stream"}
	var cams []*Camera
	for _, p := range paths {
		cam, err := NewCamera(CameraConfig{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		runSim(t, cam.Run)
		cams = append(cams, cam)
	}
	seen := make(map[string]bool)
	for i, cam := range cams {
		if !strings.HasSuffix(cam.URL(), paths[i]) || seen[cam.URL()] {
			t.Fatalf("URL() = %s, want a port of its own and path %s", cam.URL(), paths[i])
		}
		seen[cam.URL()] = true
		if r := ffprobe(t, cam.URL(), "tcp", 0); len(r.Streams) != 2 {
			t.Errorf("%s: %d tracks, want video and audio", cam.URL(), len(r.Streams))
		}
	}
	if err := ffprobeErr(t, strings.TrimSuffix(cams[0].URL(), paths[0])+"/nosuch"); err == nil {
		t.Errorf("ffprobe of an unknown path succeeded, want 404")
	}
}
