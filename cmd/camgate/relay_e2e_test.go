package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// relayConfig is a camgate.yaml with nothing listening but the relay.
func relayConfig(gateway, publish string, cameras ...string) string {
	return fmt.Sprintf(`gateway_id: %s
data_dir: DATA_DIR
log: {level: debug}
web: {listen: ""}
smtp: {listen: ""}
discovery: {onvif: false, mdns: false}
flussonic:
  publish: %s
cameras:
%s`, gateway, publish, strings.Join(cameras, ""))
}

func cameraYAML(id, url string, audio bool) string {
	return fmt.Sprintf("  - {id: %s, url: '%s', audio: %v}\n", id, url, audio)
}

// Acceptance 1 and 2 of issue 3: a camera made by ffmpeg, relayed by `camgate run` into the
// Flussonic stand-in and into ffmpeg's own RTSP server; both get every track asked for, at least
// 95% of the frames the camera offered, and start on a keyframe.
func TestRunRelaysCameraToFlussonicAndIndependentReceiver(t *testing.T) {
	cases := []struct {
		name           string
		vcodec, acodec string
		audio          bool
		wantTracks     []string // codec names, as both receivers report them
	}{
		{"H.264 and AAC", "h264", "aac", true, []string{"h264", "aac"}},
		{"H.265 and G.711 A-law", "h265", "pcma", true, []string{"hevc", "pcm_alaw"}},
		{"audio false publishes video only", "h264", "aac", false, []string{"h264"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			camServer, _ := mediaServer(t, "127.0.0.1:0")
			flussonic, _ := mediaServer(t, "127.0.0.1:0")
			recvURL := fmt.Sprintf("rtsp://127.0.0.1:%d/", freePort(t))
			out := filepath.Join(t.TempDir(), "received.mkv")
			receiver := ffmpegReceiver(t, recvURL+"gwb-cam1", out)

			// One encoding, published to two paths, one per camgate: each relay's "offered"
			// count is then its own.
			urlA, urlB := camServer.URL()+"a", camServer.URL()+"b"
			toFlussonic, _ := runCamgate(t, relayConfig("gwa", flussonic.URL(), cameraYAML("cam1", urlA, tc.audio)))
			toReceiver, _ := runCamgate(t, relayConfig("gwb", recvURL, cameraYAML("cam1", urlB, tc.audio)))

			camera := ffmpegCamera(t, urlA, tc.vcodec, tc.acodec, 20, urlB)
			if err := camera.wait(t, 90*time.Second); err != nil {
				t.Fatalf("camera: %v", err)
			}
			offered := func(path string) uint64 {
				cam, _ := camServer.Stream(path)
				t.Logf("camera path %s: published %d frames, %d while camgate was reading",
					path, cam.VideoFrames, cam.VideoFramesPlayed)
				if cam.VideoFramesPlayed < cam.VideoFrames*3/4 {
					t.Fatalf("camgate read only %d of the camera's %d frames: it attached late",
						cam.VideoFramesPlayed, cam.VideoFrames)
				}
				return cam.VideoFramesPlayed
			}
			offeredA, offeredB := offered("a"), offered("b")

			// Let the last frames through, then stop: a graceful stop tears the session down,
			// which makes ffmpeg close the recording.
			waitFor(t, 10*time.Second, "the stand-in to get the last frames", func() bool {
				st, _ := flussonic.Stream("gwa-cam1")
				return time.Since(st.LastFrameAt) > time.Second
			})
			toReceiver.stop(t, syscall.SIGTERM, 10*time.Second)
			if err := receiver.wait(t, 30*time.Second); err != nil {
				t.Logf("receiver: %v", err)
			}
			toFlussonic.stop(t, syscall.SIGTERM, 10*time.Second)

			st, ok := flussonic.Stream("gwa-cam1")
			if !ok {
				t.Fatalf("the stand-in got no stream; it has %v", flussonic.Streams())
			}
			t.Logf("stand-in: %+v", st)
			if !slices.Equal(standInNames(st.Codecs), tc.wantTracks) {
				t.Errorf("stand-in tracks %v, want %v", st.Codecs, tc.wantTracks)
			}
			if !st.FirstVideoFrameKey {
				t.Error("stand-in: the first video frame was not a keyframe with its parameter sets")
			}
			if st.VideoFrames*100 < offeredA*95 {
				t.Errorf("stand-in got %d video frames of %d offered: under 95%%", st.VideoFrames, offeredA)
			}

			streams, firstKey := probeFile(t, out)
			var names []string
			var video uint64
			for _, s := range streams {
				names = append(names, s.CodecName)
				if s.CodecType == "video" {
					video = frames(s)
					if s.Width != 640 || s.Height != 360 {
						t.Errorf("receiver: video %dx%d, want 640x360", s.Width, s.Height)
					}
				}
			}
			t.Logf("receiver: %+v", streams)
			if !slices.Equal(names, tc.wantTracks) {
				t.Errorf("receiver tracks %v, want %v", names, tc.wantTracks)
			}
			if !firstKey {
				t.Error("receiver: the first video packet is not a keyframe")
			}
			if video*100 < offeredB*95 {
				t.Errorf("receiver got %d video frames of %d offered: under 95%%", video, offeredB)
			}
		})
	}
}

