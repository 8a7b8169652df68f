package sim

import (
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// avcc joins NAL units behind 4-byte lengths, as an AVCVIDEOPACKET of type 1 carries them.
func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

var (
	testIDR   = []byte{0x65, 0x88, 0x84}
	testSlice = []byte{0x41, 0x9a, 0x02}
	testSEI   = []byte{0x06, 0x05, 0x01}
)

func seqHeader() *message.Video {
	return &message.Video{Codec: message.CodecH264, IsKeyFrame: true, Type: message.VideoTypeConfig,
		AVCConfig: &mp4.AVCDecoderConfiguration{LengthSizeMinusOne: 3}}
}

func videoTag(key bool, ms int, au []byte) *message.Video {
	return &message.Video{Codec: message.CodecH264, IsKeyFrame: key, Type: message.VideoTypeAU,
		DTS: time.Duration(ms) * time.Millisecond, AU: au}
}

func newTestIngest() *rtmpIngest {
	m := &MediaServer{log: slog.New(slog.NewTextHandler(io.Discard, nil)), stats: map[string]*StreamStats{},
		refusals: map[string][]string{}, streams: map[string]Stream{}}
	return &rtmpIngest{m: m, name: "cam"}
}

// What a decoder makes of a publish's video tags (FLV spec v10.1 E.4.3.1): frames count from the
// sequence header and the first keyframe on; what comes before either cannot be decoded and is
// lost; decode times line up over every publish of the path in turn.
func TestRTMPIngestAccountsAsADecoder(t *testing.T) {
	tests := []struct {
		name      string
		publishes [][]message.Message
		want      []RTMPPublish
		backwards uint64
		maxStep   time.Duration
	}{{
		name: "header, keyframe, inter frames",
		publishes: [][]message.Message{{seqHeader(), videoTag(true, 0, avcc(testIDR)),
			videoTag(false, 40, avcc(testSlice)), videoTag(false, 80, avcc(testSEI, testSlice))}},
		want:    []RTMPPublish{{SequenceHeaderFirst: true, FirstFrameKey: true, Frames: 3, LastDTS: 80 * time.Millisecond}},
		maxStep: 40 * time.Millisecond,
	}, {
		name: "NAL units before the sequence header are lost",
		publishes: [][]message.Message{{videoTag(true, 0, avcc(testIDR)), seqHeader(),
			videoTag(false, 40, avcc(testSlice)), videoTag(true, 80, avcc(testIDR))}},
		want: []RTMPPublish{{Undecodable: 2, Frames: 1, FirstDTS: 80 * time.Millisecond,
			LastDTS: 80 * time.Millisecond}},
	}, {
		name: "a keyframe flag without an IDR does not start the picture",
		publishes: [][]message.Message{{seqHeader(), videoTag(true, 0, avcc(testSlice)),
			videoTag(false, 40, avcc(testSlice))}},
		want: []RTMPPublish{{SequenceHeaderFirst: true, Undecodable: 2}},
	}, {
		name:      "a broken NAL unit length is lost",
		publishes: [][]message.Message{{seqHeader(), videoTag(true, 0, append(avcc(testIDR), 0, 0, 9, 1))}},
		want:      []RTMPPublish{{SequenceHeaderFirst: true, Undecodable: 1}},
	}, {
		name: "a re-publish continuing the timeline",
		publishes: [][]message.Message{
			{seqHeader(), videoTag(true, 1000, avcc(testIDR)), videoTag(false, 1040, avcc(testSlice))},
			{seqHeader(), videoTag(true, 1080, avcc(testIDR)), videoTag(false, 1120, avcc(testSlice))},
		},
		want: []RTMPPublish{
			{SequenceHeaderFirst: true, FirstFrameKey: true, Frames: 2, FirstDTS: 1000 * time.Millisecond,
				LastDTS: 1040 * time.Millisecond},
			{SequenceHeaderFirst: true, FirstFrameKey: true, Frames: 2, FirstDTS: 1080 * time.Millisecond,
				LastDTS: 1120 * time.Millisecond},
		},
		maxStep: 40 * time.Millisecond,
	}, {
		name: "a re-publish restarting at time 0 goes back",
		publishes: [][]message.Message{
			{seqHeader(), videoTag(true, 5000, avcc(testIDR))},
			{seqHeader(), videoTag(true, 0, avcc(testIDR)), videoTag(false, 40, avcc(testSlice))},
		},
		want: []RTMPPublish{
			{SequenceHeaderFirst: true, FirstFrameKey: true, Frames: 1, FirstDTS: 5 * time.Second, LastDTS: 5 * time.Second},
			{SequenceHeaderFirst: true, FirstFrameKey: true, Frames: 2, LastDTS: 40 * time.Millisecond},
		},
		backwards: 1,
		maxStep:   40 * time.Millisecond,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newTestIngest()
			for _, pub := range tt.publishes {
				in.st, in.v, in.video, in.audio = nil, nil, "", ""
				for _, msg := range pub {
					if err := in.message(msg); err != nil {
						t.Fatal(err)
					}
				}
			}
			st := in.m.stats["cam"]
			if len(st.RTMP) != len(tt.want) || st.Publishes != len(tt.want) {
				t.Fatalf("%d publishes (%d counted), want %d", len(st.RTMP), st.Publishes, len(tt.want))
			}
			for i, p := range st.RTMP {
				p.Admitted, p.FirstArrival, p.LastArrival = time.Time{}, time.Time{}, time.Time{}
				if p != tt.want[i] {
					t.Errorf("publish %d: %+v, want %+v", i, p, tt.want[i])
				}
			}
			if st.VideoTimeBackwards != tt.backwards || st.VideoTimeMaxStep != tt.maxStep {
				t.Errorf("timeline: %d steps back, largest %s; want %d, %s", st.VideoTimeBackwards,
					st.VideoTimeMaxStep, tt.backwards, tt.maxStep)
			}
		})
	}
}

