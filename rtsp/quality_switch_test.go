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
		if st.VideoFrames+2 >= s.FramesOut || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d frames relayed, %d at the server, %d publishes, largest timestamp step %d", s.FramesOut,
		st.VideoFrames, st.Publishes, st.VideoTSMaxStep)
	if scheme == "rtmp" {
		// Each switch published again. The stand-in's RTMP side counts no timestamps or
		// parameter sets, and what a new RTMP session costs is not the switch's to answer for.
		// At least the first switch's new publish has been counted; the stand-in is sometimes
		// late to count the second.
		if st.Publishes < publishes-1 {
			t.Errorf("%d publishes, want a new one per switch (%d in all)", st.Publishes, publishes)
		}
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
