package sim

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/pion/rtp"
)

// MediaServerConfig configures the Flussonic stand-in.
type MediaServerConfig struct {
	// Addr is where to listen for RTSP, "127.0.0.1:0" when empty. UDP transport uses two more
	// ports chosen on the same address.
	Addr string
	// PublishUser and PublishPass, when PublishUser is set, are required from publishers
	// (ANNOUNCE), Basic or Digest. Players need none.
	PublishUser, PublishPass string
	// Logger receives publish and play events; nil discards them.
	Logger *slog.Logger
	// RequireStream refuses publishing to a name that has no configured stream (AddStream or
	// the streams API), as a Flussonic without a catch-all template does.
	RequireStream bool
	// AnyCodec takes every codec: the server stands in for the RTSP server a camera's stream
	// comes from (ffmpeg publishes into it, camgate reads), not for Flussonic.
	AnyCodec bool
	// RTMPAddr, when set, takes RTMP publishes there (see rtmpStreamName for the URL forms).
	RTMPAddr string
	// APIAddr, when set, serves the streams API there with Basic auth APIUser/APIPass
	// (Flussonic's edit_auth).
	APIAddr, APIUser, APIPass string
}

// StreamStats is what the media server saw of one published path.
type StreamStats struct {
	Publishing bool     // a publisher is recording now
	Publishes  int      // RECORDs accepted on the path so far
	Codecs     []string // of the latest publish, in SDP order: h264, h265, aac, pcma, pcmu, opus, ...
	// VideoFrames and KeyFrames count video access units (by RTP marker or timestamp change)
	// and those among them that are IDR (H.264) or IRAP (H.265); AudioPackets counts RTP
	// packets of audio tracks. All three add up over every publish of the path.
	VideoFrames, KeyFrames, AudioPackets uint64
	// FirstVideoFrameKey: the first video frame of the latest publish was a keyframe with its
	// parameter sets (SPS and PPS, and VPS for H.265) in band, so a player joining at the start
	// could decode it without the SDP. Parameter sets sent just before it in packets of their own
	// count.
	FirstVideoFrameKey bool
	Bytes              uint64 // RTP payload bytes, every track and publish
	// VideoBytes and AudioBytes are Bytes by track kind: what a byte count per track shows.
	VideoBytes, AudioBytes uint64
	LastFrameAt            time.Time // arrival of the latest RTP packet
	// RecordedAt is when the latest RECORD was accepted, FirstVideoAt when the first video
	// packet of that publish arrived: how long a publisher kept the server waiting for video.
	RecordedAt, FirstVideoAt time.Time
	// VideoTSBackwards counts, in the latest publish, video frames whose RTP timestamp is
	// before the previous frame's; VideoTSMaxStep is the largest step forward between two
	// consecutive frames: a receiver sees time go backwards or jump.
	VideoTSBackwards uint64
	VideoTSMaxStep   uint32
	// Players is how many sessions are playing the path now. VideoFramesPlayed counts the video
	// frames published while at least one was: what a relay reading this path was offered, the
	// honest denominator for "frames it passed on".
	Players           int
	VideoFramesPlayed uint64

	// RTMP is each RTMP publish of the path, oldest first (the last 64), as a decoder saw it
	// (rtmpingest.go). Over RTMP, VideoFrames counts only decodable frames and
	// VideoUndecodable those a decoder could not use. VideoTimeBackwards, VideoTimeStill and VideoTimeMaxStep
	// are the decode-time steps between consecutive frames over the path's whole timeline,
	// every RTMP publish in turn, as the server's archive lines them up.
	RTMP               []RTMPPublish
	VideoUndecodable   uint64
	VideoTimeBackwards uint64
	VideoTimeStill     uint64 // steps of 0
	VideoTimeMaxStep   time.Duration
	rtmpLine           rtmpTimeline
}

// VideoFrame is one video frame of a publish, as a recording server places it in time: by its
// RTP timestamp through the publisher's RTCP sender reports (RFC 3550 §6.4.1), the way
// Flussonic lines up RTSP ingest.
type VideoFrame struct {
	RTP     uint32
	Key     bool
	Arrived time.Time
	// NTP is the wall-clock time the sender reports give the frame; zero when the publish
	// ended before its first report.
	NTP time.Time
}

