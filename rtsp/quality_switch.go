package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/camgate/camgate/internal/endpoint"
)

const (
	// switchWait bounds how long a switch waits for the other stream's first keyframe; the
	// relay stays on the stream it has meanwhile.
	switchWait = 15 * time.Second
	// switchRetry is how soon a switch that did not happen is tried again.
	switchRetry = 10 * time.Second
)

// qualitySwitch is what the governor asks of a relay and what the relay plays. want and
// onSub are atomics so that neither side waits for the other; asked wakes the camera side.
type qualitySwitch struct {
	want, onSub atomic.Bool
	asked       chan struct{}
}

// wantQuality asks the relay to play its substream (sub) or its main stream; it never waits.
func (r *Relay) wantQuality(sub bool) {
	r.quality.want.Store(sub)
	select {
	case r.quality.asked <- struct{}{}:
	default:
	}
}

// setOnSub records which stream the relay plays and tells OnQuality when that changed.
func (r *Relay) setOnSub(sub bool) {
	if r.quality.onSub.Swap(sub) != sub && r.cfg.OnQuality != nil {
		r.cfg.OnQuality(qualityName(sub))
	}
}

// joinQuality makes the relay one the governor decides for, when it has one; a relay without a
// substream takes part too, as a camera that cannot step down.
func (r *Relay) joinQuality(hasSub bool) (leave func()) {
	if r.cfg.Quality == nil {
		return func() {}
	}
	return r.cfg.Quality.join(r, redact(r.cfg.Publish), r.cfg.Priority, hasSub)
}

// substreamURL is the substream's URL, nil when there is none. It carries the camera's
// credentials only when it is on the main source's host: they were given for that host (issue
// 13), and a substream named by the camera's ONVIF service may be anywhere.
func (r *Relay) substreamURL() (*url.URL, error) {
	if r.cfg.Substream == "" {
		return nil, nil
	}
	u, err := r.cameraURL(r.cfg.Substream)
	if err == nil && !endpoint.SameHost(r.cfg.Substream, r.cfg.Source) {
		u.User = nil
	}
	return u, err
}

// cameraURL parses one of the camera's stream URLs and puts the camera's credentials in it.
func (r *Relay) cameraURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, fmt.Errorf("scheme must be rtsp or rtsps, not %q", u.Scheme)
	}
	if r.cfg.Username != "" {
		u.User = url.UserPassword(r.cfg.Username, r.cfg.Password)
	}
	return u, nil
}

// sourceRun is one camera session running in a goroutine of its own.
type sourceRun struct {
	cancel context.CancelFunc
	done   chan error
	active chan struct{} // closed when the session feeds the forwarder
	sub    bool
}

func (r *Relay) startSource(ctx context.Context, u *url.URL, sub, standby bool) *sourceRun {
	ctx, cancel := context.WithCancel(ctx)
	s := &sourceRun{cancel: cancel, done: make(chan error, 1), active: make(chan struct{}), sub: sub}
	wait := s.active
	if !standby {
		wait = nil
	}
	go func() { s.done <- r.playSource(ctx, u, r.sources.Add(1), wait) }()
	return s
}

// stop ends the session and waits for it; how a session ended on purpose is no news, so its
// error only reaches the debug log.
func (s *sourceRun) stop(log *slog.Logger) {
	if err := s.waitErr(); err != nil {
		log.Debug("camera session stopped", "quality", qualityName(s.sub), "err", err)
	}
}

