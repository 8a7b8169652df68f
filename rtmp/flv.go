package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// FLV tag bodies as RTMP carries them (FLV spec 10, annex E).

// FLV codec ids.
const (
	flvCodecAVC  = 7
	flvSoundPCMU = 8
	flvSoundAAC  = 10
)

// Frame types in the upper nibble of a video tag's first byte.
const (
	flvKeyFrame   = 1
	flvInterFrame = 2
)

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

// appendAVCVideo appends the header of a legacy H.264 video tag.
func appendAVCVideo(b []byte, key bool, packetType byte, cts int32) []byte {
	ft := byte(flvInterFrame)
	if key {
		ft = flvKeyFrame
	}
	b = append(b, ft<<4|flvCodecAVC, packetType)
	return appendUint24(b, uint32(cts)&0xffffff)
}
