package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// TrackInfo describes one track as Probe saw it.
type TrackInfo struct {
	Type       string // "video" or "audio"
	Codec      string // H264, H265, AAC, PCMA, PCMU, Opus
	ClockRate  int
	Width      int // video only, from the SPS
	Height     int
	FPS        float64 // frames per second measured (video only)
	BitrateBps int64
	Packets    uint64
}

// ProbeResult is what Probe learned about a camera stream.
type ProbeResult struct {
	Tracks   []TrackInfo
	Duration time.Duration // how long media was read
}

// ProbeOptions is how Probe reaches a camera; the zero value is Digest only and transport auto.
type ProbeOptions struct {
	Username, Password string
	// Auth "basic" lets a camera have its password in Basic over rtsp:// (see RelayConfig.Auth).
	Auth string
	// Transport is "auto" (or ""), "tcp" or "udp", as in RelayConfig.
	Transport string
}

// Probe reads an rtsp(s) URL as ProbeWith does, with Digest only and transport auto.
func Probe(ctx context.Context, rawURL, username, password string, dur time.Duration) (ProbeResult, error) {
	return ProbeWith(ctx, rawURL, ProbeOptions{Username: username, Password: password}, dur)
}

// ProbeWith connects to an rtsp(s) URL with the same client and policies as a Relay (redirects
// on the camera's own host only, Digest unless marked basic, TCP first with UDP fallback),
// reads the relayable tracks (audio included) for dur and reports them. It fails unless media
// arrived.
func ProbeWith(ctx context.Context, rawURL string, opts ProbeOptions, dur time.Duration) (ProbeResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("probe: %w", err)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return ProbeResult{}, fmt.Errorf("probe: scheme must be rtsp or rtsps, not %q", u.Scheme)
	}
	if opts.Username != "" {
		u.User = url.UserPassword(opts.Username, opts.Password)
	}
	transport, auto := "tcp", true
	switch opts.Transport {
	case "", "auto":
	case "tcp", "udp":
		transport, auto = opts.Transport, false
	default:
		return ProbeResult{}, fmt.Errorf("probe: transport must be auto, tcp or udp, not %q", opts.Transport)
	}
	ctx, cancel := context.WithTimeout(ctx, dur+15*time.Second)
	defer cancel()
	o := cameraOptions{audio: true, basic: opts.Auth == "basic", timeout: 10 * time.Second}

	var mu sync.Mutex // a UDP session delivers from more than one goroutine
	var res ProbeResult
	var bytes []uint64
	var frames uint64
	var video videoCodec
	var params [3][]byte
	var start time.Time
	started := func(sel []selected, _ string) {
		mu.Lock()
		defer mu.Unlock()
		res = ProbeResult{Tracks: make([]TrackInfo, len(sel))}
		bytes = make([]uint64, len(sel))
		frames = 0
		video = newTrackSet(sel).video
		params = parameterSets(sel[0].format)
		for i, s := range sel {
			res.Tracks[i] = TrackInfo{Type: string(s.media.Type), Codec: codecName(s.format), ClockRate: s.format.ClockRate()}
		}
		start = time.Now()
	}
	onPacket := func(i int, pkt *rtp.Packet, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		res.Tracks[i].Packets++
		bytes[i] += uint64(len(pkt.Payload))
		if i != 0 {
			return
		}
		if pkt.Marker {
			frames++
		}
		scanNALs(video, pkt.Payload, func(typ uint8, nal []byte) {
			if j := paramSetIndex(video, typ); j >= 0 && nal != nil && len(nal) <= maxParamSetSize {
				params[j] = append([]byte(nil), nal...)
			}
		})
	}
	// The session plays until dur after its tracks are known: the clock starts at PLAY.
	playCtx, stopPlay := context.WithCancel(ctx)
	defer stopPlay()
	timer := time.AfterFunc(time.Hour, stopPlay)
	defer timer.Stop()
	_, sessionErr := playCamera(playCtx, u, o, transport, auto, nil, func(sel []selected, t string) {
		started(sel, t)
		timer.Reset(dur)
	}, onPacket, func(time.Time) {})

	mu.Lock()
	defer mu.Unlock()
	if res.Tracks == nil {
		if sessionErr == nil {
			sessionErr = context.Cause(ctx)
		}
		return ProbeResult{}, fmt.Errorf("probe: %w", sessionErr)
	}
	elapsed := time.Since(start)
	res.Duration = elapsed
	var total uint64
	for i := range res.Tracks {
		total += res.Tracks[i].Packets
		res.Tracks[i].BitrateBps = int64(float64(bytes[i]) * 8 / elapsed.Seconds())
	}
	v := &res.Tracks[0]
	v.Width, v.Height, _ = parseSPS(video, params[1])
	v.FPS = float64(frames) / elapsed.Seconds()
	if total == 0 {
		if sessionErr != nil {
			return res, fmt.Errorf("probe: no media arrived: %w", sessionErr)
		}
		return res, errors.New("probe: no media arrived")
	}
	return res, nil
}
