package rtsp

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// cachedForwarder is a forwarder with a GOP cache drawing on budget, as NewRelay makes it. It
// leaves the budget when the test ends, as a relay does when Run returns.
func cachedForwarder(tb testing.TB, budget *CacheBudget, queue int) *forwarder {
	f := newForwarder(queue)
	f.reportWait = 0 // audio goes at once: these tests are about the cache, not the camera's reports
	f.cache = newGOPCache(budget)
	f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS})
	tb.Cleanup(f.closeCache)
	return f
}

// pushGOP pushes one GOP of frames 40 ms apart starting at ts, frame 0 an IDR, each frame one
// packet of size bytes, with an audio packet after each frame, arriving from at on.
func pushGOP(f *forwarder, ts uint32, frames, size int, at time.Time) (uint32, time.Time) {
	for i := range frames {
		p := make([]byte, size)
		p[0] = 0x41
		if i == 0 {
			p[0] = 0x65
		}
		binary.BigEndian.PutUint32(p[1:], ts) // lets a test tell frames apart
		f.push(0, videoPkt(ts, true, p...), at)
		f.push(1, audioPkt(ts/90*8), at)
		ts += 3600
		at = at.Add(40 * time.Millisecond)
	}
	return ts, at
}

type popped struct {
	out
	at   time.Time
	size int
}

func drainAll(f *forwarder) []popped {
	var res []popped
	var p packet
	for f.pop(&p) {
		o := popped{out: out{track: p.track, seq: p.SequenceNumber, ts: p.Timestamp}, at: p.at, size: len(p.Payload)}
		if p.track == 0 {
			o.nal = p.Payload[0] & 0x1f
		}
		res = append(res, o)
	}
	return res
}

// A new upstream session gets the cached GOP at once: parameter sets, the keyframe and what
// followed, with the camera's timestamps and arrival times, then the live stream with no gap,
// no repeat and sequence numbers that run on.
func TestGOPCacheReplaysKeyframeAndFollowersThenLive(t *testing.T) {
	t0 := time.Now().Add(-3 * time.Second)
	f := cachedForwarder(t, NewCacheBudget(DefaultCacheBudgetBytes), 64)
	ts, at := pushGOP(f, 90000, 3, 500, t0) // an older GOP
	drainAll(f)
	ts, at = pushGOP(f, ts, 50, 500, at) // the GOP the upstream restart finds
	drainAll(f)                          // the old session took it, then died

	if st := f.cacheStats(); st.Frames != 50 || st.Bytes < 50*500 {
		t.Fatalf("cache holds %+v, want the 50 frames of the last GOP", st)
	}
	f.restartSink(at, time.Time{})
	// A packet arriving during the replay comes after the cache, not before.
	pushGOP(f, ts, 1, 500, at)
	got := drainAll(f)

	if len(got) < 3 || got[0].nal != h264NALSPS || got[1].nal != h264NALPPS || got[2].nal != h264NALIDR {
		t.Fatalf("replay starts %v, want SPS, PPS, IDR", got[:min(3, len(got))])
	}
	keyTS := ts - 50*3600
	if got[2].ts != keyTS || !got[2].at.Equal(at.Add(-50*40*time.Millisecond)) {
		t.Errorf("keyframe replayed with ts %d at %v, want the camera's ts %d and arrival", got[2].ts, got[2].at, keyTS)
	}
	var videoTS []uint32
	seq := map[int]uint16{}
	for i, p := range got {
		if last, ok := seq[p.track]; ok && p.seq != last+1 {
			t.Errorf("packet %d: track %d sequence %d after %d", i, p.track, p.seq, last)
		}
		seq[p.track] = p.seq
		if p.track == 0 && p.nal != h264NALSPS && p.nal != h264NALPPS {
			videoTS = append(videoTS, p.ts)
		}
	}
	if len(videoTS) != 51 {
		t.Fatalf("replay and live sent %d video frames, want the 50 cached and 1 live", len(videoTS))
	}
	for i := 1; i < len(videoTS); i++ {
		if videoTS[i]-videoTS[i-1] != 3600 {
			t.Fatalf("video timestamps step %d at frame %d, want 3600 throughout: %v", videoTS[i]-videoTS[i-1], i, videoTS)
		}
	}

	// Live again: a packet pushed now is queued and popped as live.
	pushGOP(f, ts+3600, 1, 500, at.Add(80*time.Millisecond))
	live := drainAll(f)
	if len(live) != 2 || live[0].seq != seq[0]+1 {
		t.Errorf("after the replay got %+v, want one live frame and audio, video sequence %d", live, seq[0]+1)
	}
}

