package rtmp

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
		0x00, 0x03, 0x03, 0x20, 0xf1, 0x62, 0xe4, 0x80}
	testPPS = []byte{0x68, 0xcb, 0x83, 0xcb, 0x20}
)

// testPublisher is a Publisher past its set-up, writing into a connection nobody reads.
func testPublisher(t testing.TB, formats ...format.Format) *Publisher {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	p := &Publisher{c: newRTMPConn(client), timeout: time.Second, line: &Timeline{}}
	p.c.chunkSize, p.c.streamID = rtmpOutChunkSize, 1
	for _, f := range formats {
		tr, err := newTrack(f, [3][]byte{nil, testSPS, testPPS})
		if err != nil {
			t.Fatal(err)
		}
		p.tracks = append(p.tracks, tr)
	}
	return p
}

// h264Packets splits one frame into FU-A packets of at most 1200 bytes, as cameras send them.
func h264Packets(ts uint32, nalu []byte) []rtp.Packet {
	var pkts []rtp.Packet
	hdr, body := nalu[0], nalu[1:]
	for first := true; len(body) > 0; first = false {
		n := min(len(body), 1200)
		fu := []byte{hdr&0xe0 | 28, hdr & 0x1f}
		if first {
			fu[1] |= 0x80
		}
		if n == len(body) {
			fu[1] |= 0x40
		}
		pkts = append(pkts, rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 96, Timestamp: ts, Marker: n == len(body)},
			Payload: append(fu, body[:n]...),
		})
		body = body[n:]
	}
	return pkts
}

func aacFormat() *format.MPEG4Audio {
	return &format.MPEG4Audio{PayloadTyp: 97, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
		Config: &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 1}}
}

// aacPacket carries two AUs, each with a 16-bit AU header (13-bit size, 3-bit index).
func aacPacket(ts uint32, au1, au2 []byte) rtp.Packet {
	p := []byte{0, 32, byte(len(au1) >> 5), byte(len(au1) << 3), byte(len(au2) >> 5), byte(len(au2) << 3)}
	p = append(append(p, au1...), au2...)
	return rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 97, Timestamp: ts, Marker: true}, Payload: p}
}

// A fragmented frame is joined into one AVCC NAL unit, and each AAC AU becomes one tag.
func TestTrackTags(t *testing.T) {
	p := testPublisher(t, &format.H264{PayloadTyp: 96, PacketizationMode: 1}, aacFormat())
	idr := append([]byte{0x65}, bytes.Repeat([]byte{7}, 3000)...)
	now := time.Now()
	for _, pkt := range h264Packets(9000, idr) {
		_ = p.WritePacket(0, &pkt, now)
	}
	pkt := aacPacket(4800, []byte{1, 2, 3}, []byte{4, 5})
	_ = p.WritePacket(1, &pkt, now.Add(20*time.Millisecond))

	cr := newChunkReader(bytes.NewReader(p.out))
	cr.chunkSize = rtmpOutChunkSize
	m, err := cr.readMessage()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{flvKeyFrame<<4 | flvCodecAVC, 1, 0, 0, 0, 0, 0, 0x0b, 0xb9}, idr...)
	if m.typ != rtmpVideo || m.ts != 0 || !bytes.Equal(m.body, want) {
		t.Fatalf("video tag type %d at %d, %d bytes; want one keyframe tag at 0 of %d bytes",
			m.typ, m.ts, len(m.body), len(want))
	}
	for i, au := range [][]byte{{1, 2, 3}, {4, 5}} {
		m, err := cr.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		// The audio track starts 20 ms after the video, as its first packet arrived, and its
		// second AU is 1024 samples at 48 kHz later.
		wantTS := []uint32{20, 41}[i]
		if m.typ != rtmpAudio || m.ts != wantTS || !bytes.Equal(m.body, append([]byte{aacTagHeader, 1}, au...)) {
			t.Errorf("audio tag %d: type %d at %d ms, body %x", i, m.typ, m.ts, m.body)
		}
	}
}