// runCamera holds the camera session that feeds the relay, the main stream or the substream
// as the governor asks, until it fails or ctx ends. A switch is make-before-break: the other
// stream's session is opened beside the current one and takes over at its first keyframe, so
// the upstream session goes on with no gap and, through the forwarder's rebasing, with
// continuous timestamps. The camera thus serves two sessions for about a GOP.
func (r *Relay) runCamera(ctx context.Context, main, sub *url.URL) error {
	if sub == nil || r.cfg.Quality == nil {
		r.setOnSub(false)
		return r.runSource(ctx, main)
	}
	pick := func(onSub bool) *url.URL {
		if onSub {
			return sub
		}
		return main
	}
	onSub := r.quality.want.Load()
	cur := r.startSource(ctx, pick(onSub), onSub, false)
	r.setOnSub(onSub)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			cur.stop(r.log)
			return nil
		case err := <-cur.done:
			cur.cancel()
			return err
		case <-r.quality.asked:
		case <-retry.C:
		}
		want := r.quality.want.Load()
		if want == cur.sub {
			continue
		}
		next, err := r.switchSource(ctx, cur, pick(want), want)
		if errors.Is(err, errSwitchCurrentEnded) {
			return cur.waitErr()
		}
		if err != nil {
			if ctx.Err() != nil {
				cur.stop(r.log)
				return nil
			}
			r.log.Warn("uplink quality: switch failed, staying", "quality", qualityName(cur.sub), "err", err,
				"retry_in", switchRetry)
			retry.Reset(switchRetry)
			continue
		}
		cur = next
		r.setOnSub(cur.sub)
		r.log.Info("uplink quality: camera switched", "quality", qualityName(cur.sub))
	}
}

// errSwitchCurrentEnded: the current session ended while a switch waited; its error is kept.
var errSwitchCurrentEnded = errors.New("camera session ended during a switch")

// switchSource opens the session for u beside cur and, once it feeds the forwarder, ends cur.
func (r *Relay) switchSource(ctx context.Context, cur *sourceRun, u *url.URL, sub bool) (*sourceRun, error) {
	next := r.startSource(ctx, u, sub, true)
	timeout := time.NewTimer(switchWait)
	defer timeout.Stop()
	select {
	case <-next.active:
		cur.stop(r.log)
		return next, nil
	case err := <-next.done:
		next.cancel()
		if err == nil {
			err = errors.New("session ended")
		}
		return nil, err
	case err := <-cur.done:
		next.stop(r.log)
		cur.done <- err
		return nil, errSwitchCurrentEnded
	case <-timeout.C:
		next.stop(r.log)
		return nil, fmt.Errorf("no keyframe within %s", switchWait)
	case <-ctx.Done():
		next.stop(r.log)
		return nil, ctx.Err()
	}
}

// waitErr returns the error the session ended with, once it has.
func (s *sourceRun) waitErr() error {
	s.cancel()
	return <-s.done
}

// playSource holds one camera session, numbered src, until it fails or ctx ends. With active
// nil the session feeds the forwarder from its start; otherwise it waits in standby, its
// packets left out, until its first keyframe, then takes over from whichever session fed the
// forwarder and closes active.
func (r *Relay) playSource(ctx context.Context, u *url.URL, src uint64, active chan struct{}) error {
	defer r.fwd.sourceGone(src)
	o := cameraOptions{audio: r.cfg.Audio, basic: r.cfg.Auth == "basic", timeout: r.cfg.Timeout}
	o.senderReport = func(track int, ntp time.Time, rtpTime uint32) {
		r.fwd.senderReportFrom(src, track, ntp, rtpTime)
	}
	auto := r.cfg.Transport == "" || r.cfg.Transport == "auto"
	standby := active != nil
	var sel []selected
	var video videoCodec
	started := func(s []selected, transport string) {
		r.setTransport(transport)
		sel, video = s, newTrackSet(s).video
		if !standby {
			r.fwd.adopt(src)
			r.startTracks(sel, false)
		}
		r.log.Info("camera session up", "video", codecName(s[0].format), "transport", transport,
			"standby", standby)
	}
	push := func(track int, pkt *rtp.Packet, now time.Time) {
		if standby {
			if track != 0 || !startsKeyframe(video, pkt.Payload) {
				return
			}
			standby = false
			r.fwd.adopt(src)
			r.startTracks(sel, true)
			close(active)
		}
		r.fwd.pushFrom(src, track, pkt, now)
	}
	used, err := playCamera(ctx, u, o, r.transportNow(), auto, r.cfg.Pacer, started, push, r.batchDone)
	if auto && otherMayWork(err) {
		// Both failed: the next attempt starts where this one ended.
		r.setTransport(otherTransport(used))
	}
	return err
}

