package rtsp

import (
	"testing"
	"time"
)

// preRollForwarder is a cached forwarder keeping preRoll of whole GOPs (relay mode motion).
func preRollForwarder(tb testing.TB, budget *CacheBudget, preRoll time.Duration) *forwarder {
	f := cachedForwarder(tb, budget, 512)
	f.cache.preRoll = preRoll
	return f
}

// videoFrames is the timestamps of the video frames (not parameter sets) of popped packets,
// and whether the first video packet was the SPS.
func videoFrames(got []popped) (ts []uint32, startsWithSPS bool) {
	for i, p := range got {
		if p.track != 0 {
			continue
		}
		if len(ts) == 0 && i < 3 && p.nal == h264NALSPS {
			startsWithSPS = true
		}
		if p.nal != h264NALSPS && p.nal != h264NALPPS {
			ts = append(ts, p.ts)
		}
	}
	return ts, startsWithSPS
}

// A window with a pre-roll starts at the newest cached keyframe at or before its from: six 1 s
// GOPs cached with a 3 s pre-roll, a window from 3 s ago gets the parameter sets, that
// keyframe and everything since with the camera's timestamps and arrival times, one frame
// step at a time into the live stream. A window without from (on_demand, or a reconnect
// inside a window) starts at the latest keyframe, as the GOP cache always did.
func TestPreRollReplaysFromTheKeyframeBeforeFrom(t *testing.T) {
	t0 := time.Now().Add(-6 * time.Second)
	f := preRollForwarder(t, NewCacheBudget(DefaultCacheBudgetBytes), 3*time.Second)
	f.park(true) // a shut gate: the camera's packets go only to the cache
	ts, at := uint32(90000), t0
	for range 6 {
		ts, at = pushGOP(f, ts, 25, 800, at)
	}
	st := f.cacheStats()
	if st.PreRoll < 3*time.Second || st.PreRoll > 5*time.Second {
		t.Fatalf("cache reaches back %s (%+v), want 3 s of pre-roll, its slack and at most a GOP more", st.PreRoll, st)
	}
	from := at.Add(-3 * time.Second)
	f.restartSink(at, from)
	pushGOP(f, ts, 1, 800, at) // live, during the replay
	got := drainAll(f)
	frames, sps := videoFrames(got)
	if !sps || len(got) < 3 || got[2].nal != h264NALIDR {
		t.Fatalf("replay starts %v, want SPS, PPS, IDR", got[:min(3, len(got))])
	}
	// GOPs began at t0, t0+1s, ...: the newest at or before from = t0+3s is the fourth.
	if want := uint32(90000 + 3*25*3600); frames[0] != want || !got[2].at.Equal(t0.Add(3*time.Second)) {
		t.Errorf("replay starts at ts %d arriving %v, want the keyframe at ts %d that arrived 3 s ago",
			frames[0], got[2].at.Sub(t0), want)
	}
	if len(frames) != 3*25+1 {
		t.Errorf("%d video frames sent, want the 75 of three GOPs and the live one", len(frames))
	}
	for i := 1; i < len(frames); i++ {
		if frames[i]-frames[i-1] != 3600 {
			t.Fatalf("frame %d steps by %d, want 3600 throughout", i, frames[i]-frames[i-1])
		}
	}

	f.park(true)
	ts, at = pushGOP(f, ts+3600, 25, 800, at.Add(40*time.Millisecond))
	f.restartSink(at, time.Time{})
	frames, _ = videoFrames(drainAll(f))
	if len(frames) != 25 || frames[0] != ts-25*3600 {
		t.Errorf("a window without pre-roll sent %d frames from ts %d, want the latest GOP of 25 from %d",
			len(frames), frames[0], ts-25*3600)
	}
}

