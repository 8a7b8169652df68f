package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/camgate/camgate/rtmp"
)

// RelayConfig says where a Relay pulls from and where it publishes to.
type RelayConfig struct {
	// Source is the camera URL, rtsp:// or rtsps://; it may carry user:pass@.
	Source string
	// Username and Password, when Username is set, replace the credentials in Source.
	Username, Password string
	// Transport is the camera side's: "auto" (or ""), "tcp" or "udp". Auto starts over TCP
	// interleaved, moves to UDP when the camera answers 461 Unsupported Transport, and back
	// on a 461 to UDP or a UDP session silent for 3 s; it remembers what worked (Stats.Transport).
	// Upstream is always TCP.
	Transport string
	// Auth is "" (Digest only; Basic only over rtsps://) or "basic": this camera may get its
	// password in Basic over rtsp://, where anyone on the LAN can read it.
	Auth string
	// Audio keeps the camera's first audio track; false publishes video only.
	Audio bool
	// Publish is the full upstream URL including the stream name:
	// rtsp(s)://[user:pass@]host:port/name or rtmp(s)://[user:pass@]host:port/app/name.
	Publish string
	// Pacer, when set, wakes the camera side together with every other relay sharing it while
	// the camera is too slow for a low-water mark (see Pacer). Share one among all relays of a
	// process; nil reads each camera as its data arrives (see lowWater).
	Pacer *Pacer
	// Cache is the GOP caches' budget, shared by all relays of a process like Pacer; nil gives
	// the relay a budget of its own of DefaultCameraCacheBytes. The relay keeps what its camera
	// sent since the last keyframe, so that a new upstream session starts with it at once
	// instead of waiting for the next keyframe (gopcache.go).
	Cache *CacheBudget
	// Gated keeps the upstream side shut except while PublishUntil has opened it (relay modes
	// on_demand and motion); the camera side and its GOP cache run all the same.
	Gated bool
	// PreRoll, for a gated relay, is how far back its GOP cache keeps whole GOPs, so that
	// PublishWindow can start a session that far in the past (relay mode motion). The cache's
	// bounds come first: over them the pre-roll shrinks, a GOP at a time, and says so once.
	PreRoll time.Duration
	// Logger receives connection state changes; nil means slog.Default().
	Logger *slog.Logger
	// ShowError, when set, turns a camera-side error into the one Stats.LastError shows (the
	// log keeps the real one): the agent hides the network's words for a camera named from the
	// page or MQTT, so that last_error cannot tell a closed port from an open one.
	ShowError func(error) error

	// QueuePackets bounds the packets waiting for the upstream side; 0 means 256
	// (about a second of a 2-3 Mbit/s stream). Their payloads are bounded too, to QueuePackets
	// full-size packets, but only what is queued takes memory. When it overflows video is
	// dropped until the next keyframe.
	QueuePackets int
	// Timeout bounds each network read and write; 0 means 10 s.
	Timeout time.Duration

	// Substream is the camera's lower-bitrate stream (same credentials), played instead of
	// Source while Quality asks for it; "" keeps the relay on Source.
	Substream string
	// Quality, shared by all relays of a process like Pacer, steps cameras down to their
	// Substream when the uplink cannot carry every main stream, lowest Priority first, and
	// back once it can (quality.go); nil never switches.
	Quality  *QualityGovernor
	Priority int
	// OnQuality, when set, is called with Stats.Quality's new value each time the relay has
	// switched between main stream and substream. It runs on the camera side's goroutine and
	// must not block: the agent hands it to its loop, which re-registers the camera.
	OnQuality func(quality string)

	// authRetry, when set, replaces the backoff after a refused password: tests shorten it.
	authRetry *authBackoff
	// retry, when set, is copied for each side instead of the outage backoff: the soak test
	// shortens it to make ten thousand attempts in minutes.
	retry *backoff
}