// standInNames maps the stand-in's codec names to ffprobe's, so one table serves both receivers.
func standInNames(codecs []string) []string {
	out := make([]string, len(codecs))
	for i, c := range codecs {
		switch c {
		case "h265":
			c = "hevc"
		case "pcma":
			c = "pcm_alaw"
		}
		out[i] = c
	}
	return out
}

// framesResume measures how long after `since` the stand-in's frame count for name grows past
// what it was at `since`.
func framesResume(t *testing.T, m *sim.MediaServer, name string, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	before, _ := m.Stream(name)
	var took time.Duration
	waitFor(t, within, name+" frames to flow again", func() bool {
		st, _ := m.Stream(name)
		took = time.Since(since)
		return st.VideoFrames > before.VideoFrames+2
	})
	return took
}

// Acceptance 3 of issue 3: camera and server outages of 10 s; video is back within 3 s of the
// peer's return, and a second camera relayed alongside is not disturbed by the first one's outage.
func TestRunRecoversFromCameraAndServerOutages(t *testing.T) {
	camServer, _ := mediaServer(t, "127.0.0.1:0")
	flussonicAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	flussonic, stopFlussonic := mediaServer(t, flussonicAddr)

	neighbour, err := sim.NewCamera(sim.CameraConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testtool.Go(ctx, t, "neighbour", neighbour.Run)

	camURL := camServer.URL() + "cam1"
	camera := ffmpegCamera(t, camURL, "h264", "aac", 0)
	runCamgate(t, relayConfig("gw", flussonic.URL(), cameraYAML("cam1", camURL, true),
		cameraYAML("cam2", neighbour.URL(), true)))
	waitFor(t, 30*time.Second, "both cameras relayed", func() bool {
		a, _ := flussonic.Stream("gw-cam1")
		b, _ := flussonic.Stream("gw-cam2")
		return a.VideoFrames > 25 && b.VideoFrames > 25
	})

	// The camera dies for 10 s. The neighbour keeps flowing, second by second, on one session.
	camera.kill()
	before, _ := flussonic.Stream("gw-cam2")
	last := before.VideoFrames
	for i := 0; i < 10; i++ {
		time.Sleep(time.Second)
		st, _ := flussonic.Stream("gw-cam2")
		if st.VideoFrames <= last {
			t.Errorf("neighbour stalled during the camera outage (second %d: %d frames)", i+1, st.VideoFrames)
		}
		last = st.VideoFrames
	}
	if after, _ := flussonic.Stream("gw-cam2"); after.Publishes != before.Publishes {
		t.Errorf("neighbour re-published %d times during another camera's outage", after.Publishes-before.Publishes)
	}

	ffmpegCamera(t, camURL, "h264", "aac", 0)
	waitFor(t, 20*time.Second, "the camera to publish again", func() bool {
		st, _ := camServer.Stream("cam1")
		return st.Publishing
	})
	back := time.Now()
	if took := framesResume(t, flussonic, "gw-cam1", back, 15*time.Second); took > 3*time.Second {
		t.Errorf("after the camera's return, video took %s to flow again: want within 3s", took)
	} else {
		t.Logf("after the camera's return, video flowed again in %s", took.Round(time.Millisecond))
	}

	// The server dies for 10 s and comes back on the same address.
	stopFlussonic()
	time.Sleep(10 * time.Second)
	flussonic, _ = mediaServer(t, flussonicAddr)
	back = time.Now()
	for _, name := range []string{"gw-cam1", "gw-cam2"} {
		if took := framesResume(t, flussonic, name, back, 15*time.Second); took > 3*time.Second {
			t.Errorf("after the server's return, %s took %s to flow again: want within 3s", name, took)
		} else {
			t.Logf("after the server's return, %s flowed again in %s", name, took.Round(time.Millisecond))
		}
		if st, _ := flussonic.Stream(name); !st.FirstVideoFrameKey {
			t.Errorf("%s: the first frame after the server's return was not a keyframe with parameter sets", name)
		}
	}
}

// SIGHUP re-reads the file and restarts only the relays whose settings changed; a broken file
// keeps the running config.
func TestRunReloadRestartsOnlyChangedRelays(t *testing.T) {
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var urls []string
	for i := 0; i < 2; i++ {
		c, err := sim.NewCamera(sim.CameraConfig{})
		if err != nil {
			t.Fatal(err)
		}
		testtool.Go(ctx, t, "c", c.Run)
		urls = append(urls, c.URL())
	}
	daemon, path := runCamgate(t, relayConfig("gw", flussonic.URL(), cameraYAML("cam1", urls[0], true),
		cameraYAML("cam2", urls[1], true)))
	waitFor(t, 30*time.Second, "both relayed", func() bool {
		a, _ := flussonic.Stream("gw-cam1")
		b, _ := flussonic.Stream("gw-cam2")
		return a.VideoFrames > 10 && b.VideoFrames > 10
	})
	dataDir := filepath.Dir(path)

	rewrite := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(cfg, "DATA_DIR", dataDir)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := daemon.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(relayConfig("gw", flussonic.URL(), cameraYAML("cam1", urls[0], true), cameraYAML("cam2", urls[1], false)))
	waitFor(t, 20*time.Second, "cam2 re-published without audio", func() bool {
		st, _ := flussonic.Stream("gw-cam2")
		return st.Publishes == 2 && st.Publishing && slices.Equal(st.Codecs, []string{"h264"})
	})
	if st, _ := flussonic.Stream("gw-cam1"); st.Publishes != 1 {
		t.Errorf("cam1's settings did not change, but it was re-published (%d publishes)", st.Publishes)
	}

	rewrite("cameras: [{url: 'rtsp://h/', audoi: true}]\n")
	waitFor(t, 10*time.Second, "the reload error in the log", func() bool {
		return strings.Contains(daemon.out.String(), "cameras[0].audoi: unknown key")
	})
	time.Sleep(time.Second)
	for _, name := range []string{"gw-cam1", "gw-cam2"} {
		if st, _ := flussonic.Stream(name); !st.Publishing {
			t.Errorf("%s stopped after a broken config was rejected", name)
		}
	}
	daemon.stop(t, syscall.SIGTERM, 10*time.Second)
	if daemon.err != nil {
		t.Errorf("camgate exited with %v after SIGTERM, want 0", daemon.err)
	}
}

// Acceptance 5 of issue 3: a bad config exits 2 and names the key.
func TestRunRejectsBadConfigWithExitStatus2(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "gateway_id: gw\nflussonic: {publsh: 'rtsp://h/'}\n", "config: flussonic.publsh: unknown key"},
		{"bad publish URL", "flussonic: {publish: 'http://h/'}\n",
			"config: flussonic.publish: scheme must be rtsp, rtsps, rtmp or rtmps"},
		{"bad camera URL", "cameras: [{url: 'rtsp://[::1'}]\n", "config: cameras[0].url: not a URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "camgate.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(camgateBin, "run", "-c", path).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not name the problem %q", out, tc.want)
			}
		})
	}
}

// Issue 5: a camera without ONVIF, given only by address and credentials, has its stream path
// found among the vendors' well-known paths and is relayed.
func TestRunFindsTheStreamPathOfACameraGivenByAddress(t *testing.T) {
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	cam, err := sim.NewCamera(sim.CameraConfig{Path: "/Streaming/Channels/101", Username: "admin", Password: "addr-pass"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testtool.Go(ctx, t, "cam", cam.Run)
	addr := strings.TrimSuffix(cam.URL(), "/Streaming/Channels/101")
	runCamgate(t, relayConfig("gw", flussonic.URL(),
		fmt.Sprintf("  - {id: door, url: '%s', username: admin, password: addr-pass}\n", addr)))
	waitFor(t, 40*time.Second, "the camera found by its path and relayed", func() bool {
		st, _ := flussonic.Stream("gw-door")
		return st.VideoFrames > 25
	})
}
