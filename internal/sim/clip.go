package sim

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// The clip is kept as two raw elementary streams (Annex-B H.264 with an access unit delimiter
// before each frame, and ADTS AAC) rather than a container: both parse in a few lines with what
// go.mod already has, and the fixed frame rates give every timestamp without a demuxer.
//
// Made once with (ffmpeg 5.1 from Debian 12, libx264; 640x360, 25 fps, 10 s, GOP 1 s, baseline so PTS == DTS):
//
//go:generate ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=25:duration=10 -f lavfi -i sine=frequency=880:beep_factor=4:sample_rate=16000:duration=10 -map 0:v -c:v libx264 -profile:v baseline -preset veryslow -pix_fmt yuv420p -b:v 300k -maxrate 400k -bufsize 400k -x264-params keyint=25:min-keyint=25:scenecut=0:repeat-headers=1:aud=1 -f h264 clip.h264 -map 1:a -c:a aac -b:a 32k -ac 1 -f adts clip.aac

//go:embed clip.h264 clip.aac
var clipFiles embed.FS

const (
	clipFPS           = 25
	videoClockRate    = 90000
	aacSamplesPerUnit = 1024

	// Bounds for parsing, far above what the embedded clip needs, so that a damaged or hostile
	// input fails instead of growing without limit.
	maxClipFrames     = 100_000
	maxNALUsPerFrame  = 64
	maxClipAudioUnits = 1_000_000
)

// clip is a parsed clip: whole access units with presentation times relative to its start, ready
// to be packetised and played in a loop.
type clip struct {
	sps, pps []byte
	width    int
	height   int
	video    []videoFrame
	audio    []audioUnit
	audioCfg mpeg4audio.AudioSpecificConfig

	// duration of one loop, in each track's clock: the loop offset that keeps timestamps going
	// forward across loops.
	videoDuration uint32 // 90 kHz
	audioDuration uint32 // audio sample rate
}

type videoFrame struct {
	pts uint32 // 90 kHz, from the clip's start
	au  [][]byte
	key bool
}

type audioUnit struct {
	pts uint32 // audio sample rate, from the clip's start
	au  []byte
}

// duration is the real time one loop of the clip lasts.
func (c *clip) duration() time.Duration {
	return time.Duration(c.videoDuration) * time.Second / videoClockRate
}

// loadClip parses the embedded clip. maxFrames > 0 cuts it to that many video frames (tests use a
// short loop to see the wrap-around quickly).
func loadClip(maxFrames int, video []byte) (*clip, error) {
	v, err := clipFiles.ReadFile("clip.h264")
	if err != nil {
		return nil, fmt.Errorf("read embedded video: %w", err)
	}
	if video != nil {
		v = video
	}
	a, err := clipFiles.ReadFile("clip.aac")
	if err != nil {
		return nil, fmt.Errorf("read embedded audio: %w", err)
	}
	return parseClip(v, a, maxFrames)
}