// Stats is a snapshot of one relay.
type Stats struct {
	Online      bool // camera session up and media arriving
	Relaying    bool // upstream session up and packets being forwarded
	Codec       string
	AudioCodec  string
	Width       int
	Height      int
	FPS         float64
	BitrateBps  int64 // camera side, all tracks, over the last few seconds
	Reconnects  int   // camera and upstream reconnects since start
	LastError   string
	LastErrorAt time.Time
	// DroppedTracks names each camera track left out of the upstream session because
	// Flussonic does not take its codec over the publish protocol (SPEC §4), e.g.
	// "Opus audio left out: Flussonic does not take it over RTSP".
	DroppedTracks []string
	// Transport is what the camera session uses, or will try next: "tcp" or "udp".
	Transport string
	// PasswordRefused names the side ("camera" or "upstream") whose password was refused by
	// the last attempt; that side then retries only every few minutes (see authBackoff).
	PasswordRefused string
	// Video frames received from the camera, sent upstream, and dropped (gating, slow uplink).
	FramesIn, FramesOut, Dropped uint64
	// Cache is what the GOP cache holds now (bytes, frames) and how often it was lost.
	Cache CacheStats
	// Quality is the stream relayed: "main", or "sub" while the uplink is short (quality.go).
	// UplinkBps is what the upstream session carried over the last few seconds.
	Quality   string
	UplinkBps int64
}

// Relay pulls one camera and publishes it upstream, reconnecting either side independently.
type Relay struct {
	cfg RelayConfig
	log *slog.Logger
	fwd *forwarder
	// publishRTMP: the upstream is RTMP, whose decoder configuration is fixed at publish.
	publishRTMP bool
	// gate, for a Gated relay, says when the upstream side may publish (gate.go).
	gate *gate

	online   atomic.Bool
	relaying atomic.Bool

	// writer is the only way to the upstream socket, from either side's goroutine.
	writer upstreamWriter
	// rtmpLine keeps RTMP times going on over re-publishes; one session at a time uses it.
	rtmpLine rtmp.Timeline

	// authRetry is the backoff after a refused password; tests shorten it.
	authRetry authBackoff

	// sources numbers the camera sessions; quality is the substream switch (quality_switch.go).
	sources atomic.Uint64
	quality qualitySwitch

	// loggedCache is the cache's loss counters as last logged, at loggedCacheAt; the camera
	// goroutine owns both.
	loggedCache   CacheStats
	loggedCacheAt time.Time
	loggedShrink  bool

	mu          sync.Mutex
	transport   string // the camera side's, see Stats.Transport
	refused     map[string]bool
	tracks      *trackSet     // the camera's current tracks, nil until the first session
	tracksEvent chan struct{} // closed when tracks changes
	reconnects  int
	dropped     []string // camera tracks the upstream protocol does not take, as said in Stats
	lastErr     string
	lastErrAt   time.Time
	spsGen      uint64
	width       int
	height      int
	spsFPS      float64
	samples     [6]rateSample
	nsamples    int
	lastSample  time.Time
}

type rateSample struct {
	at     time.Time
	bytes  uint64
	frames uint64
	sent   uint64 // upstream payload bytes
}

// NewRelay returns a Relay; nothing happens until Run.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.QueuePackets <= 0 {
		cfg.QueuePackets = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	transport := "tcp"
	if cfg.Transport == "udp" {
		transport = "udp"
	}
	authRetry := newAuthBackoff()
	if cfg.authRetry != nil {
		authRetry = *cfg.authRetry
	}
	budget := cfg.Cache
	if budget == nil {
		budget = NewCacheBudget(DefaultCameraCacheBytes)
	}
	fwd := newForwarder(cfg.QueuePackets)
	publishRTMP := false
	if u, err := url.Parse(cfg.Publish); err == nil {
		publishRTMP = isRTMP(u.Scheme)
	}
	if publishRTMP {
		// RTMP has no sender reports to line the tracks up later, and receivers take their
		// tracks from the first seconds of a publish (gortmplib, mediamtx's, from 2 s of stream
		// time): a G.711 track, which has no sequence header, held for the camera's first report
		// (up to reportWait) would be missing for good. So audio goes at once on its arrival's
		// guess, and the camera's report moves it once, by what the guess was off.
		fwd.reportWait = 0
	}
	fwd.cache = newGOPCache(budget)
	if cfg.Gated {
		fwd.cache.preRoll = cfg.PreRoll
	}
	var g *gate
	if cfg.Gated {
		g = newGate()
	}
	r := &Relay{
		publishRTMP: publishRTMP,
		gate:        g,
		cfg:         cfg,
		authRetry:   authRetry,
		transport:   transport,
		refused:     map[string]bool{},
		log:         log.With("source", redact(cfg.Source), "publish", redact(cfg.Publish)),
		fwd:         fwd,
		tracksEvent: make(chan struct{}),
		quality:     qualitySwitch{asked: make(chan struct{}, 1)},
	}
	r.writer.fwd, r.writer.relaying = r.fwd, &r.relaying
	return r
}

