package rtsp

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startRelay runs a relay until the test ends and returns it with a function that stops it and
// waits for Run to return.
func startRelay(t *testing.T, cfg RelayConfig) (*Relay, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	r := NewRelay(cfg)
	return r, runRelay(t, r)
}

// runRelay runs r until the test ends and returns a function that stops it and waits for Run.
func runRelay(t *testing.T, r *Relay) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return within 15s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestRelayToRTSPServer(t *testing.T) {
	h264Key := []uint8{h264NALSPS, h264NALPPS, h264NALIDR}
	h265Key := []uint8{h265NALVPS, h265NALSPS, h265NALPPS}
	tests := []struct {
		name, vcodec, acodec string
		audio                bool
		wantCodec, wantAudio string
		keyNAL               []uint8 // expected NAL types of the first video packets
		pacer                *Pacer
		videoArgs            []string // to the camera's encoder
		minBitrate           int64    // bit/s the relay must see, when the case is about speed
	}{
		{name: "h264 aac", vcodec: "libx264", acodec: "aac", audio: true, wantCodec: "H264", wantAudio: "AAC",
			keyNAL: h264Key},
		{name: "h265 alaw", vcodec: "libx265", acodec: "pcm_alaw", audio: true, wantCodec: "H265", wantAudio: "PCMA",
			keyNAL: h265Key},
		{name: "h264 video only", vcodec: "libx264", acodec: "aac", audio: false, wantCodec: "H264", keyNAL: h264Key},
		{name: "h264 aac paced", vcodec: "libx264", acodec: "aac", audio: true, wantCodec: "H264", wantAudio: "AAC",
			keyNAL: h264Key,
			pacer:  NewPacer(0, 1)},
		// Fast enough that the kernel gathers each read (lowWater): nothing may be held back.
		{name: "h264 aac 2 Mbit/s low-water mark", vcodec: "libx264", acodec: "aac", audio: true, wantCodec: "H264",
			wantAudio: "AAC", keyNAL: h264Key,
			videoArgs: cbr2M, minBitrate: 1_500_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cam := newTestServer(t)
			up := newTestServer(t)
			startCamera(t, cam.url("cam"), tc.vcodec, tc.acodec, 30, tc.videoArgs...)
			waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })

			r, stop := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: tc.audio, Publish: up.url("out"),
				Pacer: tc.pacer})
			waitFor(t, 10*time.Second, "relaying", func() bool { return r.Stats().Relaying })
			if tc.minBitrate > 0 {
				time.Sleep(1500 * time.Millisecond) // the mark follows the rate once a second
			}
			camSent, upGot := countWindow(cam, "cam", up, "out", 3*time.Second)
			got := up.snapshot("out")
			st := r.Stats()
			stop()

			if upGot < camSent*95/100 {
				t.Errorf("upstream got %d video frames, camera sent %d meanwhile: want >= 95%%", upGot, camSent)
			}
			if n := min(len(tc.keyNAL), len(got.firstNALs)); !slicesEqual(got.firstNALs[:n], tc.keyNAL) || n < len(tc.keyNAL) {
				t.Errorf("first video NAL types upstream = %v, want %v", got.firstNALs, tc.keyNAL)
			}
			if tc.audio && got.audioPackets == 0 {
				t.Errorf("no audio packets upstream")
			}
			if !tc.audio && (got.audioPackets != 0 || len(got.desc.Medias) != 1) {
				t.Errorf("Audio=false: upstream got %d audio packets and %d tracks", got.audioPackets, len(got.desc.Medias))
			}
			if st.Codec != tc.wantCodec || st.AudioCodec != tc.wantAudio {
				t.Errorf("Stats codecs = %q/%q, want %q/%q", st.Codec, st.AudioCodec, tc.wantCodec, tc.wantAudio)
			}
			if st.Width != 640 || st.Height != 360 {
				t.Errorf("Stats size = %dx%d, want 640x360", st.Width, st.Height)
			}
			// Rates come from samples the camera goroutine takes as packets arrive.
			if st.FPS < 20 || st.FPS > 30 || st.BitrateBps <= 0 {
				t.Errorf("Stats rate = %.1f fps, %d bit/s; want about 25 fps and some bits", st.FPS, st.BitrateBps)
			}
			if st.BitrateBps < tc.minBitrate {
				t.Errorf("Stats bitrate = %d bit/s, want at least %d for this case", st.BitrateBps, tc.minBitrate)
			}
			if st.FramesOut == 0 || st.FramesIn < st.FramesOut {
				t.Errorf("Stats frames in/out = %d/%d", st.FramesIn, st.FramesOut)
			}
		})
	}
}

