package rtsp

import (
	"encoding/binary"
	"slices"
	"testing"
)

// seqs returns n sequence numbers counting up from first (wrapping at 65535).
func seqs(first uint16, n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = first + uint16(i)
	}
	return out
}

// A UDP track's packets go on in sequence order, each once, as gortsplib's client delivered
// them: early packets wait for the gap before them, a gap that reorderSize later packets do
// not fill is given up, and a stream that starts over is followed.
func TestReorderer(t *testing.T) {
	tests := []struct {
		name string
		in   []uint16
		want []uint16
	}{
		{"in order", []uint16{7, 8, 9, 10}, []uint16{7, 8, 9, 10}},
		{"swapped pair", []uint16{1, 3, 2, 4}, []uint16{1, 2, 3, 4}},
		{"late by three", []uint16{1, 3, 4, 5, 2, 6}, []uint16{1, 2, 3, 4, 5, 6}},
		{"duplicates", []uint16{1, 2, 2, 4, 4, 3, 1}, []uint16{1, 2, 3, 4}},
		{"across the wrap", []uint16{65534, 0, 65535, 1}, []uint16{65534, 65535, 0, 1}},
		{"a gap never filled", append([]uint16{1}, seqs(3, reorderSize)...),
			append([]uint16{1}, seqs(3, reorderSize)...)},
		{"gap filled after the window", append(append([]uint16{1}, seqs(3, reorderSize)...), 2),
			append([]uint16{1}, seqs(3, reorderSize)...)},
		{"stream starts over", append(seqs(1000, 3), seqs(10, reorderSize+3)...),
			append(seqs(1000, 3), seqs(10+reorderSize, 3)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reorderer
			var got []uint16
			var b [2]byte
			for _, seq := range tt.in {
				binary.BigEndian.PutUint16(b[:], seq)
				r.push(b[:], seq, func(p []byte, _ bool) { got = append(got, binary.BigEndian.Uint16(p)) })
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("in %v\nout %v\nwant %v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzReorderer: whatever sequence numbers a camera sends, each delivered packet is one that
// was pushed, delivered no more often than it was pushed, with its bytes intact.
func FuzzReorderer(f *testing.F) {
	f.Add([]byte{0, 1, 0, 3, 0, 2, 0, 2, 0, 4})
	f.Add([]byte{0xff, 0xfe, 0, 0, 0xff, 0xff, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		var r reorderer
		pushed := map[uint16]int{}
		delivered := map[uint16]int{}
		for i := 0; i+1 < len(in); i += 2 {
			seq := binary.BigEndian.Uint16(in[i:])
			pushed[seq]++
			b := []byte{in[i], in[i+1], ^in[i], ^in[i+1]}
			r.push(b, seq, func(p []byte, _ bool) {
				got := binary.BigEndian.Uint16(p)
				if len(p) != 4 || p[2] != ^p[0] || p[3] != ^p[1] {
					t.Fatalf("delivered %x, not a packet pushed", p)
				}
				if delivered[got]++; delivered[got] > pushed[got] {
					t.Fatalf("%d delivered %d times, pushed %d", got, delivered[got], pushed[got])
				}
			})
		}
	})
}