// Run relays until ctx ends, then returns nil. Failures of either side are retried forever;
// a configuration that can never work (a malformed URL) is returned as an error.
func (r *Relay) Run(ctx context.Context) error {
	src, err := r.sourceURL()
	if err != nil {
		return fmt.Errorf("camera: %w", err)
	}
	dst, err := url.Parse(r.cfg.Publish)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	switch dst.Scheme {
	case "rtsp", "rtsps", "rtmp", "rtmps":
	default:
		return fmt.Errorf("upstream: scheme must be rtsp, rtsps, rtmp or rtmps, not %q", dst.Scheme)
	}
	sub, err := r.substreamURL()
	if err != nil {
		return fmt.Errorf("camera substream: %w", err)
	}
	defer r.fwd.closeCache()
	defer r.joinQuality(sub != nil)()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.loop(ctx, "camera", func(ctx context.Context) error { return r.runCamera(ctx, src, sub) }, &r.online)
	}()
	go func() {
		defer wg.Done()
		r.loop(ctx, "upstream", func(ctx context.Context) error { return r.runSink(ctx, dst) }, &r.relaying)
	}()
	wg.Wait()
	return nil
}

// errTracksChanged ends an upstream session so that it is announced again at once.
var errTracksChanged = errors.New("camera tracks changed")

// loop runs session attempts of one side until ctx ends, pacing them with a backoff: the
// outage backoff, or after a refused password the much slower authBackoff, so that a wrong
// password never locks the camera's account.
func (r *Relay) loop(ctx context.Context, side string, session func(context.Context) error, up *atomic.Bool) {
	bo := newBackoff()
	if r.cfg.retry != nil {
		b := *r.cfg.retry
		bo = &b
	}
	refusals := 0
	first := true
	for {
		start := time.Now()
		err := session(ctx)
		up.Store(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errTracksChanged) {
			r.log.Info("re-announcing upstream: camera tracks changed")
			continue
		}
		if errors.Is(err, errGateShut) {
			r.log.Info("upstream session ended: " + err.Error())
			continue
		}
		if err == nil {
			err = errors.New("session ended")
		}
		var refused *PasswordRefusedError
		var d time.Duration
		if errors.As(err, &refused) {
			refusals++
			d = r.authRetry.next(refusals)
			err = fmt.Errorf("%w; next try in %s or when the password is changed", err, d.Round(time.Second))
		} else {
			if time.Since(start) >= bo.healthyAfter {
				refusals = 0 // the password worked for a while: a new refusal starts afresh
			}
			d = bo.next(start, time.Now())
		}
		r.setRefused(side, refused != nil)
		r.fail(side, err, !first)
		first = false
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		r.mu.Lock()
		r.reconnects++
		r.mu.Unlock()
	}
}

func (r *Relay) setRefused(side string, refused bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused[side] = refused
}

// transportNow is the camera transport the next session starts with.
func (r *Relay) transportNow() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.transport
}

func (r *Relay) setTransport(t string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.transport = t
}

