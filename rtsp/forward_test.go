package rtsp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
)

var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8}
	testPPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

func videoPkt(ts uint32, marker bool, payload ...byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, Timestamp: ts, Marker: marker,
		SequenceNumber: 5000}, Payload: payload}
}

func audioPkt(ts uint32) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 97, Timestamp: ts, Marker: true},
		Payload: []byte{1, 2, 3}}
}

// drain pops everything queued and returns it as (track, first NAL type, seq, ts) records.
type out struct {
	track int
	nal   uint8
	seq   uint16
	ts    uint32
}

func drain(f *forwarder) []out {
	var res []out
	var p packet
	for f.pop(&p) {
		o := out{track: p.track, seq: p.SequenceNumber, ts: p.Timestamp}
		if p.track == 0 {
			o.nal = p.Payload[0] & 0x1f
		}
		res = append(res, o)
	}
	return res
}

func TestForwarderStartsAtKeyframeWithParameterSets(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		sdpSPS []byte // parameter sets known from the SDP
		sdpPPS []byte
		in     []struct {
			track int
			pkt   *rtp.Packet
		}
		want []out
	}{
		{
			name:   "P-frames and audio before the IDR are dropped, SDP parameter sets injected",
			sdpSPS: testSPS, sdpPPS: testPPS,
			in: []struct {
				track int
				pkt   *rtp.Packet
			}{
				{0, videoPkt(100, true, 0x41, 0xaa)}, // non-IDR slice
				{1, audioPkt(8000)},
				{0, videoPkt(200, false, 0x7c, 0x85, 0xbb)}, // FU-A start of IDR
				{0, videoPkt(200, true, 0x7c, 0x45, 0xcc)},  // FU-A end
				{1, audioPkt(8160)},
			},
			want: []out{
				{0, h264NALSPS, 0, 200}, {0, h264NALPPS, 1, 200}, {0, h264FUA, 2, 200}, {0, h264FUA, 3, 200},
				{1, 0, 0, 8160},
			},
		},
		{
			name: "parameter sets learned in-band are injected even when their packets were gated",
			in: []struct {
				track int
				pkt   *rtp.Packet
			}{
				{0, videoPkt(100, false, testSPS...)},
				{0, videoPkt(100, false, testPPS...)},
				{0, videoPkt(100, true, 0x41, 0xaa)}, // the camera put them before a P-frame
				{0, videoPkt(200, true, 0x65, 0xbb)}, // IDR, single NAL, no parameter sets
			},
			want: []out{{0, h264NALSPS, 0, 200}, {0, h264NALPPS, 1, 200}, {0, h264NALIDR, 2, 200}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newForwarder(16)
			f.reportWait = 0 // audio that waits for sender reports is another test's
			f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, tc.sdpSPS, tc.sdpPPS})
			for _, in := range tc.in {
				f.push(in.track, in.pkt, now)
			}
			got := drain(f)
			if len(got) != len(tc.want) {
				t.Fatalf("forwarded %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("packet %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestForwarderOverflowDropsUntilKeyframe(t *testing.T) {
	now := time.Now()
	f := newForwarder(8)
	f.setTracks(codecH264, []int{90000}, [3][]byte{nil, testSPS, testPPS})
	f.push(0, videoPkt(0, true, 0x65, 1), now)
	for i := range 20 { // nobody pops: the uplink is stalled
		f.push(0, videoPkt(uint32(i+1)*3600, true, 0x41, 2), now)
	}
	if f.n > len(f.ring) {
		t.Fatalf("queue holds %d packets, bound is %d", f.n, len(f.ring))
	}
	if got := drain(f); len(got) != 0 {
		t.Errorf("after overflow the queue still forwards %d P-frames; want them dropped until a keyframe", len(got))
	}
	f.push(0, videoPkt(99*3600, true, 0x65, 3), now)
	got := drain(f)
	if len(got) != 3 || got[0].nal != h264NALSPS || got[2].nal != h264NALIDR {
		t.Errorf("after overflow forwarded %v, want SPS, PPS, IDR", got)
	}
	if f.dropped.Load() == 0 {
		t.Error("dropped frames not counted")
	}
}

func TestForwarderKeepsTimestampsContinuousAcrossCameraRestart(t *testing.T) {
	t0 := time.Now()
	f := newForwarder(16)
	f.setTracks(codecH264, []int{90000}, [3][]byte{nil, testSPS, testPPS})
	f.push(0, videoPkt(1000, true, 0x65, 1), t0)
	before := drain(f)
	last := before[len(before)-1]

	// The camera comes back two seconds later with a fresh random timestamp base.
	f.setTracks(codecH264, []int{90000}, [3][]byte{nil, testSPS, testPPS})
	f.push(0, videoPkt(777777, true, 0x65, 1), t0.Add(2*time.Second))
	after := drain(f)
	if len(after) != 3 {
		t.Fatalf("forwarded %v after restart, want SPS, PPS, IDR", after)
	}
	if after[0].seq != last.seq+1 {
		t.Errorf("sequence number after restart = %d, want %d", after[0].seq, last.seq+1)
	}
	if want := last.ts + 2*90000; after[2].ts != want {
		t.Errorf("timestamp after restart = %d, want %d (previous + 2 s)", after[2].ts, want)
	}
}

// BenchmarkForward measures the forward path the relay owns: queueing a camera packet and
// taking it off for the upstream connection. It must not allocate.
func BenchmarkForward(b *testing.B) {
	f := newForwarder(256)
	f.setTracks(codecH264, []int{90000, 48000}, [3][]byte{nil, testSPS, testPPS})
	payload := make([]byte, 1400)
	payload[0], payload[1] = 0x7c, 0x05 // FU-A middle fragment of an IDR
	idr := videoPkt(0, false, 0x7c, 0x85, 0)
	pkt := videoPkt(0, false, payload...)
	now := time.Now()
	f.push(0, idr, now)
	var p packet
	for f.pop(&p) {
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pkt.Timestamp = uint32(i / 8 * 3600)
		pkt.Marker = i%8 == 7
		f.push(0, pkt, now)
		f.pop(&p)
	}
}

// The byte arena must hand back every payload intact and in order whatever the mix of sizes,
// wraps and growth, and stay within its bound.
func TestForwarderArenaKeepsPayloadsInOrder(t *testing.T) {
	now := time.Now()
	f := newForwarder(64)
	f.setTracks(codecH264, []int{90000}, [3][]byte{})
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	var next byte
	f.push(0, videoPkt(0, false, 0x65), now) // keyframe opens the gate
	want = append(want, []byte{0x65})
	var p packet
	for range 20000 {
		if rng.IntN(3) > 0 {
			size := 2 + rng.IntN(3000)
			if rng.IntN(50) == 0 {
				size = 0
			}
			payload := make([]byte, size)
			for i := range payload {
				payload[i] = next
				next++
			}
			if size > 0 {
				payload[0] = 0x41
			}
			queued := f.n
			f.push(0, videoPkt(0, false, payload...), now)
			if f.n == queued { // overflow: the queue was flushed and waits for a keyframe
				t.Fatalf("overflow with %d queued; the bound is %d bytes", queued, f.maxData)
			}
			want = append(want, payload)
			continue
		}
		for range rng.IntN(8) {
			if !f.pop(&p) {
				break
			}
			if !bytes.Equal(p.Payload, want[0]) {
				t.Fatalf("popped %d bytes that differ from the %d queued", len(p.Payload), len(want[0]))
			}
			want = want[1:]
		}
		if len(want) > 48 { // keep within the slot bound
			for len(want) > 8 && f.pop(&p) {
				if !bytes.Equal(p.Payload, want[0]) {
					t.Fatal("payload changed in the queue")
				}
				want = want[1:]
			}
		}
	}
	if len(f.data) > f.maxData {
		t.Errorf("arena grew to %d bytes, bound %d", len(f.data), f.maxData)
	}
}

// Each packet leaves with the wall-clock time its timestamp stands for: fixed at a track's
// first arrival and advanced by the RTP clock, moved only by what the camera's sender reports
// state, and continuous across a camera restart whose camera clock was set to 1970.
func TestForwarderMapsTimestampsToWallClock(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	cam := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) // the camera's clock
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	type step struct {
		name    string
		restart bool   // a new camera session first
		track   int    // 0 video (90 kHz), 1 audio (8 kHz)
		ts      uint32 // the camera's RTP time
		arrival time.Duration
		sr      *time.Time // a camera sender report at this camera time instead of a packet
		want    time.Duration
	}
	at := func(base time.Time, d time.Duration) *time.Time { v := base.Add(d); return &v }
	steps := []step{
		{name: "the first video packet anchors video", ts: 90000, arrival: 0, want: 0},
		{name: "the first audio packet anchors audio", track: 1, ts: 8000, arrival: ms(10), want: ms(10)},
		{name: "a late packet moves nothing", ts: 90000 + 3600, arrival: ms(75), want: ms(40)},
		{name: "the first sender report keeps its track continuous", ts: 90000 + 9000, sr: at(cam, ms(100))},
		{name: "so video holds", ts: 90000 + 7200, arrival: ms(85), want: ms(80)},
		{name: "the camera says audio is 30 ms later than it arrived", track: 1, ts: 8000 + 800, sr: at(cam, ms(130))},
		{name: "and audio follows the camera", track: 1, ts: 8000 + 160, arrival: ms(95), want: ms(50)},
		{name: "after a restart video continues from its mapping", restart: true, ts: 500, arrival: ms(2095), want: ms(2080)},
		{name: "a camera clock set to 1970 is a step, not the camera's word", ts: 500 + 900, sr: at(time.Unix(0, 0), ms(10))},
		{name: "so video holds after it", ts: 500 + 3600, arrival: ms(2130), want: ms(2120)},
		{name: "audio after the restart continues too", track: 1, ts: 100, arrival: ms(2100), want: ms(2055)},
		{name: "and moves to what the restarted camera states: 15 ms after video", track: 1, ts: 100 + 80,
			sr: at(time.Unix(0, 0), ms(25))},
		{name: "15 ms after video, as the camera says", track: 1, ts: 100 + 160, arrival: ms(2140), want: ms(2115)},
	}
	f := newForwarder(64)
	f.reportWait = 0 // audio goes on its first arrival's guess; the camera corrects it
	f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS})
	var p packet
	for _, s := range steps {
		if s.restart {
			f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS})
		}
		if s.sr != nil {
			f.senderReport(s.track, *s.sr, s.ts)
			continue
		}
		if s.track == 0 {
			f.push(0, videoPkt(s.ts, true, 0x65, 1), t0.Add(s.arrival))
		} else {
			f.push(1, audioPkt(s.ts), t0.Add(s.arrival))
		}
		got := false
		for f.pop(&p) {
			got = true
		}
		if !got {
			t.Fatalf("%s: nothing forwarded", s.name)
		}
		if d := p.at.Sub(t0); d != s.want {
			t.Errorf("%s: the packet stands for t0%+v, want t0%+v", s.name, d, s.want)
		}
	}
}