// onMetaData's codec ids admit the publish before any tag, so that a codec Flussonic does not
// take over RTMP is refused before the publish counts.
func TestRTMPIngestAdmitsByMetadata(t *testing.T) {
	in := newTestIngest()
	meta := &message.DataAMF0{Payload: amf0.Data{"@setDataFrame", "onMetaData",
		amf0.ECMAArray{{Key: "videocodecid", Value: 7.0}, {Key: "audiocodecid", Value: 7.0}}}}
	if err := in.message(meta); err == nil {
		t.Fatal("PCMA over RTMP admitted")
	}
	if st := in.m.stats["cam"]; st != nil && st.Publishes != 0 {
		t.Errorf("a refused publish counted: %+v", st)
	}
	in = newTestIngest()
	meta.Payload[2] = amf0.ECMAArray{{Key: "videocodecid", Value: 7.0}, {Key: "audiocodecid", Value: 10.0}}
	if err := in.message(meta); err != nil {
		t.Fatal(err)
	}
	if st := in.m.stats["cam"]; st.Publishes != 1 || len(st.Codecs) != 2 {
		t.Errorf("after onMetaData: %+v", st)
	}
}

// Whatever video tags a publisher sends, each is a frame or lost, and the accounting never
// panics. Each fuzzed tag is one byte of kind (bit 0: sequence header, bit 1: keyframe flag,
// bits 2-3: NAL unit length size) and one of length, then that many bytes of data.
func FuzzRTMPVideo(f *testing.F) {
	idr := avcc(testIDR)
	f.Add(append([]byte{0x0d, 0, 0x0e, byte(len(idr))}, idr...))
	f.Add([]byte{0x02, 4, 0, 0, 0, 9, 0x01, 0x02, 0xff, 0xff})
	f.Add([]byte{0x05, 0, 0x06, 3, 0x01, 0x65, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := newTestIngest()
		var tags uint64
		for len(b) >= 2 {
			kind, n := b[0], int(b[1])
			b = b[2:]
			n = min(n, len(b))
			data := b[:n]
			b = b[n:]
			lenSize := []uint8{0, 1, 3, 2}[kind>>2&3] // a length size of 1, 2, 4 or the invalid 3
			var msg message.Message
			if kind&1 != 0 {
				msg = &message.Video{Codec: message.CodecH264, Type: message.VideoTypeConfig,
					AVCConfig: &mp4.AVCDecoderConfiguration{LengthSizeMinusOne: lenSize}}
			} else {
				msg = videoTag(kind&2 != 0, int(tags)*40, data)
				tags++
			}
			if err := in.message(msg); err != nil {
				t.Fatal(err)
			}
		}
		if st := in.m.stats["cam"]; st != nil {
			p := st.RTMP[0]
			if p.Frames+p.Undecodable != tags || st.VideoFrames != p.Frames {
				t.Errorf("%d tags, %d frames and %d lost", tags, p.Frames, p.Undecodable)
			}
		}
	})
}