// parseClip turns an Annex-B H.264 stream at clipFPS and an ADTS AAC stream into a clip. Every
// keyframe gets the SPS and PPS in front of it, as cameras send them, so a reader joining at any
// keyframe can decode without the SDP.
func parseClip(annexB, adts []byte, maxFrames int) (*clip, error) {
	frames, err := splitAccessUnits(annexB)
	if err != nil {
		return nil, fmt.Errorf("parse clip video: %w", err)
	}
	if maxFrames > 0 && len(frames) > maxFrames {
		frames = frames[:maxFrames]
	}

	c := &clip{}
	for _, au := range frames {
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				if c.sps == nil {
					c.sps = n
				}
			case h264.NALUTypePPS:
				if c.pps == nil {
					c.pps = n
				}
			}
		}
	}
	if c.sps == nil || c.pps == nil {
		return nil, errors.New("parse clip video: no SPS/PPS")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		return nil, fmt.Errorf("parse clip SPS: %w", err)
	}
	c.width, c.height = sps.Width(), sps.Height()

	for i, au := range frames {
		f := videoFrame{pts: uint32(i) * videoClockRate / clipFPS, key: h264.IsRandomAccess(au)}
		if f.key && !hasParams(au) {
			au = append([][]byte{c.sps, c.pps}, au...)
		}
		f.au = au
		c.video = append(c.video, f)
	}
	if !c.video[0].key {
		return nil, errors.New("parse clip video: does not start with a keyframe")
	}
	c.videoDuration = uint32(len(c.video)) * videoClockRate / clipFPS

	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(adts); err != nil {
		return nil, fmt.Errorf("parse clip audio: %w", err)
	}
	if len(pkts) == 0 || len(pkts) > maxClipAudioUnits {
		return nil, fmt.Errorf("parse clip audio: %d access units", len(pkts))
	}
	first := pkts[0]
	c.audioCfg = mpeg4audio.AudioSpecificConfig{
		Type:          first.Type,
		SampleRate:    first.SampleRate,
		ChannelConfig: first.ChannelConfig,
	}
	c.audioDuration = uint32(uint64(c.videoDuration) * uint64(first.SampleRate) / videoClockRate)
	for i, p := range pkts {
		if p.SampleRate != first.SampleRate || p.Type != first.Type {
			return nil, fmt.Errorf("parse clip audio: unit %d changes format", i)
		}
		pts := uint32(i) * aacSamplesPerUnit
		// A unit that would overlap the next loop is dropped: a short gap at the loop point is
		// what keeps audio timestamps strictly increasing.
		if pts+aacSamplesPerUnit > c.audioDuration {
			break
		}
		c.audio = append(c.audio, audioUnit{pts: pts, au: p.AU})
	}
	return c, nil
}

func hasParams(au [][]byte) bool {
	var sps, pps bool
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = true
		case h264.NALUTypePPS:
			pps = true
		}
	}
	return sps && pps
}

// splitAccessUnits splits an Annex-B H.264 byte stream into access units. A new unit starts at an
// access unit delimiter, or at parameter sets or a slice with first_mb_in_slice == 0 once the
// current unit already has a picture, so streams without delimiters split too. Delimiters and
// empty NAL units are dropped: real cameras rarely send them.
func splitAccessUnits(buf []byte) ([][][]byte, error) {
	var (
		units  [][][]byte
		cur    [][]byte
		hasVCL bool
	)
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		if hasVCL {
			if len(units) >= maxClipFrames {
				return fmt.Errorf("more than %d frames", maxClipFrames)
			}
			units = append(units, cur)
		}
		cur, hasVCL = nil, false
		return nil
	}
	for nalu := range annexBNALUs(buf) {
		if len(nalu) == 0 {
			continue
		}
		typ := h264.NALUType(nalu[0] & 0x1f)
		vcl := typ >= h264.NALUTypeNonIDR && typ <= h264.NALUTypeIDR
		switch {
		case typ == h264.NALUTypeAccessUnitDelimiter:
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		case hasVCL && (typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS || typ == h264.NALUTypeSEI):
			if err := flush(); err != nil {
				return nil, err
			}
		case hasVCL && vcl && len(nalu) > 1 && nalu[1]&0x80 != 0:
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if len(cur) >= maxNALUsPerFrame {
			return nil, fmt.Errorf("more than %d NAL units in frame %d", maxNALUsPerFrame, len(units))
		}
		cur = append(cur, nalu)
		hasVCL = hasVCL || vcl
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(units) == 0 {
		return nil, errors.New("no frames")
	}
	return units, nil
}

// annexBNALUs yields the NAL units between start codes (00 00 01 or 00 00 00 01), without the
// start codes; bytes before the first start code are ignored.
func annexBNALUs(buf []byte) func(yield func([]byte) bool) {
	startCode := []byte{0, 0, 1}
	return func(yield func([]byte) bool) {
		i := bytes.Index(buf, startCode)
		if i < 0 {
			return
		}
		pos := i + 3
		for pos <= len(buf) {
			j := bytes.Index(buf[pos:], startCode)
			end := len(buf)
			if j >= 0 {
				end = pos + j
			}
			nalu := buf[pos:end]
			// Zeros before the next start code belong to it (the 4-byte form), not to this unit.
			if j >= 0 {
				nalu = bytes.TrimRight(nalu, "\x00")
			}
			if !yield(nalu) || j < 0 {
				return
			}
			pos = end + 3
		}
	}
}