// maxRecordedFrames bounds the frames a path remembers: about 13 minutes at 25 fps.
const maxRecordedFrames = 20000

// MediaServer stands in for Flussonic: it accepts RTSP publishers (ANNOUNCE/RECORD, TCP or UDP)
// on any path, a new publisher replacing the one before, serves each published path to players
// (DESCRIBE/SETUP/PLAY), and counts what arrives per path.
type MediaServer struct {
	cfg MediaServerConfig
	log *slog.Logger
	ln  *rtspListeners

	mu        sync.Mutex
	srv       *gortsplib.Server
	paths     map[string]*publication // the current publisher of each path
	bySession map[*gortsplib.ServerSession]*publication
	players   map[*gortsplib.ServerSession]string // playing session -> path
	stats     map[string]*StreamStats
	frames    map[string][]VideoFrame // of the latest publish, by name
	streams   map[string]Stream       // configured streams, by name
	refusals  map[string][]string     // refused publishes, by name
	rtmpLn    net.Listener
	apiLn     net.Listener
}

// publication is one publisher's session on a path and the stream players read from.
type publication struct {
	name    string
	session *gortsplib.ServerSession
	stream  *gortsplib.ServerStream
	desc    *description.Session
	first   bool   // no video frame seen yet
	lastTS  uint32 // RTP timestamp of the last video frame
	// frames are the publish's video frames; those from timed on have no NTP time yet.
	frames []VideoFrame
	timed  int
}

// NewMediaServer binds the server's listeners; Run serves them.
func NewMediaServer(cfg MediaServerConfig) (*MediaServer, error) {
	ln, err := listenRTSP(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim media server: %w", err)
	}
	var rtmpLn, apiLn net.Listener
	if cfg.RTMPAddr != "" {
		if rtmpLn, err = listenTCP("sim media server: rtmp", cfg.RTMPAddr); err != nil {
			ln.close()
			return nil, err
		}
	}
	if cfg.APIAddr != "" {
		if apiLn, err = listenTCP("sim media server: api", cfg.APIAddr); err != nil {
			ln.close()
			if rtmpLn != nil {
				rtmpLn.Close()
			}
			return nil, err
		}
	}
	return &MediaServer{
		rtmpLn:    rtmpLn,
		apiLn:     apiLn,
		streams:   make(map[string]Stream),
		refusals:  make(map[string][]string),
		cfg:       cfg,
		log:       loggerOrDiscard(cfg.Logger),
		ln:        ln,
		paths:     make(map[string]*publication),
		bySession: make(map[*gortsplib.ServerSession]*publication),
		players:   make(map[*gortsplib.ServerSession]string),
		stats:     make(map[string]*StreamStats),
		frames:    make(map[string][]VideoFrame),
	}, nil
}

// URL is the server's base address with a trailing slash; publish to URL()+name.
func (m *MediaServer) URL() string {
	return m.ln.url() + "/"
}

// RTMPURL is rtmp://host:port/ of the RTMP listener, "" without one.
func (m *MediaServer) RTMPURL() string {
	if m.rtmpLn == nil {
		return ""
	}
	return dialURL("rtmp", m.rtmpLn) + "/"
}

// APIURL is the Media Server API base, http://host:port/streamer/api/v3, "" without one.
func (m *MediaServer) APIURL() string {
	if m.apiLn == nil {
		return ""
	}
	return dialURL("http", m.apiLn) + strings.TrimSuffix(StreamsAPIPath, "/streams/")
}

// Run serves until ctx ends. It can be called once.
func (m *MediaServer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if m.rtmpLn != nil {
		go m.serveRTMP(ctx, m.rtmpLn)
	}
	if m.apiLn != nil {
		mux := http.NewServeMux()
		mux.HandleFunc(StreamsAPIPath, m.streamsAPI)
		go func() { _ = serveHTTP(ctx, m.apiLn, mux, m.log, "sim media server: api") }()
	}
	srv := m.ln.server((*mediaHandler)(m))
	m.mu.Lock()
	m.srv = srv
	m.mu.Unlock()
	if err := srv.Start(); err != nil {
		m.ln.close()
		return fmt.Errorf("sim media server: start rtsp server: %w", err)
	}
	m.log.Info("sim media server listening", "url", m.URL())

	errc := make(chan error, 1)
	go func() { errc <- srv.Wait() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("sim media server: rtsp server stopped: %w", err)
	}
	srv.Close()

	m.mu.Lock()
	defer m.mu.Unlock()
	for name, p := range m.paths {
		p.stream.Close()
		m.stats[name].Publishing = false
	}
	clear(m.paths)
	clear(m.bySession)
	return err
}

