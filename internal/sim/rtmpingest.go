package sim

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// This file is what the stand-in makes of the media of one RTMP publish, as a receiver that
// decodes and records it would see it. It follows Adobe's RTMP specification 1.0 (2012) §7.1.5
// (audio and video messages carry FLV tag bodies; §5.3.1.2: their timestamps are milliseconds
// on the stream's one timeline) and the FLV specification v10.1 annex E.4.3.1, VIDEODATA and
// AVCVIDEOPACKET:
//
//   - FrameType 1 is a keyframe, 2 an inter frame; CodecID 7 is AVC.
//   - AVCPacketType 0 is the AVC sequence header, an AVCDecoderConfigurationRecord
//     (ISO/IEC 14496-15 5.2.4.1) holding the SPS and PPS and the NAL unit length size;
//     1 is one or more NAL units, each behind a length of that size; 2 is the end of sequence.
//   - CompositionTime (SI24, ms) is the picture's presentation offset from its decode time:
//     PTS = DTS + CompositionTime.
//
// So a decoder refuses what the spec leaves it unable to decode, and the stand-in counts that
// as lost: NAL units before the publish's sequence header (no SPS/PPS to decode them with),
// inter frames before the publish's first keyframe (no reference picture), and NAL unit data
// that does not parse with the record's length size. Flussonic's own handling of these is not
// written down; a decoder's is what any recorder built on one does.

// maxRTMPPublishes bounds the publishes a path remembers.
const maxRTMPPublishes = 64

// RTMPPublish is one RTMP publish of a path as a decoder saw it.
type RTMPPublish struct {
	// SequenceHeaderFirst: the AVC sequence header came before any video frame.
	SequenceHeaderFirst bool
	// FirstFrameKey: the publish's first video frame was a keyframe (FrameType 1 with an IDR
	// NAL unit) after its sequence header, so that a player joining at the start decodes it.
	FirstFrameKey bool
	// Frames counts the decodable video frames, Undecodable the video frames a decoder could
	// not use (see above).
	Frames, Undecodable uint64
	// FirstDTS and LastDTS are the decode times of the first and last decodable frames.
	FirstDTS, LastDTS time.Duration
	// PTSBeforeDTS counts frames with a negative CompositionTime.
	PTSBeforeDTS uint64
	// Admitted is when the publish was admitted; FirstArrival and LastArrival are when its
	// first and last decodable frames arrived: a live viewer's wait at a re-publish is the time
	// from one publish's last frame to the next one's first.
	Admitted, FirstArrival, LastArrival time.Time
}

// rtmpTimeline is one path's video as the server's archive holds it: every publish in turn.
type rtmpTimeline struct {
	publishes int
	started   bool
	lastDTS   time.Duration
}

// rtmpVideo accounts for the video of one publish.
type rtmpVideo struct {
	st       *StreamStats
	pub      RTMPPublish
	n        int // the path's publish number
	lenSize  int // NAL unit length size from the sequence header; 0 before it
	keyed    bool
	anyFrame bool
}

// newRTMPVideo starts the path's next publish: it is the current one from now on.
func newRTMPVideo(st *StreamStats) *rtmpVideo {
	if len(st.RTMP) == maxRTMPPublishes {
		st.RTMP = append(st.RTMP[:0], st.RTMP[1:]...)
	}
	st.RTMP = append(st.RTMP, RTMPPublish{})
	st.rtmpLine.publishes++
	return &rtmpVideo{st: st, n: st.rtmpLine.publishes}
}

// current says whether this is the path's latest publish: the media of one that another
// replaced are its last packets, not the stream's.
func (v *rtmpVideo) current() bool { return v.n == v.st.rtmpLine.publishes }

// record puts the publish's record in the path's stats.
func (v *rtmpVideo) record() { v.st.RTMP[len(v.st.RTMP)-1] = v.pub }

// sequenceHeader takes an AVC sequence header with the NAL unit length size it states.
func (v *rtmpVideo) sequenceHeader(lengthSize int) {
	if !v.current() {
		return
	}
	if !v.anyFrame {
		v.pub.SequenceHeaderFirst = true
	}
	v.lenSize = lengthSize
	v.record()
}

