package rtsp

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestScanNALs(t *testing.T) {
	type nal struct {
		typ  uint8
		full bool
	}
	tests := []struct {
		name    string
		codec   videoCodec
		payload []byte
		want    []nal
		key     bool
	}{
		{"h264 single IDR", codecH264, []byte{0x65, 1, 2}, []nal{{5, true}}, true},
		{"h264 STAP-A SPS PPS IDR", codecH264, []byte{0x78, 0, 2, 0x67, 1, 0, 1, 0x68, 0, 2, 0x65, 9},
			[]nal{{7, true}, {8, true}, {5, true}}, true},
		{"h264 FU-A start of IDR", codecH264, []byte{0x7c, 0x85, 1}, []nal{{5, false}}, true},
		{"h264 FU-A continuation is not a start", codecH264, []byte{0x7c, 0x05, 1}, nil, false},
		{"h264 STAP-A with a lying size stops", codecH264, []byte{0x78, 0, 9, 0x65}, nil, false},
		{"h264 empty", codecH264, nil, nil, false},
		{"h265 IDR_W_RADL single", codecH265, []byte{19 << 1, 1, 0}, []nal{{19, true}}, true},
		{"h265 AP VPS SPS", codecH265, []byte{48 << 1, 1, 0, 2, 32 << 1, 1, 0, 2, 33 << 1, 1},
			[]nal{{32, true}, {33, true}}, false},
		{"h265 FU start CRA", codecH265, []byte{49 << 1, 1, 0x80 | 21, 0}, []nal{{21, false}}, true},
		{"h265 trailing picture", codecH265, []byte{1 << 1, 1, 0}, []nal{{1, true}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []nal
			key := false
			scanNALs(tc.codec, tc.payload, func(typ uint8, b []byte) {
				got = append(got, nal{typ, b != nil})
				key = key || isKeyframeNAL(tc.codec, typ)
			})
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("NAL %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
			if key != tc.key {
				t.Errorf("keyframe = %v, want %v", key, tc.key)
			}
		})
	}
}

// FuzzScanNALs feeds arbitrary RTP payloads to the NAL scanner and the forwarder: nothing may
// panic, every reported unit must lie inside the payload, and the queue must stay bounded.
func FuzzScanNALs(f *testing.F) {
	f.Add(byte(1), []byte{0x78, 0, 2, 0x67, 1, 0, 1, 0x68, 0, 2, 0x65, 9})
	f.Add(byte(1), []byte{0x7c, 0x85, 1})
	f.Add(byte(2), []byte{48 << 1, 1, 0, 2, 32 << 1, 1, 0, 2, 33 << 1, 1})
	f.Add(byte(2), []byte{49 << 1, 1, 0x80 | 19, 0})
	f.Fuzz(func(t *testing.T, c byte, payload []byte) {
		codec := videoCodec(c%2 + 1)
		scanNALs(codec, payload, func(_ uint8, nal []byte) {
			if nal != nil && (len(nal) == 0 || !bytes.Contains(payload, nal)) {
				t.Fatalf("reported NAL %x is not part of payload %x", nal, payload)
			}
		})
		fw := newForwarder(4)
		fw.setTracks(codec, []int{90000}, [3][]byte{})
		for i := range 6 {
			fw.push(0, &rtp.Packet{Header: rtp.Header{Timestamp: uint32(i), Marker: i%2 == 1}, Payload: payload}, time.Now())
			if fw.n > len(fw.ring) {
				t.Fatalf("queue holds %d packets, bound %d", fw.n, len(fw.ring))
			}
		}
	})
}