// Stream returns the statistics of a published path ("cam1" or "/cam1"), and whether anything
// was ever announced on it.
func (m *MediaServer) Stream(name string) (StreamStats, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.stats[streamName(name)]
	if !ok {
		return StreamStats{}, false
	}
	return st.clone(), true
}

// VideoFrames returns the video frames of a path's latest publish, the first
// maxRecordedFrames of them.
func (m *MediaServer) VideoFrames(name string) []VideoFrame {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.frames[streamName(name)])
}

// Streams returns the statistics of every path ever announced, by name.
func (m *MediaServer) Streams() map[string]StreamStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]StreamStats, len(m.stats))
	for name, st := range m.stats {
		out[name] = st.clone()
	}
	return out
}

func (s *StreamStats) clone() StreamStats {
	c := *s
	c.Codecs = slices.Clone(s.Codecs)
	c.RTMP = slices.Clone(s.RTMP)
	return c
}

func streamName(path string) string {
	return strings.Trim(path, "/")
}

// mediaHandler is the MediaServer as gortsplib sees it, so that the callbacks stay out of
// MediaServer's API.
type mediaHandler MediaServer

// OnAnnounce implements gortsplib.ServerHandlerOnAnnounce.
func (m *mediaHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	if m.cfg.PublishUser != "" && !ctx.Conn.VerifyCredentials(ctx.Request, m.cfg.PublishUser, m.cfg.PublishPass) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	name := streamName(ctx.Path)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := (*MediaServer)(m).admitLocked("rtsp", name, ctx.Query, codecNames(ctx.Description)); r != nil {
		return &base.Response{StatusCode: base.StatusCode(r.Status)}, r
	}
	stream := &gortsplib.ServerStream{Server: m.srv, Desc: ctx.Description}
	if err := stream.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, fmt.Errorf("stream %s: %w", name, err)
	}
	if old, ok := m.paths[name]; ok {
		m.log.Info("sim media server: publisher replaced", "stream", name)
		old.stream.Close()
		old.session.Close()
		delete(m.bySession, old.session)
	}
	p := &publication{name: name, session: ctx.Session, stream: stream, desc: ctx.Description, first: true}
	m.paths[name] = p
	m.bySession[ctx.Session] = p

	st, ok := m.stats[name]
	if !ok {
		st = &StreamStats{}
		m.stats[name] = st
	}
	st.Codecs = codecNames(ctx.Description)
	st.FirstVideoFrameKey = false
	st.Publishing = false
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord implements gortsplib.ServerHandlerOnRecord.
func (m *mediaHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.bySession[ctx.Session]
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, fmt.Errorf("record without a current announce")
	}
	st := m.stats[p.name]
	st.Publishing = true
	st.Publishes++
	st.RecordedAt, st.FirstVideoAt = time.Now(), time.Time{}
	st.VideoTSBackwards, st.VideoTSMaxStep = 0, 0
	m.frames[p.name] = nil
	m.log.Info("sim media server: publishing", "stream", p.name, "codecs", st.Codecs)

	counters := make(map[*description.Media]*frameCounter)
	for _, medi := range p.desc.Medias {
		for _, f := range medi.Formats {
			switch f.(type) {
			case *format.H264:
				counters[medi] = &frameCounter{}
			case *format.H265:
				counters[medi] = &frameCounter{isH265: true}
			}
		}
	}
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		m.packet(p, counters[medi], medi, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// packet forwards one published packet to players and counts it.
func (m *mediaHandler) packet(p *publication, fc *frameCounter, medi *description.Media, pkt *rtp.Packet) {
	if err := p.stream.WritePacketRTP(medi, pkt); err != nil {
		m.log.Debug("sim media server: forward", "stream", p.name, "err", err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paths[p.name] != p {
		return // a replaced publisher's last packets
	}
	st := m.stats[p.name]
	st.Bytes += uint64(len(pkt.Payload))
	switch medi.Type {
	case description.MediaTypeVideo:
		st.VideoBytes += uint64(len(pkt.Payload))
	case description.MediaTypeAudio:
		st.AudioBytes += uint64(len(pkt.Payload))
	}
	st.LastFrameAt = time.Now()
	if fc != nil && st.FirstVideoAt.IsZero() {
		st.FirstVideoAt = st.LastFrameAt
	}
	switch {
	case fc != nil:
		fc.observe(pkt, func(u accessUnit) {
			st.VideoFrames++
			if st.Players > 0 {
				st.VideoFramesPlayed++
			}
			if u.key {
				st.KeyFrames++
			}
			p.recordFrame(medi, fc.ts, u.key, st.LastFrameAt)
			m.frames[p.name] = p.frames
			if p.first {
				p.first = false
				st.FirstVideoFrameKey = u.key && u.hasParams(fc.isH265)
			} else if step := int32(fc.ts - p.lastTS); step < 0 {
				st.VideoTSBackwards++
			} else {
				st.VideoTSMaxStep = max(st.VideoTSMaxStep, uint32(step))
			}
			p.lastTS = fc.ts // the unit just finished: observe updates ts only after done
		})
	case medi.Type == description.MediaTypeAudio:
		st.AudioPackets++
	}
}

// recordFrame remembers one video frame and gives the frames still without one their NTP time
// once the publisher's first sender report is in.
func (p *publication) recordFrame(medi *description.Media, ts uint32, key bool, at time.Time) {
	if len(p.frames) < maxRecordedFrames {
		p.frames = append(p.frames, VideoFrame{RTP: ts, Key: key, Arrived: at})
	}
	for ; p.timed < len(p.frames); p.timed++ {
		f := &p.frames[p.timed]
		h := rtp.Header{Timestamp: f.RTP, PayloadType: medi.Formats[0].PayloadType()}
		ntp, ok := p.session.PacketNTP(medi, &rtp.Packet{Header: h})
		if !ok {
			break
		}
		f.NTP = ntp
	}
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (m *mediaHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if path, ok := m.players[ctx.Session]; ok {
		delete(m.players, ctx.Session)
		if st := m.stats[path]; st != nil && st.Players > 0 {
			st.Players--
		}
	}
	p, ok := m.bySession[ctx.Session]
	if !ok {
		return
	}
	delete(m.bySession, ctx.Session)
	if m.paths[p.name] == p {
		delete(m.paths, p.name)
		m.stats[p.name].Publishing = false
		p.stream.Close()
		m.log.Info("sim media server: publisher gone", "stream", p.name, "err", ctx.Error)
	}
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (m *mediaHandler) OnDescribe(
	ctx *gortsplib.ServerHandlerOnDescribeCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	return m.play(ctx.Path)
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (m *mediaHandler) OnSetup(
	ctx *gortsplib.ServerHandlerOnSetupCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return m.play(ctx.Path)
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (m *mediaHandler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	name := streamName(ctx.Path)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, again := m.players[ctx.Session]; !again {
		if st := m.stats[name]; st != nil {
			m.players[ctx.Session] = name
			st.Players++
		}
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (m *mediaHandler) play(path string) (*base.Response, *gortsplib.ServerStream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.paths[streamName(path)]
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// codecNames names the first format of each media the way the rest of camgate does.
func codecNames(desc *description.Session) []string {
	names := make([]string, 0, len(desc.Medias))
	for _, medi := range desc.Medias {
		if len(medi.Formats) == 0 {
			continue
		}
		names = append(names, codecName(medi.Formats[0]))
	}
	return names
}

func codecName(f format.Format) string {
	switch f := f.(type) {
	case *format.H264:
		return "h264"
	case *format.H265:
		return "h265"
	case *format.MPEG4Audio, *format.MPEG4AudioLATM:
		return "aac"
	case *format.G711:
		if f.MULaw {
			return "pcmu"
		}
		return "pcma"
	case *format.Opus:
		return "opus"
	}
	// Anything else is named after its gortsplib type (vp8, av1, mjpeg, klv, ...).
	return strings.ToLower(strings.TrimPrefix(fmt.Sprintf("%T", f), "*format."))
}