// frame takes one AVC NALU tag: its FrameType says keyframe, dts is the message timestamp and
// cts its CompositionTime.
func (v *rtmpVideo) frame(keyType bool, dts, cts time.Duration, data []byte) {
	if !v.current() {
		return
	}
	v.anyFrame = true
	defer v.record()
	v.st.Bytes += uint64(len(data)) // over RTMP, the FLV tag bodies' media bytes
	v.st.VideoBytes += uint64(len(data))
	au, err := scanAVCC(data, v.lenSize)
	key := keyType && au.key
	if err != nil || !au.picture || (!key && !v.keyed) {
		v.pub.Undecodable++
		v.st.VideoUndecodable++
		return
	}
	if !v.keyed {
		v.keyed = true
		v.pub.FirstFrameKey = v.pub.Undecodable == 0
		v.pub.FirstDTS = dts
	}
	v.pub.Frames++
	v.pub.LastDTS = dts
	v.st.VideoFrames++
	if key {
		v.st.KeyFrames++
	}
	v.st.LastFrameAt = time.Now()
	v.pub.LastArrival = v.st.LastFrameAt
	if v.pub.FirstArrival.IsZero() {
		v.pub.FirstArrival = v.st.LastFrameAt
	}
	if v.st.FirstVideoAt.IsZero() {
		v.st.FirstVideoAt = v.st.LastFrameAt
	}
	v.st.FirstVideoFrameKey = v.pub.FirstFrameKey
	if cts < 0 {
		v.pub.PTSBeforeDTS++ // a picture shown before it is decoded
	}
	if v.st.rtmpLine.started {
		switch step := dts - v.st.rtmpLine.lastDTS; {
		case step < 0:
			v.st.VideoTimeBackwards++
		case step == 0:
			v.st.VideoTimeStill++ // two pictures at one time: a muxer rejects or moves one
		default:
			v.st.VideoTimeMaxStep = max(v.st.VideoTimeMaxStep, step)
		}
	}
	v.st.rtmpLine.started, v.st.rtmpLine.lastDTS = true, dts
}

var errNoSequenceHeader = errors.New("NAL units before the AVC sequence header")

// scanAVCC marks the NAL unit types of an AVCVIDEOPACKET's NAL units, each behind a big-endian
// length of lenSize (1, 2 or 4) bytes; lenSize 0 means no sequence header said it yet.
func scanAVCC(data []byte, lenSize int) (accessUnit, error) {
	var u accessUnit
	switch lenSize {
	case 0:
		return u, errNoSequenceHeader
	case 1, 2, 4:
	default:
		return u, fmt.Errorf("NAL unit length size %d", lenSize)
	}
	if len(data) == 0 {
		return u, errors.New("no NAL units")
	}
	for len(data) > 0 {
		if len(data) < lenSize {
			return u, errors.New("truncated NAL unit length")
		}
		n := 0
		for _, b := range data[:lenSize] {
			n = n<<8 | int(b)
		}
		data = data[lenSize:]
		if n == 0 || n > len(data) {
			return u, fmt.Errorf("NAL unit of %d bytes in %d", n, len(data))
		}
		markH264(h264.NALUType(data[0]&0x1f), &u)
		data = data[n:]
	}
	return u, nil
}

// rtmpCodecs names the codecs an onMetaData message declares (FLV spec annex E.5: videocodecid
// and audiocodecid, by the ids of E.4.2.1 and E.4.3.1), "" for a kind it does not declare.
func rtmpCodecs(payload amf0.Data) (video, audio string, ok bool) {
	for i, item := range payload {
		if s, isString := item.(string); !isString || s != "onMetaData" || i+1 >= len(payload) {
			continue
		}
		var obj amf0.Object
		switch o := payload[i+1].(type) {
		case amf0.Object:
			obj = o
		case amf0.ECMAArray:
			obj = amf0.Object(o)
		default:
			return "", "", false
		}
		if id, found := obj.GetFloat64("videocodecid"); found {
			video = rtmpVideoCodec(uint8(id))
		}
		if id, found := obj.GetFloat64("audiocodecid"); found {
			audio = rtmpAudioCodec(uint8(id))
		}
		return video, audio, true
	}
	return "", "", false
}