// Audio waits for the camera's sender reports, so that it goes upstream with the camera's
// timing from its first packet; a camera that sends none within reportWait is not waited for
// again.
func TestForwarderHoldsAudioForTheCamerasSenderReports(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	cam := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newForwarder(64)
	f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS})
	forwarded := func(track int, pkt *rtp.Packet, arrival time.Duration) (bool, time.Duration) {
		f.push(track, pkt, t0.Add(arrival))
		var p packet
		got := false
		for f.pop(&p) {
			got = p.track == track
		}
		return got, p.at.Sub(t0)
	}
	steps := []struct {
		name    string
		restart bool
		track   int
		ts      uint32
		arrival time.Duration
		sr      time.Duration // a camera report at cam+sr instead of a packet, when not 0
		want    bool
		wantAt  time.Duration
	}{
		{name: "video goes at once", ts: 9000, want: true},
		{name: "audio waits", track: 1, ts: 800, arrival: 50 * time.Millisecond},
		{name: "its report before video's is kept", track: 1, ts: 1600, sr: 300 * time.Millisecond},
		{name: "video's report gives the clock", ts: 9000 + 9000, sr: 200 * time.Millisecond},
		{name: "audio goes with the camera's timing", track: 1, ts: 1760, arrival: 90 * time.Millisecond, want: true,
			wantAt: 220 * time.Millisecond},
		{name: "after a restart audio waits again", restart: true, ts: 100, arrival: 20 * time.Second, want: true,
			wantAt: 20*time.Second - 90*time.Millisecond}, // video continues: gap from the last packet queued,
		{name: "until reportWait", track: 1, ts: 100, arrival: 20*time.Second + reportWait - time.Millisecond},
		{name: "then goes on its arrival", track: 1, ts: 200, arrival: 20*time.Second + reportWait, want: true},
		{name: "and a camera that sent nothing is not waited for again", restart: true, ts: 100, arrival: 40 * time.Second,
			want: true},
		{name: "so audio goes at once", track: 1, ts: 300, arrival: 40 * time.Second, want: true},
	}
	for _, s := range steps {
		if s.restart {
			f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS})
		}
		if s.sr != 0 {
			f.senderReport(s.track, cam.Add(s.sr), s.ts)
			continue
		}
		pkt := audioPkt(s.ts)
		if s.track == 0 {
			pkt = videoPkt(s.ts, true, 0x65, 1)
		}
		got, at := forwarded(s.track, pkt, s.arrival)
		if got != s.want {
			t.Fatalf("%s: forwarded %v, want %v", s.name, got, s.want)
		}
		if s.wantAt != 0 && at != s.wantAt {
			t.Errorf("%s: stands for t0%+v, want t0%+v", s.name, at, s.wantAt)
		}
	}
}