func (r *Relay) fail(side string, err error, repeated bool) {
	shown := err
	if side == "camera" && r.cfg.ShowError != nil {
		shown = r.cfg.ShowError(err)
	}
	msg := side + ": " + shown.Error()
	r.mu.Lock()
	changed := msg != r.lastErr
	r.lastErr = msg
	r.lastErrAt = time.Now()
	r.mu.Unlock()
	if changed || !repeated {
		r.log.Warn("relay side down", "side", side, "err", err)
	} else {
		r.log.Debug("relay side still down", "side", side, "err", err)
	}
}

// setDropped records the tracks the upstream session leaves out. A change is also the
// relay's last error, so that the camera's state names it where owners look.
func (r *Relay) setDropped(dropped []string) {
	r.mu.Lock()
	changed := !slices.Equal(r.dropped, dropped)
	r.dropped = dropped
	if changed && len(dropped) > 0 {
		r.lastErr = "upstream: " + strings.Join(dropped, "; ")
		r.lastErrAt = time.Now()
	}
	r.mu.Unlock()
	if changed && len(dropped) > 0 {
		r.log.Warn("tracks left out upstream", "tracks", dropped)
	}
}

// setTracks publishes the tracks of a new camera session; an upstream session with a different
// track set is ended so that it re-announces.
func (r *Relay) setTracks(t *trackSet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tracks != nil && r.tracks.signature == t.signature {
		return
	}
	r.tracks = t
	close(r.tracksEvent)
	r.tracksEvent = make(chan struct{})
}

// currentTracks returns the camera's tracks (nil before the first camera session) and a channel
// closed when they change.
func (r *Relay) currentTracks() (*trackSet, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tracks, r.tracksEvent
}

// sampleRates records the camera side's counters at most once a second, for the bitrate and
// frame rate in Stats. The camera goroutine calls it as packets arrive, so that a relay needs
// no timer of its own: on a gateway every timer wake-up costs about as much as a batch of video.
func (r *Relay) sampleRates(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastSample) < time.Second {
		return false
	}
	r.lastSample = now
	copy(r.samples[1:], r.samples[:len(r.samples)-1])
	r.samples[0] = rateSample{at: now, bytes: r.fwd.bytesIn.Load(), frames: r.fwd.framesIn.Load(),
		sent: r.fwd.bytesOut.Load()}
	r.nsamples = min(r.nsamples+1, len(r.samples))
	return true
}

// cacheLossLogEvery paces the log line of a camera that keeps losing its GOP cache: one that
// retries at every keyframe and loses again would otherwise log at every GOP.
const cacheLossLogEvery = time.Minute

// logCacheLoss says in the log when the GOP cache was lost since it last said so, at most
// once a cacheLossLogEvery. The camera goroutine calls it, with no lock held.
func (r *Relay) logCacheLoss(now time.Time) {
	st := r.fwd.cacheStats()
	if st.Evictions == r.loggedCache.Evictions && st.Overflows == r.loggedCache.Overflows {
		return
	}
	if !r.loggedCacheAt.IsZero() && now.Sub(r.loggedCacheAt) < cacheLossLogEvery {
		return
	}
	r.loggedCache, r.loggedCacheAt = st, now
	r.log.Info("GOP cache lost: the next upstream start waits for a keyframe",
		"evictions", st.Evictions, "overflows", st.Overflows,
		"why", "evictions: relay.cache_bytes is spent and this camera's GOP is the largest; overflows: a GOP over 2 MiB")
}