// The RTMP write path does not allocate per packet: go test -run '^$' -bench . -benchmem ./rtmp/
func BenchmarkWritePacketH264AAC(b *testing.B) {
	p := testPublisher(b, &format.H264{PayloadTyp: 96, PacketizationMode: 1}, aacFormat())
	idr := append([]byte{0x65}, bytes.Repeat([]byte{7}, 30000)...)
	frame := append([]byte{0x41}, bytes.Repeat([]byte{9}, 6000)...)
	now := time.Now()
	au := bytes.Repeat([]byte{3}, 300)
	// The packets are made once: the benchmark measures the publisher, not the camera.
	key, inter := h264Packets(0, idr), h264Packets(0, frame)
	audio := aacPacket(0, au, au)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ts := uint32(i) * 3000
		pkts := inter
		if i%50 == 0 {
			pkts = key
		}
		for j := range pkts {
			pkts[j].Timestamp = ts
			if err := p.WritePacket(0, &pkts[j], now); err != nil {
				b.Fatal(err)
			}
		}
		audio.Timestamp = ts / 90 * 48
		if err := p.WritePacket(1, &audio, now); err != nil {
			b.Fatal(err)
		}
		p.out = p.out[:0]
	}
}

// A keyframe that carries its parameter sets in a STAP-A ahead of it goes out as one tag with
// all three NAL units.
func TestTrackJoinsSTAPA(t *testing.T) {
	p := testPublisher(t, &format.H264{PayloadTyp: 96, PacketizationMode: 1})
	stap := []byte{24, 0, byte(len(testSPS))}
	stap = append(append(stap, testSPS...), 0, byte(len(testPPS)))
	stap = append(stap, testPPS...)
	pkts := append([]rtp.Packet{{Header: rtp.Header{Version: 2, Timestamp: 9000}, Payload: stap}},
		h264Packets(9000, append([]byte{0x65}, bytes.Repeat([]byte{7}, 2000)...))...)
	for i := range pkts {
		_ = p.WritePacket(0, &pkts[i], time.Now())
	}
	cr := newChunkReader(bytes.NewReader(p.out))
	cr.chunkSize = rtmpOutChunkSize
	m, err := cr.readMessage()
	if err != nil {
		t.Fatal(err)
	}
	if want := 5 + 4 + len(testSPS) + 4 + len(testPPS) + 4 + 2001; len(m.body) != want ||
		m.body[0] != flvKeyFrame<<4|flvCodecAVC {
		t.Errorf("tag of %d bytes, first byte %x; want a %d-byte keyframe", len(m.body), m.body[0], want)
	}
}

// Whatever payloads a camera sends, the depacketizers never panic, hang or grow past their
// bounds.
func FuzzTrackWrite(f *testing.F) {
	f.Add([]byte{0x7c, 0x85, 1, 2, 3}, []byte{0, 16, 0, 24, 1, 2, 3}, true)
	f.Add([]byte{24, 0, 2, 0x67, 1, 0, 9}, []byte{0, 16, 0xff, 0xf8, 1}, false)
	f.Add([]byte{0x65, 1, 2}, []byte{0, 0}, true)
	f.Fuzz(func(t *testing.T, video, audio []byte, marker bool) {
		p := testPublisher(t, &format.H264{PayloadTyp: 96, PacketizationMode: 1}, aacFormat())
		now := time.Now()
		for i := range 3 {
			v := rtp.Packet{Header: rtp.Header{Timestamp: uint32(i) * 3000, Marker: marker}, Payload: video}
			a := rtp.Packet{Header: rtp.Header{Timestamp: uint32(i) * 1024, Marker: marker}, Payload: audio}
			_ = p.WritePacket(0, &v, now)
			_ = p.WritePacket(1, &a, now)
		}
		if len(p.out) > 3*(2*maxFrame+len(video)+len(audio)) {
			t.Fatalf("%d bytes buffered", len(p.out))
		}
	})
}

// Publishes on one Timeline go on from where the one before ended: a re-publish 3 s into the
// stream starts at RTMP time 3000, not 0, so that the server's recording does not step back.
func TestTimelineGoesOnOverPublishes(t *testing.T) {
	var line Timeline
	idr := append([]byte{0x65}, bytes.Repeat([]byte{7}, 100)...)
	start := time.Now()
	for i, at := range []time.Time{start, start.Add(3 * time.Second)} {
		p := testPublisher(t, &format.H264{PayloadTyp: 96, PacketizationMode: 1})
		p.line = &line
		for _, pkt := range h264Packets(uint32(i)*777000, idr) { // each camera session has a clock of its own
			_ = p.WritePacket(0, &pkt, at)
		}
		cr := newChunkReader(bytes.NewReader(p.out))
		cr.chunkSize = rtmpOutChunkSize
		m, err := cr.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if want := uint32(at.Sub(start).Milliseconds()); m.typ != rtmpVideo || m.ts != want {
			t.Errorf("publish %d: first tag type %d at %d ms, want video at %d", i, m.typ, m.ts, want)
		}
	}
}