// A camera's first sender report can overtake the packet it was sent with (gortsplib's servers,
// and so mediamtx's, write it from another goroutine), and the next may be 10 s away: a report
// that comes before a track's first packet, or from a substream session still in standby, is
// kept for that packet, so audio neither waits for the next report nor goes on a guess.
func TestForwarderKeepsAReportThatCameBeforeItsPackets(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	cam := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tracks := func(f *forwarder) { f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS}) }
	forwarded := func(f *forwarder, track int, pkt *rtp.Packet, arrival time.Duration) (bool, time.Duration) {
		f.pushFrom(f.source, track, pkt, t0.Add(arrival))
		var p packet
		got := false
		for f.pop(&p) {
			got = p.track == track
		}
		return got, p.at.Sub(t0)
	}
	cases := []struct {
		name    string
		standby bool // the reports come from session 2 while session 1 is adopted, then 2 is
	}{
		{name: "before the first packet"},
		{name: "from a standby session", standby: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newForwarder(64)
			f.adopt(1)
			tracks(f)
			from := uint64(1)
			if c.standby {
				from = 2
			}
			f.senderReportFrom(from, 0, cam, 9000)
			f.senderReportFrom(from, 1, cam.Add(100*time.Millisecond), 800)
			if c.standby {
				f.adopt(2)
				tracks(f)
			}
			if got, at := forwarded(f, 0, videoPkt(9000, true, 0x65, 1), 0); !got || at != 0 {
				t.Fatalf("video: forwarded %v at t0%+v, want at t0", got, at)
			}
			got, at := forwarded(f, 1, audioPkt(800), 400*time.Millisecond)
			if !got {
				t.Fatal("audio waits for a report it already had")
			}
			if at != 100*time.Millisecond {
				t.Errorf("audio stands for t0%+v, want t0+100ms, the camera's word", at)
			}
		})
	}
	t.Run("a session never adopted leaves nothing behind", func(t *testing.T) {
		f := newForwarder(64)
		f.adopt(1)
		tracks(f)
		f.senderReportFrom(2, 1, cam, 800)
		f.adopt(3)
		tracks(f)
		if got, _ := forwarded(f, 0, videoPkt(9000, true, 0x65, 1), 0); !got {
			t.Fatal("video not forwarded")
		}
		if got, _ := forwarded(f, 1, audioPkt(800), 0); got {
			t.Error("audio went on session 2's report, which is not the adopted session's")
		}
	})
}