func rtmpVideoCodec(id uint8) string { return flvCodecName(true, id) }
func rtmpAudioCodec(id uint8) string { return flvCodecName(false, id) }

// flvCodecName names an FLV codec id of annex E.4.3.1 (video) or E.4.2.1 (audio) as the rest of
// the stand-in names codecs; video 12 is the H.265 id that Flussonic and others use, not Adobe's.
func flvCodecName(video bool, id uint8) string {
	switch {
	case video && id == message.CodecH264:
		return "h264"
	case video && id == message.CodecH265:
		return "h265"
	case video:
		return fmt.Sprintf("flv video codec %d", id)
	case id == message.CodecMPEG4Audio:
		return "aac"
	case id == message.CodecPCMA:
		return "pcma"
	case id == message.CodecPCMU:
		return "pcmu"
	case id == message.CodecMPEG1Audio:
		return "mp3"
	}
	return fmt.Sprintf("flv audio codec %d", id)
}

// rtmpIngest is one RTMP publish after the server accepted its publish command: it admits the
// publish once its codecs are known (onMetaData, or else the first tag of each kind) and
// accounts for its media. The media server's lock guards it with the stats.
type rtmpIngest struct {
	m            *MediaServer
	name, query  string
	video, audio string // the codecs admitted, "" for a kind not seen yet
	st           *StreamStats
	v            *rtmpVideo
}

// message takes one message of the publish; an error ends it (a refused codec, as Flussonic
// closes the connection).
func (in *rtmpIngest) message(msg message.Message) error {
	in.m.mu.Lock()
	defer in.m.mu.Unlock()
	switch msg := msg.(type) {
	case *message.DataAMF0:
		if video, audio, ok := rtmpCodecs(msg.Payload); ok && in.st == nil {
			return in.admitLocked(video, audio)
		}
	case *message.Video:
		if err := in.admitLocked(rtmpVideoCodec(msg.Codec), ""); err != nil {
			return err
		}
		switch msg.Type {
		case message.VideoTypeConfig:
			if msg.AVCConfig != nil {
				in.v.sequenceHeader(int(msg.AVCConfig.LengthSizeMinusOne) + 1)
			}
		case message.VideoTypeAU:
			in.v.frame(msg.IsKeyFrame, msg.DTS, msg.PTSDelta, msg.AU)
		}
	case *message.Audio:
		if err := in.admitLocked("", rtmpAudioCodec(msg.Codec)); err != nil {
			return err
		}
		if !in.v.current() {
			return nil
		}
		in.st.Bytes += uint64(len(msg.AU))
		in.st.AudioBytes += uint64(len(msg.AU))
		in.st.AudioPackets++
		in.st.LastFrameAt = time.Now()
	}
	return nil
}

// admitLocked admits the codecs not admitted yet, and counts the publish at its first
// admission.
func (in *rtmpIngest) admitLocked(video, audio string) error {
	var names []string
	if video != "" && in.video == "" {
		names = append(names, video)
	}
	if audio != "" && in.audio == "" {
		names = append(names, audio)
	}
	if len(names) == 0 && in.st != nil {
		return nil
	}
	if refusal := in.m.admitLocked("rtmp", in.name, in.query, names); refusal != nil {
		return refusal // closing is how an RTMP server refuses a track it cannot take
	}
	in.video, in.audio = cmp.Or(in.video, video), cmp.Or(in.audio, audio)
	if in.st != nil {
		in.st.Codecs = append(in.st.Codecs, names...)
		return nil
	}
	st, ok := in.m.stats[in.name]
	if !ok {
		st = &StreamStats{}
		in.m.stats[in.name] = st
	}
	st.Codecs, st.Publishing, st.FirstVideoFrameKey = names, true, false
	st.Publishes++
	st.RecordedAt, st.FirstVideoAt = time.Now(), time.Time{}
	in.st, in.v = st, newRTMPVideo(st)
	in.v.pub.Admitted = st.RecordedAt
	in.m.log.Info("sim media server: publishing over rtmp", "stream", in.name, "codecs", names)
	return nil
}

// end marks the publish over.
func (in *rtmpIngest) end() {
	in.m.mu.Lock()
	defer in.m.mu.Unlock()
	if in.st != nil {
		in.st.Publishing = false
	}
}
