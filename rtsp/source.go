package rtsp

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
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
	t.signature = signatureOf(t.medias)
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

// runSource holds one camera session until it fails or ctx ends: over TCP with the relay's own
// player, over UDP with gortsplib's client, whose UDP side (ports, firewall punching, RTCP
// per port) the player does not have.
func (r *Relay) runSource(ctx context.Context, u *url.URL) error {
	if r.cfg.Transport == "udp" {
		return r.runUDPSource(ctx, u)
	}
	p, err := dialPlayer(ctx, u, r.cfg.Audio, r.cfg.Timeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r.startTracks(p.sel)
	r.log.Info("camera session up", "video", codecName(p.sel[0].format), "transport", "tcp")
	return p.play(ctx, r.cfg.Pacer, r.fwd.push, r.batchDone)
}

// startTracks declares the tracks of a new camera session to the forwarder and upstream.
func (r *Relay) startTracks(sel []selected) {
	t := newTrackSet(sel)
	rates := make([]int, len(sel))
	for i, s := range sel {
		rates[i] = s.format.ClockRate()
	}
	r.fwd.setTracks(t.video, rates, parameterSets(sel[0].format))
	r.setTracks(t)
}

func (r *Relay) runUDPSource(ctx context.Context, u *url.URL) error {
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  r.cfg.Timeout,
		WriteTimeout: r.cfg.Timeout,
		Protocol:     protocolOf(r.cfg.Transport),
		UserAgent:    "camgate",
		// The camera session only ever writes RTCP receiver reports and keep-alives.
		WriteQueueSize: 16,
	}
	sel, err := openCamera(ctx, c, u, r.cfg.Audio)
	if err != nil {
		return err
	}
	defer c.Close()
	r.startTracks(sel)
	for i, s := range sel {
		c.OnPacketRTP(s.media, s.format, func(pkt *rtp.Packet) {
			// Each packet is its own batch: gortsplib hands them over one by one.
			now := time.Now()
			r.fwd.push(i, pkt, now)
			r.batchDone(now)
		})
	}
	if _, err := c.Play(nil); err != nil {
		return &stepError{"PLAY", err}
	}
	r.log.Info("camera session up", "video", codecName(sel[0].format), "transport", "udp")
	return c.Wait()
}

// openCamera starts c, describes u and sets up the tracks worth relaying. On success the
// caller owns c and must Close it; c is closed when ctx ends.
func openCamera(ctx context.Context, c *gortsplib.Client, u *url.URL, audio bool) ([]selected, error) {
	bu := (*base.URL)(u)
	if err := c.Start(); err != nil {
		return nil, &stepError{"connect", err}
	}
	stop := context.AfterFunc(ctx, c.Close)
	ok := false
	defer func() {
		if !ok {
			stop()
			c.Close()
		}
	}()
	desc, _, err := c.Describe(bu)
	if err != nil {
		return nil, &stepError{"DESCRIBE", err}
	}
	sel, err := selectTracks(desc, audio)
	if err != nil {
		return nil, &stepError{"DESCRIBE", err}
	}
	for _, s := range sel {
		if _, err := c.Setup(desc.BaseURL, s.media, 0, 0); err != nil {
			return nil, &stepError{"SETUP", err}
		}
	}
	ok = true
	return sel, nil
}

func protocolOf(transport string) *gortsplib.Protocol {
	p := gortsplib.ProtocolTCP
	if transport == "udp" {
		p = gortsplib.ProtocolUDP
	}
	return &p
}