func TestGOPCacheIsNotReplayedWhenStaleOrGone(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		name  string
		after func(f *forwarder, at time.Time) time.Time // returns when the upstream restarts
	}{
		{"camera silent for over a second", func(_ *forwarder, at time.Time) time.Time { return at.Add(2 * time.Second) }},
		{"camera session ended", func(f *forwarder, at time.Time) time.Time { f.cameraGone(); return at }},
		{"camera session restarted", func(f *forwarder, at time.Time) time.Time {
			f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS})
			return at
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := cachedForwarder(t, NewCacheBudget(DefaultCacheBudgetBytes), 64)
			_, at := pushGOP(f, 0, 10, 300, t0)
			drainAll(f)
			wantGated(t, f, tc.after(f, at))
		})
	}
}

// Over budget, the camera with the largest GOP loses its cache and says so; the others keep
// theirs and the budget's memory stays within its bound.
func TestGOPCacheBudgetEvictsTheLargestGOP(t *testing.T) {
	t0 := time.Now()
	budget := NewCacheBudget(8 * cacheChunk)
	small := cachedForwarder(t, budget, 512) // 2 chunks a GOP
	large := cachedForwarder(t, budget, 512) // 5 chunks a GOP
	medium := cachedForwarder(t, budget, 512)
	tsS, tsL, tsM := uint32(0), uint32(0), uint32(0)
	at := t0
	for range 4 {
		tsL, _ = pushGOP(large, tsL, 50, 6000, at) // ~300 KB
		tsS, _ = pushGOP(small, tsS, 50, 2000, at) // ~100 KB
		tsM, at = pushGOP(medium, tsM, 50, 3000, at)
		for _, f := range []*forwarder{small, large, medium} {
			drainAll(f)
		}
	}
	// Every camera starts one more GOP: the large camera notices the eviction.
	for _, f := range []*forwarder{small, large, medium} {
		pushGOP(f, 1<<30, 1, 100, at)
		drainAll(f)
	}
	sS, sL, sM := small.cacheStats(), large.cacheStats(), medium.cacheStats()
	if sL.Evictions == 0 {
		t.Errorf("the largest GOP was never evicted: large %+v, medium %+v, small %+v", sL, sM, sS)
	}
	if sS.Evictions != 0 {
		t.Errorf("the smallest GOP lost its cache %d times; the largest must go first", sS.Evictions)
	}
	held, limit := budget.Usage()
	if held > limit {
		t.Errorf("caches hold %d bytes, budget %d", held, limit)
	}
	budget.mu.Lock()
	allocated := budget.allocated
	budget.mu.Unlock()
	if allocated > 8+5 { // the budget plus what an evicted camera still owes
		t.Errorf("%d chunks exist for a budget of 8", allocated)
	}

	// The small camera's cache is whole and replays.
	small.restartSink(at, time.Time{})
	got := drainAll(small)
	if len(got) < 3 || got[2].nal != h264NALIDR {
		t.Errorf("small camera replays %d packets starting %v, want SPS, PPS, IDR", len(got), got[:min(3, len(got))])
	}
}

func TestGOPCacheOverCameraBoundWaitsForKeyframe(t *testing.T) {
	t0 := time.Now()
	f := cachedForwarder(t, NewCacheBudget(DefaultCacheBudgetBytes), 512)
	_, at := pushGOP(f, 0, 100, 30000, t0) // 3 MB: over the 2 MiB a camera may cache
	drainAll(f)
	st := f.cacheStats()
	if st.Overflows == 0 || st.Bytes != 0 {
		t.Errorf("cache stats %+v, want an overflow and nothing held", st)
	}
	wantGated(t, f, at)
}

// A budget of 0 turns caching off: the relay behaves as without a cache.
func TestGOPCacheOff(t *testing.T) {
	f := cachedForwarder(t, NewCacheBudget(0), 64)
	_, at := pushGOP(f, 0, 10, 300, time.Now())
	drainAll(f)
	if st := f.cacheStats(); st != (CacheStats{}) {
		t.Errorf("cache stats %+v with caching off", st)
	}
	wantGated(t, f, at)
}