// Stats returns a snapshot; it is safe to call at any time from any goroutine.
func (r *Relay) Stats() Stats {
	sps, gen := r.fwd.paramSet(1)
	cache := r.fwd.cacheStats()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{
		Online:      r.online.Load(),
		Relaying:    r.relaying.Load(),
		Reconnects:  r.reconnects,
		LastError:   r.lastErr,
		LastErrorAt: r.lastErrAt,
		FramesIn:    r.fwd.framesIn.Load(),
		FramesOut:   r.fwd.framesOut.Load(),
		Dropped:     r.fwd.dropped.Load(),
		Transport:   r.transport,
		Cache:       cache,
		Quality:     qualityName(r.quality.onSub.Load()),
	}
	for _, side := range []string{"camera", "upstream"} {
		if r.refused[side] {
			s.PasswordRefused = side
			break
		}
	}
	s.DroppedTracks = slices.Clone(r.dropped)
	if t := r.tracks; t != nil {
		s.Codec, s.AudioCodec = t.videoName, t.audioName
		if gen != r.spsGen {
			r.spsGen = gen
			r.width, r.height, r.spsFPS = parseSPS(t.video, sps)
		}
	}
	s.Width, s.Height = r.width, r.height
	// Samples stop with the camera's packets: rates more than two seconds old are no rates.
	if r.nsamples >= 2 && time.Since(r.samples[0].at) < 2*time.Second {
		newest, oldest := r.samples[0], r.samples[r.nsamples-1]
		if dt := newest.at.Sub(oldest.at).Seconds(); dt > 0 {
			s.BitrateBps = int64(float64(newest.bytes-oldest.bytes) * 8 / dt)
			s.UplinkBps = int64(float64(newest.sent-oldest.sent) * 8 / dt)
			s.FPS = float64(newest.frames-oldest.frames) / dt
		}
	}
	if s.FPS == 0 && s.Online {
		s.FPS = r.spsFPS
	}
	return s
}

// parseSPS returns the picture size and nominal frame rate an SPS declares, zeros if unknown.
func parseSPS(codec videoCodec, sps []byte) (w, h int, fps float64) {
	if len(sps) == 0 {
		return 0, 0, 0
	}
	switch codec {
	case codecH264:
		var s h264.SPS
		if s.Unmarshal(sps) == nil {
			return s.Width(), s.Height(), s.FPS()
		}
	case codecH265:
		var s h265.SPS
		if s.Unmarshal(sps) == nil {
			return s.Width(), s.Height(), s.FPS()
		}
	}
	return 0, 0, 0
}

func (r *Relay) sourceURL() (*url.URL, error) {
	u, err := r.cameraURL(r.cfg.Source)
	if err != nil {
		return nil, err
	}
	switch r.cfg.Transport {
	case "", "auto", "tcp", "udp":
	default:
		return nil, fmt.Errorf("transport must be auto, tcp or udp, not %q", r.cfg.Transport)
	}
	switch r.cfg.Auth {
	case "", "basic":
	default:
		return nil, fmt.Errorf("auth must be \"\" or basic, not %q", r.cfg.Auth)
	}
	return u, nil
}

// stepError names the protocol step that failed, in the words a user reads in LastError.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(e.err, &bad) {
		return fmt.Sprintf("%s refused: %d %s", e.step, bad.Code, bad.Message)
	}
	return e.step + ": " + e.err.Error()
}

func (e *stepError) Unwrap() error { return e.err }

// redact drops the password from a URL for logs.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// trackSet is what a camera session offers, reduced to what is relayed: video first.
type trackSet struct {
	video     videoCodec
	videoName string
	audioName string
	medias    []*description.Media // one format each, as announced upstream
	signature string
	// codecSignature is signature without the parameter sets: a substream switch between
	// track sets that differ only there keeps the upstream session (quality_switch.go).
	codecSignature string
}

// signatureOf says what an upstream session announces for medias. Without params it leaves out
// the parameter sets (and the profile they name), which can change in band on the same session.
func signatureOf(medias []*description.Media, withoutParams bool) string {
	var b strings.Builder
	for _, m := range medias {
		f := m.Formats[0]
		fmt.Fprintf(&b, "%s/%d/%d;", f.RTPMap(), f.ClockRate(), f.PayloadType())
		fmtp := f.FMTP()
		keys := make([]string, 0, len(fmtp))
		for k := range fmtp {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if withoutParams && inBandParam(k) {
				continue
			}
			b.WriteString(k + "=" + fmtp[k] + ";")
		}
		b.WriteString("|")
	}
	return b.String()
}
