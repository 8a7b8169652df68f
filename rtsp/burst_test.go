package rtsp

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// An upstream start sends the GOP cache at once (issue 15): with a 5 s pre-roll of a 2 Mbit/s
// camera that is about 1.5 MB in one burst. The burst goes at the upstream's pace, never at the
// camera's: the camera side goes on reading at the camera's rate while the upstream takes it
// (the sim camera drops nothing, as a real camera whose send buffer fills would), the camera
// session stays up, and what the upstream cannot carry is dropped on our side and counted.
func TestGOPBurstNeverStallsTheCamera(t *testing.T) {
	ffmpeg := testtool.Need(t, "ffmpeg", "ffmpeg")
	clip := shapedClip(t, ffmpeg, "1280x720", "2M")
	cases := []struct {
		name string
		// rate shapes the link to the server, which then lives in a network namespace of its
		// own (serverBehindShapedLink); "" is loopback, where the burst goes at memory speed.
		rate string
		// budget, when set, is the cache budget: 1 MiB holds less than the pre-roll, so the
		// cache sits at its bound and the replay must make room while it runs. With these 1 s
		// GOPs the link takes the oldest GOP before room is needed; the race a 4 s GOP loses
		// is TestPreRollReplaySkipsAGOPRatherThanLoseTheWindow's.
		budget int64
	}{
		{name: "loopback"},
		{name: "link of 3 Mbit/s", rate: "3mbit"},
		{name: "link of 3 Mbit/s, cache at its bound", rate: "3mbit", budget: 1 << 20},
		{name: "link of 500 kbit/s", rate: "500kbit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cam, err := sim.NewCamera(sim.CameraConfig{Video: clip})
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = cam.Run(ctx) }()
			var server *sim.MediaServer
			if tc.rate == "" {
				if server, err = sim.NewMediaServer(sim.MediaServerConfig{}); err != nil {
					t.Fatal(err)
				}
				go func() { _ = server.Run(ctx) }()
			} else {
				testtool.Need(t, "iproute2", "ip", "tc")
				t.Cleanup(func() { dropLink(t, shapedDev) })
				server = serverBehindShapedLink(t, ctx)
				run(t, "tc", "qdisc", "change", "dev", shapedDev, "root", "tbf", "rate", tc.rate,
					"burst", "32kbit", "latency", "400ms")
			}
			const preRoll = 5 * time.Second
			budget := NewCacheBudget(DefaultCacheBudgetBytes)
			if tc.budget > 0 {
				budget = NewCacheBudget(tc.budget)
			}
			r, _ := startRelay(t, RelayConfig{Source: cam.URL(), Audio: true, Publish: server.URL() + "porch",
				Gated: true, PreRoll: preRoll, Cache: budget})
			waitFor(t, 30*time.Second, "the pre-roll cached", func() bool {
				c := r.Stats().Cache
				return c.PreRoll >= preRoll+time.Second || c.Shrinks > 0 && c.PreRoll >= 2*time.Second
			})
			cached := r.Stats().Cache
			burst := cached.Bytes
			if burst < 512<<10 {
				t.Fatalf("cache holds %d B, want a burst of at least 512 KiB", burst)
			}
			if n := cam.Dropped(); n != 0 {
				t.Fatalf("the sim camera dropped %d packets before the gate opened", n)
			}

			opened := time.Now()
			r.PublishWindow(opened.Add(-preRoll), opened.Add(time.Minute))
			// The camera sends a frame every 40 ms; the longest the relay went without taking
			// one is how long its reader stalled. The camera holds about 2 s (its 256-packet
			// queue and the sockets' buffers) before it drops.
			var stall time.Duration
			last, lastAt := r.Stats().FramesIn, opened
			for time.Since(opened) < 6*time.Second {
				time.Sleep(50 * time.Millisecond)
				now := time.Now()
				if n := r.Stats().FramesIn; n != last {
					last, lastAt = n, now
				}
				stall = max(stall, now.Sub(lastAt))
			}
			st := r.Stats()
			got := stream(server, "porch")
			t.Logf("burst %d B; the reader's longest pause %v; frames in %d, out %d, dropped %d; server got %d B",
				burst, stall, st.FramesIn, st.FramesOut, st.Dropped, got.Bytes)
			if n := cam.Dropped(); n != 0 {
				t.Errorf("the sim camera dropped %d packets for the relay while the burst went upstream, want 0", n)
			}
			if stall > time.Second {
				t.Errorf("the camera side took no frame for %v while the burst went upstream, want under 1 s", stall)
			}
			if st.Reconnects != 0 || !st.Online {
				t.Errorf("%d reconnects, camera online %v; want one session each side (last error %q)",
					st.Reconnects, st.Online, st.LastError)
			}
			if got.Publishes != 1 || got.VideoFrames == 0 || !got.FirstVideoFrameKey || got.VideoTSBackwards != 0 {
				t.Errorf("server: %d publishes, %d video frames (%d back in time), first a keyframe with its "+
					"parameter sets %v; want one publish from a keyframe, in order",
					got.Publishes, got.VideoFrames, got.VideoTSBackwards, got.FirstVideoFrameKey)
			}
			if first := server.VideoFrames("porch"); tc.rate == "3mbit" &&
				(len(first) == 0 || opened.Sub(first[0].NTP) < cached.PreRoll-time.Second) {
				t.Errorf("the server's first frame is not from the cache's %v before the opening: %v",
					cached.PreRoll, first[:min(1, len(first))])
			}
			if tc.rate == "3mbit" && st.Cache.Overflows != cached.Overflows {
				t.Errorf("the cache overflowed %d times while the replay ran over a link that carries it",
					st.Cache.Overflows-cached.Overflows)
			}
			if tc.rate == "500kbit" && st.Dropped == 0 {
				t.Errorf("a 500 kbit/s link carried a 2 Mbit/s camera and its burst, and the relay dropped nothing; " +
					"want what it could not carry dropped and counted")
			}
		})
	}
}

// stream is a path's counters on the sim server, zero before anything was announced on it.
func stream(server *sim.MediaServer, name string) sim.StreamStats {
	st, _ := server.Stream(name)
	return st
}

// dropLink deletes the veth pair of serverBehindShapedLink (both ends go together), which would
// otherwise live on as long as anything holds its namespace, so that the next case can make it.
func dropLink(t *testing.T, dev string) {
	if out, err := exec.Command("ip", "link", "del", dev).CombinedOutput(); err != nil {
		t.Logf("ip link del %s: %v: %s", dev, err, out)
	}
}