// countWindow counts the video frames the camera published during d and how many of those
// same frames, recognised by RTP timestamp, reached upstream. Matching by timestamp rather than
// by wall clock keeps the count honest however far upstream lags under load; it holds while the
// camera session has not restarted, when the relay passes timestamps through unchanged.
func countWindow(cam *testServer, camPath string, up *testServer, upPath string, d time.Duration) (sent, got int) {
	last := func(ts []uint32) uint32 { return ts[len(ts)-1] }
	s0 := cam.snapshot(camPath)
	time.Sleep(d)
	s1 := cam.snapshot(camPath)
	if len(s0.frameTS) == 0 || len(s1.frameTS) <= len(s0.frameTS) {
		return len(s1.frameTS) - len(s0.frameTS), 0
	}
	t0, t1 := last(s0.frameTS), last(s1.frameTS)
	inWindow := func(ts uint32) bool { return int32(ts-t0) > 0 && int32(ts-t1) <= 0 }
	for _, ts := range s1.frameTS[len(s0.frameTS):] {
		if inWindow(ts) {
			sent++
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := up.snapshot(upPath)
		got = 0
		reached := false
		for _, ts := range u.frameTS {
			if inWindow(ts) {
				got++
			}
			reached = reached || int32(ts-t1) >= 0
		}
		if reached || time.Now().After(deadline) {
			return sent, got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func slicesEqual(a, b []uint8) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRelayToFFmpeg checks the relayed stream with programs nobody here wrote: ffmpeg receives
// the RECORD session into a file and ffprobe counts what it holds.
func TestRelayToFFmpeg(t *testing.T) {
	ff := needTool(t, "ffmpeg", "ffmpeg")
	needTool(t, "ffprobe", "ffmpeg")
	cam := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 6)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })

	out := tempFile(t, "out.mkv")
	recvURL := "rtsp://" + freeAddr(t) + "/x"
	recv := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-rtsp_flags", "listen", "-timeout", "20",
		"-i", recvURL, "-c", "copy", "-y", out)
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	recvDone := make(chan error, 1)
	go func() { recvDone <- recv.Wait() }()
	t.Cleanup(func() { _ = recv.Process.Kill() })

	r, stop := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: true, Publish: recvURL})
	waitFor(t, 10*time.Second, "relaying", func() bool { return r.Stats().Relaying })
	camStart := cam.snapshot("cam").videoFrames
	waitFor(t, 15*time.Second, "camera to finish", func() bool { return !r.Stats().Online })
	camSent := cam.snapshot("cam").videoFrames - camStart
	st := r.Stats()
	stop()
	select {
	case err := <-recvDone:
		if err != nil {
			// What it wrote is checked below; how it exited is only worth knowing.
			t.Logf("receiving ffmpeg: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("receiving ffmpeg did not finish after the relay stopped")
	}

	video, audio, firstKey := ffprobeCounts(t, out)
	if video < camSent*95/100 {
		t.Errorf("ffprobe counts %d video frames, camera sent %d while relaying: want >= 95%% (relay: %d frames in, %d "+
			"out, %d dropped, %d reconnects, last error %q)",
			video, camSent, st.FramesIn, st.FramesOut, st.Dropped, st.Reconnects, st.LastError)
	}
	if audio == 0 {
		t.Error("no audio frames in the received file")
	}
	if !firstKey {
		t.Error("first video frame in the received file is not a keyframe")
	}
}

// ffprobeCounts returns the video and audio frame counts of a media file and whether its first
// video frame is a keyframe.
func ffprobeCounts(t *testing.T, file string) (video, audio int, firstKey bool) {
	t.Helper()
	fp := needTool(t, "ffprobe", "ffmpeg")
	b, err := exec.Command(fp, "-v", "error", "-count_frames", "-show_streams", "-of", "json", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var res struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			Frames    string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Streams {
		n, _ := strconv.Atoi(s.Frames)
		switch s.CodecType {
		case "video":
			video = n
		case "audio":
			audio = n
		}
	}
	first, err := exec.Command(fp, "-v", "error", "-select_streams", "v", "-read_intervals", "%+#1",
		"-show_entries", "frame=key_frame,pict_type", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe first frame: %v", err)
	}
	return video, audio, strings.HasPrefix(strings.TrimSpace(string(first)), "1,I")
}
