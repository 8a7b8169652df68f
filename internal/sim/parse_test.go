package sim

import (
	"encoding/json"
	"testing"

	"github.com/pion/rtp"
)

func TestEmbeddedClip(t *testing.T) {
	c, err := loadClip(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.width != 640 || c.height != 360 {
		t.Errorf("size %dx%d, want 640x360", c.width, c.height)
	}
	if len(c.video) != 250 || c.duration().Seconds() != 10 {
		t.Errorf("%d frames, %v; want 250 frames, 10 s", len(c.video), c.duration())
	}
	keys := 0
	for i, f := range c.video {
		if f.key {
			keys++
			if !hasParams(f.au) {
				t.Errorf("keyframe %d has no SPS/PPS in band", i)
			}
		}
		for _, n := range f.au {
			if n[0]&0x1f == 9 {
				t.Errorf("frame %d keeps an access unit delimiter", i)
			}
		}
	}
	if keys != 10 {
		t.Errorf("%d keyframes, want 10 (GOP 1 s)", keys)
	}
	if c.audioCfg.SampleRate != 16000 || len(c.audio) == 0 {
		t.Errorf("audio %d Hz, %d units; want 16 kHz AAC", c.audioCfg.SampleRate, len(c.audio))
	}
	last := c.audio[len(c.audio)-1]
	if last.pts+aacSamplesPerUnit > c.audioDuration {
		t.Errorf("last audio unit at %d overlaps the next loop at %d", last.pts, c.audioDuration)
	}
}

func TestSplitAccessUnits(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1e}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr := []byte{0x65, 0x88, 0x84}  // first_mb_in_slice = 0
	idr2 := []byte{0x65, 0x48, 0x84} // a second slice of the same picture
	p := []byte{0x41, 0x9a, 0x02}    // non-IDR, first slice
	aud := []byte{0x09, 0xf0}
	sc4 := []byte{0, 0, 0, 1}
	sc3 := []byte{0, 0, 1}
	join := func(parts ...[]byte) []byte {
		var b []byte
		for _, x := range parts {
			b = append(b, x...)
		}
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		want    []int // NAL units per frame
		wantErr bool
	}{
		{"delimited", join(sc4, aud, sc4, sps, sc4, pps, sc3, idr, sc4, aud, sc3, p), []int{3, 1}, false},
		{"no delimiters", join(sc4, sps, sc4, pps, sc4, idr, sc4, idr2, sc4, p, sc4, p), []int{4, 1, 1}, false},
		{"leading garbage", join([]byte{7, 7}, sc3, idr), []int{1}, false},
		{"parameter sets only", join(sc4, sps, sc4, pps), nil, true},
		{"no start code", []byte{0x65, 0x88}, nil, true},
		{"empty", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			units, err := splitAccessUnits(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var got []int
			for _, u := range units {
				got = append(got, len(u))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("frames %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("frames %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestFrameCounter(t *testing.T) {
	pkt := func(ts uint32, marker bool, payload ...byte) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{Timestamp: ts, Marker: marker}, Payload: payload}
	}
	tests := []struct {
		name   string
		isH265 bool
		pkts   []*rtp.Packet
		want   []accessUnit
	}{
		{
			name: "h264 STAP-A with SPS+PPS, then FU-A IDR, then P by timestamp change",
			pkts: []*rtp.Packet{
				pkt(0, false, 24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce),
				pkt(0, false, 28, 0x85, 1), pkt(0, true, 28, 0x45, 2),
				pkt(3600, false, 0x41, 1), // no marker: the next timestamp ends it
				pkt(7200, true, 0x41, 2),
			},
			want: []accessUnit{{picture: true, key: true, sps: true, pps: true}, {picture: true}, {picture: true}},
		},
		{
			name: "h264 parameter sets in their own packets count for the next picture",
			pkts: []*rtp.Packet{pkt(0, true, 0x67, 1), pkt(0, true, 0x68, 1), pkt(0, true, 0x65, 1)},
			want: []accessUnit{{picture: true, key: true, sps: true, pps: true}},
		},
		{
			name: "h264 FU-A continuation does not name the type",
			pkts: []*rtp.Packet{pkt(0, true, 28, 0x05, 1)},
			want: nil,
		},
		{
			name:   "h265 AP with VPS/SPS/PPS, then FU IDR, then TRAIL_R",
			isH265: true,
			pkts: []*rtp.Packet{
				pkt(0, false, 48<<1, 1, 0, 2, 32<<1, 1, 0, 2, 33<<1, 1, 0, 2, 34<<1, 1),
				pkt(0, true, 49<<1, 1, 0x80|19, 1),
				pkt(3600, true, 1<<1, 1, 9),
			},
			want: []accessUnit{{picture: true, key: true, vps: true, sps: true, pps: true}, {picture: true}},
		},
		{
			name: "truncated aggregation and empty payloads are ignored",
			pkts: []*rtp.Packet{pkt(0, true, 24, 0, 9, 0x67), pkt(0, true), pkt(0, true, 24)},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := frameCounter{isH265: tt.isH265}
			var got []accessUnit
			for _, p := range tt.pkts {
				fc.observe(p, func(u accessUnit) { got = append(got, u) })
			}
			if len(got) != len(tt.want) {
				t.Fatalf("units %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("unit %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseClip(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88},
		[]byte{0xff, 0xf1, 0x50, 0x80, 0x01, 0x7f, 0xfc, 0x21})
	f.Add([]byte{0, 0, 1, 9, 0, 0, 1}, []byte{})
	f.Fuzz(func(t *testing.T, video, audio []byte) {
		c, err := parseClip(video, audio, 0)
		if err != nil {
			return
		}
		if len(c.video) == 0 || !c.video[0].key || c.sps == nil || c.pps == nil {
			t.Fatalf("accepted a clip that cannot be played: %+v", c)
		}
		for _, u := range c.audio {
			if u.pts+aacSamplesPerUnit > c.audioDuration {
				t.Fatalf("audio unit at %d beyond the loop of %d", u.pts, c.audioDuration)
			}
		}
	})
}

func FuzzFrameCounter(f *testing.F) {
	f.Add(false, []byte{24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, []byte{28, 0x85, 1})
	f.Add(true, []byte{48 << 1, 1, 0, 2, 32 << 1, 1}, []byte{49 << 1, 1, 0x80 | 19})
	f.Fuzz(func(t *testing.T, isH265 bool, a, b []byte) {
		fc := frameCounter{isH265: isH265}
		n := 0
		for i, p := range [][]byte{a, b, a, b} {
			fc.observe(&rtp.Packet{Header: rtp.Header{Timestamp: uint32(i / 2), Marker: i%2 == 1}, Payload: p},
				func(u accessUnit) {
					n++
					if !u.picture {
						t.Fatalf("completed a unit without a picture: %+v", u)
					}
				})
		}
		if n > 4 {
			t.Fatalf("%d units from 4 packets", n)
		}
	})
}

func FuzzParseEventBatch(f *testing.F) {
	f.Add([]byte(`[{"event":"stream_motion_started","media":"cam1","utc_ms":1}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[1,{"a":[{}]}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := parseEventBatch(body)
		if err != nil {
			return
		}
		for _, e := range events {
			var obj map[string]any
			if err := json.Unmarshal(e, &obj); err != nil || obj == nil {
				t.Fatalf("accepted %q as an event object: %v", e, err)
			}
		}
	})
}