// startTracks declares the tracks of a new camera session to the forwarder and upstream. On a
// switch between main stream and substream over RTSP, tracks that differ only in their
// parameter sets keep the upstream session: the forwarder sends the new ones in band before
// the first keyframe, as RFC 6184 §8.4 allows. Anything else, and any change over RTMP, whose
// decoder configuration is fixed at publish, is announced again.
func (r *Relay) startTracks(sel []selected, switching bool) {
	t := newTrackSet(sel)
	rates := make([]int, len(sel))
	for i, s := range sel {
		rates[i] = s.format.ClockRate()
	}
	rtmpSwitch := switching && r.publishRTMP
	if rtmpSwitch {
		r.fwd.holdForRepublish()
	}
	r.fwd.setTracks(t.video, rates, parameterSets(sel[0].format))
	if switching && !rtmpSwitch && r.keepSession(t) {
		return
	}
	r.setTracks(t)
}

// holdForRepublish keeps the new camera session's packets out of the queue, in the GOP cache
// only, until the next upstream session starts (restartSink), and leaves what is queued to
// the current one. An RTMP switch publishes again: the old publish must end with the old
// stream's last frame, sent, and the new one start at the new stream's keyframe, replayed from
// the cache; a new-stream frame that the old publish took would reach the server twice, and
// an old-stream frame flushed with the queue not at all.
func (f *forwarder) holdForRepublish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parked = true
}

// keepSession takes t as the camera's tracks without ending the upstream session, if they
// differ from the current ones only in their parameter sets.
func (r *Relay) keepSession(t *trackSet) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tracks == nil || r.tracks.codecSignature != t.codecSignature {
		return false
	}
	r.tracks = t
	return true
}

// startsKeyframe reports whether an RTP payload begins a keyframe's access unit: a parameter
// set or the keyframe itself.
func startsKeyframe(codec videoCodec, payload []byte) bool {
	found := false
	scanNALs(codec, payload, func(typ uint8, _ []byte) {
		if paramSetIndex(codec, typ) >= 0 || isKeyframeNAL(codec, typ) {
			found = true
		}
	})
	return found
}

// inBandParam reports whether an fmtp key carries what an H.264/H.265 stream can also send in
// band: its parameter sets and the profile the SPS names.
func inBandParam(key string) bool {
	switch key {
	case "sprop-parameter-sets", "profile-level-id", "sprop-vps", "sprop-sps", "sprop-pps",
		"profile-id", "level-id", "tier-flag":
		return true
	}
	return false
}

// adopt makes the camera session src the one whose packets the forwarder takes.
func (f *forwarder) adopt(src uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.source = src
}

// sourceGone is cameraGone for the session src, if it is still the adopted one: a session
// that handed over to another leaves the cache to it.
func (f *forwarder) sourceGone(src uint64) {
	f.mu.Lock()
	adopted := f.source == src
	f.mu.Unlock()
	if adopted {
		f.cameraGone()
	}
}

// senderReportFrom is senderReport for the session src. A standby session's latest report per
// track is kept for when it is adopted, since its next one may come long after its first packets.
func (f *forwarder) senderReportFrom(src uint64, track int, ntp time.Time, rtpTime uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.source != src {
		f.keepEarlyLocked(src, track, ntp, rtpTime)
		return
	}
	f.senderReportLocked(track, ntp, rtpTime)
}

// queueDepth is how many packets wait for the upstream side, and how many may.
func (f *forwarder) queueDepth() (queued, capacity int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, len(f.ring)
}
