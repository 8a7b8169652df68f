package rtsp

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// A switch to the substream and back happens on the same upstream session (its SDP differs
// only in its parameter sets, which go in band), at a keyframe, with the timestamps going on
// as if nothing happened and no frame of either stream lost on the way.
func TestQualitySwitchKeepsTheUpstreamSessionAndItsTimestamps(t *testing.T) {
	ffmpeg := testtool.Need(t, "ffmpeg", "ffmpeg")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	main, err := sim.NewCamera(sim.CameraConfig{}) // the embedded 640x360 clip
	if err != nil {
		t.Fatal(err)
	}
	sub, err := sim.NewCamera(sim.CameraConfig{Video: shapedClip(t, ffmpeg, "320x180", "150k")})
	if err != nil {
		t.Fatal(err)
	}
	server, err := sim.NewMediaServer(sim.MediaServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []func(context.Context) error{main.Run, sub.Run, server.Run} {
		go run(ctx) //nolint:errcheck // ends with ctx
	}
	r := NewRelay(RelayConfig{
		Source: main.URL(), Substream: sub.URL(), Transport: "tcp", Audio: true,
		Publish: server.URL() + "cam", Quality: NewQualityGovernor(),
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
	time.Sleep(time.Second) // let the last frames arrive
	st, _ := server.Stream("cam")
	s := r.Stats()
	if st.Publishes != 1 {
		t.Errorf("%d publishes: a switch re-announced", st.Publishes)
	}
	if st.VideoTSBackwards != 0 || st.VideoTSMaxStep > 90000/5 {
		t.Errorf("timestamps: %d steps back, largest step %d ticks (a frame is 3600)", st.VideoTSBackwards,
			st.VideoTSMaxStep)
	}
	if s.Dropped-before > 2 || st.VideoFrames+2 < s.FramesOut {
		t.Errorf("frames: %d out, %d dropped by the switches, %d at the server", s.FramesOut, s.Dropped-before,
			st.VideoFrames)
	}
	t.Logf("%d frames relayed, %d at the server, largest timestamp step %d", s.FramesOut, st.VideoFrames,
		st.VideoTSMaxStep)
}
