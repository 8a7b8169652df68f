package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

// track turns the RTP packets of one track into the FLV tags RTMP carries. RTMP carries
// frames, not packets, so unlike an RTSP upstream this one depacketizes, straight into the
// tag body it reuses; the payload bytes pass through untouched.
type track struct {
	typ       byte    // rtmpVideo or rtmpAudio
	codecID   float64 // onMetaData's videocodecid or audiocodecid
	header    []byte  // the sequence start tag body, sent before any frame; nil if none
	clockRate int
	write     func(out []byte, c *rtmpConn, pkt *rtp.Packet) []byte

	started bool
	base    time.Duration // the first packet's time on the session's Timeline
	lastTS  uint32
	ticks   int64 // timestamp relative to the first packet's, unwrapped

	body []byte // the tag body being built or sent

	// H.264 (RFC 6184) frame assembly: the body holds the tag header, then NAL units with
	// 4-byte lengths.
	frameTS uint32
	inFrame bool
	broken  bool // a packet of this frame was lost or not understood: drop the frame
	fuStart int  // offset of the length of the fragmented NAL unit being joined, -1 if none
	nalus   [][]byte
	sps     []byte // the last SPS, a copy of its own: the DTS extractor keeps what it is given
	dts     h264.DTSExtractor

	// AAC (RFC 3640): AU header field sizes in bits, and an AU fragmented over packets.
	sizeLength, indexLength, indexDeltaLength int
	frag                                      []byte
	fragSize                                  int
}

const (
	aacTagHeader = flvSoundAAC<<4 | 3<<2 | 1<<1 | 1 // rate and size bits are fixed for AAC
	pcmuHeader   = flvSoundPCMU<<4 | 1<<1           // FLV: G.711 is 8 kHz whatever the rate bits say
	avcTagHeader = 5                                // frame type/codec, packet type, composition time
)

// newTrack prepares a track that Carries accepted.
func newTrack(f format.Format, params [3][]byte) (*track, error) {
	t := &track{clockRate: f.ClockRate(), fuStart: -1}
	switch f := f.(type) {
	case *format.H264:
		if params[1] == nil || params[2] == nil {
			return nil, errors.New("H.264 SPS/PPS not known yet")
		}
		cfg, err := avcDecoderConfig(params[1], params[2])
		if err != nil {
			return nil, err
		}
		t.typ, t.codecID = rtmpVideo, flvCodecAVC
		t.header = append(appendAVCVideo(nil, true, 0, 0), cfg...)
		t.sps = append([]byte(nil), params[1]...)
		t.dts.Initialize()
		t.write = t.writeH264
	case *format.MPEG4Audio:
		asc, err := f.Config.Marshal()
		if err != nil {
			return nil, fmt.Errorf("AAC config: %w", err)
		}
		t.typ, t.codecID = rtmpAudio, flvSoundAAC
		t.header = append([]byte{aacTagHeader, 0}, asc...)
		t.sizeLength, t.indexLength, t.indexDeltaLength = f.SizeLength, f.IndexLength, f.IndexDeltaLength
		if t.sizeLength > 32 || t.indexLength > 32 || t.indexDeltaLength > 32 {
			return nil, errors.New("AAC with AU header fields over 32 bits")
		}
		t.write = t.writeAAC
	case *format.G711:
		t.typ, t.codecID = rtmpAudio, flvSoundPCMU
		t.write = t.writePCMU
	default:
		return nil, fmt.Errorf("RTMP does not carry %s", codecLabel(f))
	}
	return t, nil
}

// pts is the RTMP time of an RTP timestamp of this track.
func (t *track) pts(ts uint32) time.Duration {
	t.ticks += int64(int32(ts - t.lastTS))
	t.lastTS = ts
	return t.base + time.Duration(t.ticks*int64(time.Second)/int64(t.clockRate))
}

// rtmpTime is an RTMP timestamp: milliseconds, wrapping at 2^32 as the protocol does.
func rtmpTime(d time.Duration) uint32 {
	if d < 0 {
		return 0
	}
	return uint32(d.Milliseconds())
}

func (t *track) media(out []byte, c *rtmpConn, ts uint32) []byte {
	csid := byte(csidAudio)
	if t.typ == rtmpVideo {
		csid = csidVideo
	}
	return appendChunks(out, c.chunkSize, csid, t.typ, c.streamID, ts, t.body)
}

func (t *track) writePCMU(out []byte, c *rtmpConn, pkt *rtp.Packet) []byte {
	t.body = append(append(t.body[:0], pcmuHeader), pkt.Payload...)
	return t.media(out, c, rtmpTime(t.pts(pkt.Timestamp)))
}

// writeH264 adds the packet to the frame being built and sends the frame when the packet
// ends it (the marker bit) or a packet of the next frame shows it ended (a new timestamp).
func (t *track) writeH264(out []byte, c *rtmpConn, pkt *rtp.Packet) []byte {
	if t.inFrame && pkt.Timestamp != t.frameTS {
		out = t.endFrame(out, c)
	}
	if !t.inFrame {
		t.inFrame, t.broken, t.frameTS, t.fuStart = true, false, pkt.Timestamp, -1
		t.body = append(t.body[:0], 0, 0, 0, 0, 0)
	}
	if !t.broken && !t.addRTP(pkt.Payload) {
		t.broken = true
	}
	if len(t.body) > maxFrame {
		t.broken = true
		t.body = t.body[:avcTagHeader]
	}
	if pkt.Marker {
		out = t.endFrame(out, c)
	}
	return out
}

