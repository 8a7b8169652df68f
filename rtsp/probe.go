package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
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

// Probe connects to an rtsp(s) URL over TCP, reads the relayable tracks (those a Relay would
// forward, audio included) for dur and reports them. It fails unless media arrived.
func Probe(ctx context.Context, rawURL, username, password string, dur time.Duration) (ProbeResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("probe: %w", err)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return ProbeResult{}, fmt.Errorf("probe: scheme must be rtsp or rtsps, not %q", u.Scheme)
	}
	if username != "" {
		u.User = url.UserPassword(username, password)
	}
	ctx, cancel := context.WithTimeout(ctx, dur+15*time.Second)
	defer cancel()
	c := &gortsplib.Client{
		Scheme: u.Scheme, Host: u.Host, Protocol: protocolOf("tcp"),
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, UserAgent: "camgate",
	}
	sel, err := openCamera(ctx, c, u, true)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("probe: %w", err)
	}
	defer c.Close()

	var mu sync.Mutex
	res := ProbeResult{Tracks: make([]TrackInfo, len(sel))}
	bytes := make([]uint64, len(sel))
	frames := uint64(0)
	video := newTrackSet(sel).video
	params := parameterSets(sel[0].format)
	for i, s := range sel {
		res.Tracks[i] = TrackInfo{Type: string(s.media.Type), Codec: codecName(s.format), ClockRate: s.format.ClockRate()}
		c.OnPacketRTP(s.media, s.format, func(pkt *rtp.Packet) {
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
		})
	}
	if _, err := c.Play(nil); err != nil {
		return ProbeResult{}, fmt.Errorf("probe: %w", &stepError{"PLAY", err})
	}
	start := time.Now()
	wait := make(chan error, 1)
	go func() { wait <- c.Wait() }()
	var sessionErr error
	select {
	case <-time.After(dur):
	case <-ctx.Done():
	case sessionErr = <-wait:
	}
	c.Close()
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
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
