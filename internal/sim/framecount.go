package sim

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// accessUnit is what a frame counter learnt about one video access unit from its RTP packets.
type accessUnit struct {
	picture bool // has a slice: a frame, not only parameter sets or SEI
	key     bool // IDR (H.264) or IRAP (H.265)
	vps     bool
	sps     bool
	pps     bool
}

// hasParams reports whether the unit carries every parameter set its codec needs to decode.
func (u accessUnit) hasParams(isH265 bool) bool {
	return u.sps && u.pps && (u.vps || !isH265)
}

// frameCounter splits an H.264 or H.265 RTP packet stream into access units without
// depacketising it: a unit ends at a packet with the marker bit or when the timestamp changes
// (for senders that forget the marker). It only looks at NAL unit headers, so it never allocates
// and cannot be made to buffer.
type frameCounter struct {
	isH265  bool
	started bool
	ts      uint32
	cur     accessUnit
}

// observe feeds one RTP packet and calls done for each access unit with a picture that it
// completes. Parameter sets sent in packets of their own, with a timestamp of their own, count
// for the next picture, as decoders see them.
func (c *frameCounter) observe(pkt *rtp.Packet, done func(accessUnit)) {
	if c.started && pkt.Timestamp != c.ts {
		c.finish(done)
	}
	c.started = true
	c.ts = pkt.Timestamp
	if c.isH265 {
		scanH265(pkt.Payload, &c.cur)
	} else {
		scanH264(pkt.Payload, &c.cur)
	}
	if pkt.Marker {
		c.finish(done)
		c.started = false
	}
}

func (c *frameCounter) finish(done func(accessUnit)) {
	if !c.cur.picture {
		return // keep the parameter sets for the picture they belong to
	}
	done(c.cur)
	c.cur = accessUnit{}
}

func markH264(typ h264.NALUType, u *accessUnit) {
	switch typ {
	case h264.NALUTypeIDR:
		u.picture, u.key = true, true
	case h264.NALUTypeNonIDR, h264.NALUTypeDataPartitionA, h264.NALUTypeDataPartitionB, h264.NALUTypeDataPartitionC:
		u.picture = true
	case h264.NALUTypeSPS:
		u.sps = true
	case h264.NALUTypePPS:
		u.pps = true
	}
}

// scanH264 marks the NAL unit types in one RFC 6184 payload.
func scanH264(p []byte, u *accessUnit) {
	if len(p) < 1 {
		return
	}
	switch typ := h264.NALUType(p[0] & 0x1f); typ {
	case h264.NALUTypeSTAPA:
		scanAggregate(p[1:], func(n []byte) { markH264(h264.NALUType(n[0]&0x1f), u) })
	case h264.NALUTypeSTAPB:
		if len(p) >= 3 {
			scanAggregate(p[3:], func(n []byte) { markH264(h264.NALUType(n[0]&0x1f), u) })
		}
	case h264.NALUTypeFUA, h264.NALUTypeFUB:
		if len(p) >= 2 && p[1]&0x80 != 0 { // the start fragment names the type
			markH264(h264.NALUType(p[1]&0x1f), u)
		}
	default:
		markH264(typ, u)
	}
}

func markH265(typ h265.NALUType, u *accessUnit) {
	switch {
	case typ <= h265.NALUType_RSV_IRAP_VCL23 && typ >= h265.NALUType_BLA_W_LP:
		u.picture, u.key = true, true
	case typ < h265.NALUType_BLA_W_LP:
		u.picture = true
	case typ == h265.NALUType_VPS_NUT:
		u.vps = true
	case typ == h265.NALUType_SPS_NUT:
		u.sps = true
	case typ == h265.NALUType_PPS_NUT:
		u.pps = true
	}
}

func h265Type(b byte) h265.NALUType { return h265.NALUType((b >> 1) & 0x3f) }

// scanH265 marks the NAL unit types in one RFC 7798 payload (without DONL, as is the default
// sprop-max-don-diff=0).
func scanH265(p []byte, u *accessUnit) {
	if len(p) < 2 {
		return
	}
	switch typ := h265Type(p[0]); typ {
	case h265.NALUType_AggregationUnit:
		scanAggregate(p[2:], func(n []byte) { markH265(h265Type(n[0]), u) })
	case h265.NALUType_FragmentationUnit:
		if len(p) >= 3 && p[2]&0x80 != 0 {
			markH265(h265.NALUType(p[2]&0x3f), u)
		}
	default:
		markH265(typ, u)
	}
}

// scanAggregate calls f for each non-empty NAL unit of an aggregation packet body (16-bit size,
// unit, ...); a truncated tail is ignored.
func scanAggregate(p []byte, f func([]byte)) {
	for len(p) >= 2 {
		n := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if n == 0 || n > len(p) {
			return
		}
		f(p[:n])
		p = p[n:]
	}
}
