package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// selected is a camera track chosen for relaying.
type selected struct {
	media  *description.Media
	format format.Format
}

// selectTracks picks the first H.264/H.265 video track and, when audio is wanted, the first
// AAC, G.711 or Opus audio track. Metadata and back channels are never relayed.
func selectTracks(desc *description.Session, audio bool) ([]selected, error) {
	var video, snd *selected
	var offered []string
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			offered = append(offered, string(m.Type)+" "+f.RTPMap())
			switch f.(type) {
			case *format.H264, *format.H265:
				if video == nil && m.Type == description.MediaTypeVideo {
					video = &selected{m, f}
				}
			case *format.MPEG4Audio, *format.G711, *format.Opus:
				if snd == nil && audio && m.Type == description.MediaTypeAudio {
					snd = &selected{m, f}
				}
			}
		}
	}
	if video == nil {
		return nil, fmt.Errorf("no H.264 or H.265 video track (camera offers: %s)", strings.Join(offered, ", "))
	}
	out := []selected{*video}
	if snd != nil {
		out = append(out, *snd)
	}
	return out, nil
}

// newTrackSet describes the selected tracks for upstream, with fresh Media values so that the
// upstream client never shares state with the camera client.
func newTrackSet(sel []selected) *trackSet {
	t := &trackSet{}
	for i, s := range sel {
		t.medias = append(t.medias, &description.Media{Type: s.media.Type, Formats: []format.Format{s.format}})
		if i == 0 {
			t.videoName = codecName(s.format)
			if _, ok := s.format.(*format.H265); ok {
				t.video = codecH265
			} else {
				t.video = codecH264
			}
		} else {
			t.audioName = codecName(s.format)
		}
	}
	t.signature = signatureOf(t.medias, false)
	t.codecSignature = signatureOf(t.medias, true)
	return t
}

// parameterSets returns the VPS, SPS and PPS the SDP declares for the video format.
func parameterSets(f format.Format) [3][]byte {
	switch f := f.(type) {
	case *format.H264:
		return [3][]byte{nil, f.SPS, f.PPS}
	case *format.H265:
		return [3][]byte{f.VPS, f.SPS, f.PPS}
	}
	return [3][]byte{}
}

// codecName is the name Stats and the agent use for a relayed format.
func codecName(f format.Format) string {
	switch f := f.(type) {
	case *format.H264:
		return "H264"
	case *format.H265:
		return "H265"
	case *format.MPEG4Audio:
		return "AAC"
	case *format.G711:
		if f.MULaw {
			return "PCMU"
		}
		return "PCMA"
	case *format.Opus:
		return "Opus"
	}
	return f.RTPMap()
}

// udpSilence is how long a UDP session may deliver nothing before auto moves it to TCP: UDP
// gets lost behind NAT and firewalls, and then nothing arrives at all (gortsplib and ffmpeg
// wait about as long).
const udpSilence = 3 * time.Second

var (
	// errTransportRefused is a camera's 461 Unsupported Transport to SETUP.
	errTransportRefused = errors.New("461 Unsupported Transport")
	// errUDPSilent is a UDP session that delivered nothing within udpSilence.
	errUDPSilent = fmt.Errorf("no packet arrived over UDP within %s", udpSilence)
)

// cameraSession is one camera session set up over TCP (player) or UDP (udpSession).
type cameraSession interface {
	selected() []selected
	// play delivers each RTP packet of track i to onPacket (valid only during the call) and
	// calls onBatch after each batch, until the session fails or ctx ends (then nil).
	play(ctx context.Context, pacer *Pacer, onPacket func(int, *rtp.Packet, time.Time), onBatch func(time.Time)) error
	close() error
}

func (p *player) selected() []selected { return p.sel }

// playCamera is the one way camgate plays a camera, for relays and probes alike: it opens a
// session over transport ("tcp" or "udp") and plays it. With auto, a transport the camera
// refuses (461) or a UDP session that stays silent is tried again at once over the other, as
// ffmpeg and gortsplib do. started sees each session's tracks and transport before its first
// packet. It returns the transport last used.
func playCamera(
	ctx context.Context, u *url.URL, o cameraOptions, transport string, auto bool, pacer *Pacer,
	started func(sel []selected, transport string), onPacket func(int, *rtp.Packet, time.Time),
	onBatch func(time.Time),
) (string, error) {
	for switched := false; ; switched = true {
		err := playOver(ctx, u, o, transport, pacer, started, onPacket, onBatch)
		if !auto || switched || ctx.Err() != nil || !otherMayWork(err) {
			return transport, err
		}
		transport = otherTransport(transport)
	}
}

func playOver(ctx context.Context, u *url.URL, o cameraOptions, transport string, pacer *Pacer,
	started func([]selected, string), onPacket func(int, *rtp.Packet, time.Time), onBatch func(time.Time)) error {
	var s cameraSession
	var err error
	if transport == "udp" {
		s, err = dialUDP(ctx, u, o)
	} else {
		s, err = dialPlayer(ctx, u, o)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer s.close()
	started(s.selected(), transport)
	return s.play(ctx, pacer, onPacket, onBatch)
}

// otherMayWork says whether a session's failure was its transport's: a 461 or a silent UDP
// session, which the other transport may not have.
func otherMayWork(err error) bool {
	return errors.Is(err, errTransportRefused) || errors.Is(err, errUDPSilent)
}

func otherTransport(t string) string {
	if t == "udp" {
		return "tcp"
	}
	return "udp"
}

// runSource holds one camera session until it fails or ctx ends, over the transport the
// relay last found to work.
func (r *Relay) runSource(ctx context.Context, u *url.URL) error {
	return r.playSource(ctx, u, r.sources.Add(1), nil)
}