// Over the cache's bounds the pre-roll shrinks to what fits, a whole GOP at a time, and the
// cache still starts at a keyframe; history never takes another camera's cache.
func TestPreRollShrinksToTheBudget(t *testing.T) {
	t0 := time.Now().Add(-10 * time.Second)
	budget := NewCacheBudget(8 * cacheChunk) // 512 KiB
	other := cachedForwarder(t, budget, 512)
	f := preRollForwarder(t, budget, 5*time.Second)
	f.park(true)
	ts, ots, at := uint32(0), uint32(0), t0
	for range 10 {
		ots, _ = pushGOP(other, ots, 25, 4000, at) // 100 KB GOPs: 2 chunks
		drainAll(other)
		ts, at = pushGOP(f, ts, 25, 4000, at) // 5 s of them would be 500 KB
	}
	st := f.cacheStats()
	if st.Shrinks == 0 || st.PreRoll >= 5*time.Second || st.Frames < 25 {
		t.Errorf("pre-roll cache %+v: want it shrunk below 5 s, keeping whole GOPs", st)
	}
	if os := other.cacheStats(); os.Evictions != 0 || os.Frames != 25 {
		t.Errorf("the other camera's cache %+v: the pre-roll must not take it", os)
	}
	if held, limit := budget.Usage(); held > limit {
		t.Errorf("caches hold %d bytes of a %d budget", held, limit)
	}
	f.restartSink(at, at.Add(-5*time.Second))
	got := drainAll(f)
	frames, sps := videoFrames(got)
	if !sps || got[2].nal != h264NALIDR || len(frames) != st.Frames || len(frames)%25 != 0 {
		t.Errorf("shrunk replay: %d frames, first %v; want whole GOPs (%d frames) from SPS, PPS, IDR",
			len(frames), got[:min(3, len(got))], st.Frames)
	}
}

// A pre-roll cache at its bound (the 4 s GOP at 2 Mbit/s with a 5 s pre-roll fills a
// camera's 2 MiB) still replays when the camera needs room before the upstream has sent the
// oldest GOP, as it does whenever the uplink is slower than memory: the replay skips the rest
// of that GOP to the next keyframe, counted as dropped frames, and goes on from there into the
// live stream. It used to lose the whole replay and wait for the camera's next keyframe.
func TestPreRollReplaySkipsAGOPRatherThanLoseTheWindow(t *testing.T) {
	for _, sent := range []int{0, 30} { // packets the upstream took before the camera needed room
		t0 := time.Now().Add(-10 * time.Second)
		f := preRollForwarder(t, NewCacheBudget(8*cacheChunk), 5*time.Second) // 512 KiB for one camera
		f.park(true)
		ts, at := uint32(0), t0
		for range 10 {
			ts, at = pushGOP(f, ts, 25, 4000, at) // 100 KB GOPs: the cache keeps 4 of them, not 5 s
		}
		cached := f.cacheStats()
		if cached.Shrinks == 0 || cached.Frames != 100 {
			t.Fatalf("cache %+v: want it at its bound, 4 GOPs of 25 frames", cached)
		}
		f.restartSink(at, at.Add(-5*time.Second))
		var got []popped
		var p packet
		for range sent {
			f.pop(&p)
			got = append(got, popped{out: out{track: p.track, ts: p.Timestamp}, size: len(p.Payload)})
			if p.track == 0 {
				got[len(got)-1].nal = p.Payload[0] & 0x1f
			}
		}
		pushGOP(f, ts, 25, 4000, at) // live, needing chunks before the oldest GOP was sent
		got = append(got, drainAll(f)...)
		st := f.cacheStats()
		frames, sps := videoFrames(got)
		if !sps || len(got) < 3 || got[2].nal != h264NALIDR || st.Overflows != 0 {
			t.Fatalf("sent %d first: replay starts %v, overflows %d; want SPS, PPS, IDR and the replay kept",
				sent, got[:min(3, len(got))], st.Overflows)
		}
		// The first cached GOP is skipped from where the upstream was; the others and the live
		// one follow, a keyframe and its parameter sets at the skip.
		firstSent := 0
		for _, o := range got[:sent] {
			if o.track == 0 && o.nal != h264NALSPS && o.nal != h264NALPPS {
				firstSent++
			}
		}
		if want := firstSent + 3*25 + 25; len(frames) != want || f.dropped.Load() != uint64(25-firstSent) {
			t.Errorf("sent %d first: %d frames replayed and live, %d dropped; want %d, and the %d skipped counted",
				sent, len(frames), f.dropped.Load(), want, 25-firstSent)
		}
		for i := firstSent + 1; i < len(frames); i++ {
			if frames[i]-frames[i-1] != 3600 {
				t.Fatalf("sent %d first: frame %d steps by %d, want 3600 after the skip", sent, i, frames[i]-frames[i-1])
			}
		}
	}
}
