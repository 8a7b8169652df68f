package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// FLV tag bodies as RTMP carries them (FLV spec 10, annex E; Enhanced RTMP v1/v2).

// FLV codec ids and Enhanced RTMP FourCCs.
const (
	flvCodecAVC  = 7
	flvSoundPCMA = 7
	flvSoundPCMU = 8
	flvSoundAAC  = 10
	flvSoundEx   = 9 // Enhanced RTMP: a FourCC follows

	fourCCHEVC = "hvc1"
	fourCCOpus = "Opus"
)

// Frame types in the upper nibble of a video tag's first byte.
const (
	flvKeyFrame   = 1
	flvInterFrame = 2
)

// Enhanced RTMP packet types.
const (
	exSequenceStart = 0
	exCodedFrames   = 1 // video: with a composition time
	exCodedFramesX  = 3 // video: composition time 0
)

// fourCCNumber is how onMetaData gives an Enhanced RTMP codec id.
func fourCCNumber(s string) float64 { return float64(binary.BigEndian.Uint32([]byte(s))) }

// avcDecoderConfig builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
func avcDecoderConfig(sps, pps []byte) ([]byte, error) {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("H.264 SPS: %w", err)
	}
	if len(sps) < 4 || len(sps) > 0xffff || len(pps) == 0 || len(pps) > 0xffff {
		return nil, errors.New("H.264 parameter sets of impossible size")
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xfc | 3, 0xe0 | 1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	b = append(b, pps...)
	switch s.ProfileIdc {
	case 100, 110, 122, 144:
		// High profiles carry chroma format and bit depths, which decoders size buffers by.
		b = append(b, 0xfc|byte(s.ChromaFormatIdc&3), 0xf8|byte(s.BitDepthLumaMinus8&7),
			0xf8|byte(s.BitDepthChromaMinus8&7), 0)
	}
	return b, nil
}

// hevcDecoderConfig builds an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
func hevcDecoderConfig(vps, sps, pps []byte) ([]byte, error) {
	var s h265.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("H.265 SPS: %w", err)
	}
	for _, p := range [][]byte{vps, sps, pps} {
		if len(p) < 2 || len(p) > 0xffff {
			return nil, errors.New("H.265 parameter sets of impossible size")
		}
	}
	// profile_tier_level's general part is copied bit for bit from the SPS, once the
	// emulation prevention bytes that may sit inside it are gone.
	rbsp := h264.EmulationPreventionRemove(sps)
	if len(rbsp) < 15 {
		return nil, errors.New("H.265 SPS too short")
	}
	b := []byte{1}
	b = append(b, rbsp[3:15]...) // profile space/tier/idc, compatibility, constraints, level
	b = append(b,
		0xf0, 0x00, // min_spatial_segmentation_idc 0
		0xfc,                                // parallelismType unknown
		0xfc|byte(s.ChromaFormatIdc&3),      //
		0xf8|byte(s.BitDepthLumaMinus8&7),   //
		0xf8|byte(s.BitDepthChromaMinus8&7), //
		0, 0,                                // avgFrameRate unknown
		(s.MaxSubLayersMinus1+1)&7<<3|boolBit(s.TemporalIDNestingFlag)<<2|3, // 4-byte NALU lengths
		3)
	for _, p := range [][]byte{vps, sps, pps} {
		b = append(b, 0x80|(p[0]>>1)&0x3f, 0, 1) // array complete, NAL type, one NALU
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b, nil
}

func boolBit(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// appendAVCC appends the NAL units with 4-byte length prefixes.
func appendAVCC(b []byte, au [][]byte) []byte {
	for _, n := range au {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

// appendAVCVideo appends the header of a legacy H.264 video tag.
func appendAVCVideo(b []byte, key bool, packetType byte, cts int32) []byte {
	ft := byte(flvInterFrame)
	if key {
		ft = flvKeyFrame
	}
	b = append(b, ft<<4|flvCodecAVC, packetType)
	return appendUint24(b, uint32(cts)&0xffffff)
}

// appendExVideo appends the header of an Enhanced RTMP video tag.
func appendExVideo(b []byte, key bool, packetType byte, fourCC string, cts int32) []byte {
	ft := byte(flvInterFrame)
	if key {
		ft = flvKeyFrame
	}
	b = append(b, 0x80|ft<<4|packetType)
	b = append(b, fourCC...)
	if packetType == exCodedFrames {
		b = appendUint24(b, uint32(cts)&0xffffff)
	}
	return b
}

// opusHead builds the Opus identification header (RFC 7845 5.1) Enhanced RTMP starts with.
func opusHead(channels int) []byte {
	b := append([]byte("OpusHead"), 1, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, 0)     // pre-skip
	b = binary.LittleEndian.AppendUint32(b, 48000) // input sample rate
	b = binary.LittleEndian.AppendUint16(b, 0)     // output gain
	return append(b, 0)                            // channel mapping family 0
}