// addRTP appends the NAL units of one RTP payload (single NAL unit, STAP-A or FU-A) to the
// frame; false means the payload cannot be joined (another packetization, a lost fragment).
func (t *track) addRTP(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		if t.fuStart >= 0 {
			return false
		}
		t.body = appendNALU(t.body, p)
	case typ == 24: // STAP-A
		if t.fuStart >= 0 {
			return false
		}
		for p = p[1:]; len(p) > 0; {
			if len(p) < 2 {
				return false
			}
			n := int(binary.BigEndian.Uint16(p))
			if n == 0 || 2+n > len(p) {
				return false
			}
			t.body = appendNALU(t.body, p[2:2+n])
			p = p[2+n:]
		}
	case typ == 28: // FU-A
		if len(p) < 2 {
			return false
		}
		start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
		switch {
		case start && t.fuStart < 0:
			t.fuStart = len(t.body)
			t.body = append(t.body, 0, 0, 0, 0, p[0]&0xe0|p[1]&0x1f)
		case start || t.fuStart < 0:
			return false
		}
		t.body = append(t.body, p[2:]...)
		if end {
			binary.BigEndian.PutUint32(t.body[t.fuStart:], uint32(len(t.body)-t.fuStart-4))
			t.fuStart = -1
		}
	default:
		return false
	}
	return true
}

func appendNALU(b, nalu []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(nalu)))
	return append(b, nalu...)
}

// endFrame sends the frame built so far as one video tag, unless it is broken or empty.
func (t *track) endFrame(out []byte, c *rtmpConn) []byte {
	t.inFrame = false
	if t.broken || t.fuStart >= 0 || len(t.body) == avcTagHeader {
		return out
	}
	key := false
	// The DTS extractor learns the SPS from the frames; one that does not carry it gets the
	// last one seen, which is the same slice every time so that it is parsed only once.
	t.nalus = append(t.nalus[:0], t.sps)
	for b := t.body[avcTagHeader:]; len(b) >= 4; {
		n := int(binary.BigEndian.Uint32(b))
		nalu := b[4 : 4+n]
		b = b[4+n:]
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeIDR:
			key = true
		case h264.NALUTypeSPS:
			if !bytes.Equal(t.sps, nalu) {
				t.sps = append(t.sps[:0:0], nalu...)
				t.nalus[0] = t.sps
			}
			continue
		}
		t.nalus = append(t.nalus, nalu)
	}
	pts := t.pts(t.frameTS)
	d, err := t.dts.Extract(t.nalus, int64(pts))
	dts := time.Duration(d)
	if err != nil || dts > pts {
		dts = pts
	}
	dts = max(dts, 0)
	ft := byte(flvInterFrame)
	if key {
		ft = flvKeyFrame
	}
	cts := int32((pts - dts).Milliseconds())
	t.body[0], t.body[1] = ft<<4|flvCodecAVC, 1
	t.body[2], t.body[3], t.body[4] = byte(cts>>16), byte(cts>>8), byte(cts)
	return t.media(out, c, rtmpTime(dts))
}

// writeAAC sends each access unit of an RFC 3640 (AAC-hbr) payload as one audio tag. An AU
// too large for one packet arrives as fragments with one AU header each and is joined first.
func (t *track) writeAAC(out []byte, c *rtmpConn, pkt *rtp.Packet) []byte {
	p := pkt.Payload
	if len(p) < 2 {
		return out
	}
	headerBits := int(binary.BigEndian.Uint16(p))
	headerBytes := (headerBits + 7) / 8
	if 2+headerBytes > len(p) || headerBits == 0 {
		t.frag = t.frag[:0]
		return out
	}
	headers, data := p[2:2+headerBytes], p[2+headerBytes:]
	pts := t.pts(pkt.Timestamp)
	for i, pos := 0, 0; pos+t.sizeLength <= headerBits; i++ {
		size := int(readBits(headers, pos, t.sizeLength))
		pos += t.sizeLength
		if i == 0 {
			pos += t.indexLength
		} else {
			pos += t.indexDeltaLength
		}
		if size > len(data) || len(t.frag) > 0 {
			// A fragment: one AU header whose size is the whole AU's.
			if i != 0 || size > maxFrame {
				t.frag = t.frag[:0]
				return out
			}
			if len(t.frag) == 0 {
				t.fragSize = size
			}
			t.frag = append(t.frag, data...)
			if len(t.frag) < t.fragSize || !pkt.Marker {
				if len(t.frag) > t.fragSize {
					t.frag = t.frag[:0]
				}
				return out
			}
			t.body = append(append(t.body[:0], aacTagHeader, 1), t.frag[:t.fragSize]...)
			t.frag = t.frag[:0]
			return t.media(out, c, rtmpTime(pts))
		}
		at := pts + time.Duration(i)*1024*time.Second/time.Duration(t.clockRate)
		t.body = append(append(t.body[:0], aacTagHeader, 1), data[:size]...)
		out = t.media(out, c, rtmpTime(at))
		data = data[size:]
	}
	return out
}

// readBits reads n (at most 32) bits of b from bit position pos, most significant first.
func readBits(b []byte, pos, n int) uint32 {
	var v uint32
	for i := range n {
		bit := pos + i
		v = v<<1 | uint32(b[bit/8]>>(7-bit%8)&1)
	}
	return v
}