// wantGated restarts the upstream side at `at` and checks that, with no cache to replay,
// nothing is forwarded before the next keyframe.
func wantGated(t *testing.T, f *forwarder, at time.Time) {
	t.Helper()
	f.restartSink(at, time.Time{})
	f.push(0, videoPkt(99*3600, true, 0x41, 1), at)
	if got := drainAll(f); len(got) != 0 {
		t.Errorf("forwarded %v; want nothing until the next keyframe", got)
	}
}

// BenchmarkForwardGOPCache is BenchmarkForward with the GOP cache on: the steady path copies
// each packet into the cache's chunks too, and must still not allocate.
func BenchmarkForwardGOPCache(b *testing.B) {
	f := cachedForwarder(b, NewCacheBudget(DefaultCacheBudgetBytes), 256)
	payload := make([]byte, 1400)
	payload[0], payload[1] = 0x7c, 0x05 // FU-A middle fragment of an IDR
	idr := videoPkt(0, false, 0x7c, 0x85, 0)
	pkt := videoPkt(0, false, payload...)
	now := time.Now()
	var p packet
	// Two GOPs of 4 s at 25 fps with 8 packets a frame (1.1 MB), so that the cache has all
	// its chunks.
	const gop = 4 * 25 * 8
	for i := range 2 * gop {
		if i%gop == 0 {
			idr.Timestamp = uint32(i / 8 * 3600)
			f.push(0, idr, now)
		}
		pkt.Timestamp = uint32(i / 8 * 3600)
		f.push(0, pkt, now)
		for f.pop(&p) {
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%gop == 0 {
			idr.Timestamp = uint32((2*gop + i) / 8 * 3600)
			f.push(0, idr, now)
			f.pop(&p)
		}
		pkt.Timestamp = uint32((2*gop + i) / 8 * 3600)
		pkt.Marker = i%8 == 7
		f.push(0, pkt, now)
		f.pop(&p)
	}
	b.StopTimer()
	if st := f.cacheStats(); st.Overflows+st.Evictions > 0 || st.Bytes == 0 {
		b.Fatalf("cache %+v: the benchmark did not measure a cache that holds its GOP", st)
	}
}

// FuzzGOPCache drives a cached forwarder with arbitrary packets, restarts and pops. Whatever
// comes, memory stays within the budget and every session, live or replayed, begins with the
// parameter sets and a keyframe.
func FuzzGOPCache(f *testing.F) {
	f.Add([]byte{0, 0x65, 10, 1, 0x41, 10, 2, 3, 0x41, 5, 4})
	f.Add(bytes.Repeat([]byte{0, 0x7c, 200, 0, 0x7c, 200, 3, 1, 0x41, 255}, 30))
	f.Fuzz(func(t *testing.T, ops []byte) {
		budget := NewCacheBudget(3 * cacheChunk)
		fw := cachedForwarder(t, budget, 32)
		other := cachedForwarder(t, budget, 32)
		fw.cache.preRoll = 300 * time.Millisecond // whole GOPs back 300 ms and more, as relay mode motion keeps
		defer func() {
			fw.closeCache()
			other.closeCache()
			if budget.allocated != 0 {
				t.Errorf("%d chunks still mapped after every cache left", budget.allocated)
			}
		}()
		now := time.Now()
		ts := uint32(0)
		fresh := true // a new upstream session: its first packet must be SPS
		var p packet
		for len(ops) >= 3 {
			op, b, n := ops[0]%5, ops[1], int(ops[2])
			ops = ops[3:]
			now = now.Add(time.Duration(n) * time.Millisecond)
			switch op {
			case 0, 1: // a video packet of n*97 bytes starting with NAL header b
				size := 1 + n*97
				payload := bytes.Repeat([]byte{b}, size)
				ts += uint32(n)
				target := fw
				if op == 1 {
					target = other
				}
				target.push(0, videoPkt(ts, n%3 == 0, payload...), now)
			case 2:
				fw.push(1, audioPkt(ts), now)
			case 3: // a new session; an odd b opens a window reaching back b ms
				from := time.Time{}
				if b%2 == 1 {
					from = now.Add(-time.Duration(b) * time.Millisecond)
				}
				fw.restartSink(now, from)
				fresh = true
			case 4:
				for range n % 8 {
					if !fw.pop(&p) {
						break
					}
					if fresh && p.track == 0 {
						if p.Payload[0]&0x1f != h264NALSPS {
							t.Fatalf("a session began with NAL %d, want SPS", p.Payload[0]&0x1f)
						}
						fresh = false
					}
				}
				other.pop(&p)
			}
			held, limit := budget.Usage()
			if held > limit {
				t.Fatalf("caches hold %d bytes of a %d budget", held, limit)
			}
			checkCache(t, fw.cache)
		}
	})
}

// checkCache fails unless the cache's books agree with its entries: every payload inside a
// chunk it holds, its byte and frame counts, and GOP marks in order within the entries.
func checkCache(t *testing.T, c *gopCache) {
	t.Helper()
	bytes, frames := 0, 0
	for i, e := range c.entries {
		chunk, off := int(e.pos>>cacheChunkShift), int(e.pos&(cacheChunk-1))
		if chunk >= len(c.chunks) || off+int(e.size) > len(c.chunks[chunk]) {
			t.Fatalf("entry %d at chunk %d offset %d size %d: outside the %d chunks", i, chunk, off, e.size, len(c.chunks))
		}
		bytes += int(e.size)
		if e.track == 0 && e.marker {
			frames++
		}
	}
	if c.active && (bytes != c.bytes || frames != c.frames) {
		t.Fatalf("cache counts %d bytes and %d frames, its entries hold %d and %d", c.bytes, c.frames, bytes, frames)
	}
	for i, g := range c.gops {
		if g.entry > len(c.entries) || (i > 0 && g.entry < c.gops[i-1].entry) {
			t.Fatalf("GOP marks %v out of order or past the %d entries", c.gops, len(c.entries))
		}
	}
	if c.active && len(c.gops) > 0 {
		filling := 0
		for _, e := range c.entries[c.gops[len(c.gops)-1].entry:] {
			filling += int(e.size)
		}
		if filling != c.filling {
			t.Fatalf("cache counts %d bytes in the GOP being filled, its entries hold %d", c.filling, filling)
		}
	}
	if c.replaying && c.cursor > len(c.entries) {
		t.Fatalf("replay cursor %d past the %d entries", c.cursor, len(c.entries))
	}
}

// Issue 15, acceptance 1, at the package level: a camera with a 4 s GOP, the upstream server
// restarted. The new session's first video arrives within 0.5 s of the server accepting it,
// begins with the parameter sets and the keyframe, and its timestamps run on one frame at a
// time from the cached keyframe into the live stream: never backwards, never a jump.
func TestUpstreamRestartStartsFromCachedGOP(t *testing.T) {
	cam := newTestServer(t)
	up := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 60, "-g", "100", "-r", "25")
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
	r, _ := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: true, Publish: up.url("out")})
	waitFor(t, 15*time.Second, "relaying a whole GOP", func() bool {
		st := r.Stats()
		return st.Relaying && st.Cache.Frames > 0 && up.snapshot("out").videoFrames > 110
	})
	// Restart well inside a GOP, so that waiting for the next keyframe would take seconds.
	time.Sleep(1500 * time.Millisecond)
	up.restart(t, 500*time.Millisecond)
	waitFor(t, 10*time.Second, "video upstream again", func() bool { return up.snapshot("out").videoFrames > 30 })
	got := up.snapshot("out")
	if d := got.firstVideoAt.Sub(got.recordAt); d > 500*time.Millisecond {
		t.Errorf("first video %v after the server accepted the session, want within 0.5 s", d)
	} else {
		t.Logf("first video %v after the server accepted the session", d)
	}
	if len(got.firstNALs) < 3 || got.firstNALs[0] != h264NALSPS || got.firstNALs[1] != h264NALPPS ||
		got.firstNALs[2] != h264NALIDR {
		t.Errorf("first NAL types after the restart = %v, want SPS, PPS, IDR", got.firstNALs)
	}
	for i := 1; i < len(got.frameTS); i++ {
		if step := int32(got.frameTS[i] - got.frameTS[i-1]); step != 3600 {
			t.Fatalf("video timestamp stepped by %d at frame %d of the new session, want 3600 (25 fps) throughout", step, i)
		}
	}
}
