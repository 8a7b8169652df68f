package rtsp

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// A switch to the substream and back happens at a keyframe, with the timestamps going on as
// if nothing happened and no frame of either stream lost on the way. Over RTSP it keeps the
// upstream session (the SDPs differ only in their parameter sets, which go in band); over RTMP,
// whose decoder configuration is fixed at publish, each switch publishes again.
func TestQualitySwitchKeepsTheUpstreamSessionAndItsTimestamps(t *testing.T) {
	ffmpeg := testtool.Need(t, "ffmpeg", "ffmpeg")
	subClip := shapedClip(t, ffmpeg, "320x180", "150k")
	for _, tc := range []struct {
		scheme    string
		publishes int
	}{{"rtsp", 1}, {"rtmp", 3}} {
		t.Run(tc.scheme, func(t *testing.T) { testQualitySwitch(t, subClip, tc.scheme, tc.publishes) })
	}
}

func testQualitySwitch(t *testing.T, subClip []byte, scheme string, publishes int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	main, err := sim.NewCamera(sim.CameraConfig{}) // the embedded 640x360 clip
	if err != nil {
		t.Fatal(err)
	}
	sub, err := sim.NewCamera(sim.CameraConfig{Video: subClip})
	if err != nil {
		t.Fatal(err)
	}
	server, err := sim.NewMediaServer(sim.MediaServerConfig{RTMPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []func(context.Context) error{main.Run, sub.Run, server.Run} {
		go run(ctx) //nolint:errcheck // ends with ctx
	}
	publish := server.URL() + "cam"
	if scheme == "rtmp" {
		publish = server.RTMPURL() + "cam"
	}
	r := NewRelay(RelayConfig{
		Source: main.URL(), Substream: sub.URL(), Transport: "tcp", Audio: true,
		Publish: publish, Quality: NewQualityGovernor(),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx) //nolint:errcheck // a valid config: ends with ctx
	}()
	defer func() { cancel(); <-done }()

	until := func(what string, within time.Duration, ok func(Stats) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok(r.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("not %s within %s: %+v", what, within, r.Stats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until("relaying", 10*time.Second, func(s Stats) bool { return s.Relaying && s.FramesOut > 25 })
	// Joining the camera mid-GOP drops up to a GOP before its first keyframe; not the switch's.
	before := r.Stats().Dropped
	for _, step := range []struct {
		sub    bool
		width  int
		wanted string
	}{{true, 320, "sub"}, {false, 640, "main"}} {
		r.wantQuality(step.sub)
		until("on "+step.wanted, 10*time.Second, func(s Stats) bool { return s.Quality == step.wanted })
		until("showing the new picture size", 5*time.Second, func(s Stats) bool { return s.Width == step.width })
		time.Sleep(2 * time.Second)
	}
	// Let the last frames arrive: those sent are all at the server within a few seconds, even on
	// a loaded machine.
	var st sim.StreamStats
	var s Stats
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, _ = server.Stream("cam")
		s = r.Stats()
		if st.VideoFrames+2 >= s.FramesOut && (scheme == "rtsp" || st.VideoFrames+2 >= s.FramesIn-before) ||
			time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d frames relayed, %d at the server, %d publishes, largest timestamp step %d", s.FramesOut,
		st.VideoFrames, st.Publishes, st.VideoTSMaxStep)
	if scheme == "rtmp" {
		checkRTMPSwitch(t, st, s, before, publishes)
		return
	}
	if st.Publishes != publishes {
		t.Errorf("%d publishes, want %d", st.Publishes, publishes)
	}
	if !st.FirstVideoFrameKey {
		t.Error("the latest publish did not start with a keyframe and its parameter sets")
	}
	if st.VideoTSBackwards != 0 || st.VideoTSMaxStep > 90000/5 {
		t.Errorf("timestamps: %d steps back, largest step %d ticks (a frame is 3600)", st.VideoTSBackwards,
			st.VideoTSMaxStep)
	}
	if s.Dropped-before > 2 || st.VideoFrames+2 < s.FramesOut {
		t.Errorf("frames: %d out, %d dropped by the switches, %d at the server", s.FramesOut, s.Dropped-before,
			st.VideoFrames)
	}
}

// checkRTMPSwitch asserts of the RTMP publishes what the RTSP session shows: each switch
// published again, each publish starting with its sequence header and then a keyframe, the
// decode times going on across the publishes as one timeline with no step over two frames
// (25 fps), none of 0 and none back, and every frame the relay took from either camera stream at the
// server, decodable. before is what the relay dropped when it joined the camera.
func checkRTMPSwitch(t *testing.T, st sim.StreamStats, s Stats, before uint64, publishes int) {
	t.Helper()
	if st.Publishes != publishes || len(st.RTMP) != publishes {
		t.Errorf("%d publishes (%d recorded), want one more per switch: %d", st.Publishes, len(st.RTMP), publishes)
	}
	for i, p := range st.RTMP {
		t.Logf("publish %d: %d frames, decode times %s to %s", i, p.Frames, p.FirstDTS, p.LastDTS)
		if i > 0 {
			// What a live viewer waits at a re-publish: the new session's set-up (its first
			// frames then come at once from the GOP cache).
			prev := st.RTMP[i-1]
			t.Logf("publish %d: admitted %s after the last frame of the one before, first frame %s after it",
				i, p.Admitted.Sub(prev.LastArrival), p.FirstArrival.Sub(prev.LastArrival))
		}
		if !p.SequenceHeaderFirst || !p.FirstFrameKey || p.Undecodable != 0 {
			t.Errorf("publish %d: sequence header first %v, first frame a keyframe %v, %d frames undecodable",
				i, p.SequenceHeaderFirst, p.FirstFrameKey, p.Undecodable)
		}
	}
	if st.VideoTimeBackwards != 0 || st.VideoTimeStill != 0 || st.VideoTimeMaxStep > 80*time.Millisecond {
		t.Errorf("timeline: %d steps back, %d of 0, largest step %s (a frame is 40ms)", st.VideoTimeBackwards,
			st.VideoTimeStill, st.VideoTimeMaxStep)
	}
	if s.Dropped-before > 2 || st.VideoFrames+2 < s.FramesIn-before {
		t.Errorf("frames: %d from the cameras after joining, %d dropped by the switches, %d decodable at the server",
			s.FramesIn-before, s.Dropped-before, st.VideoFrames)
	}
}
