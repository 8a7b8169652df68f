package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/pion/rtp"
)

// CameraConfig configures a simulated RTSP camera.
type CameraConfig struct {
	// Addr is where to listen for RTSP, "127.0.0.1:0" when empty. UDP transport uses two more
	// ports chosen on the same address.
	Addr string
	// Path is the stream's path, "/stream1" when empty.
	Path string
	// Username and Password, when Username is set, are required from readers (Basic or Digest).
	Username, Password string
	// Logger receives connection and session events; nil discards them.
	Logger *slog.Logger

	// Video, when set, is served instead of the embedded clip's video, with the embedded
	// audio: an Annex-B H.264 stream at 25 fps starting with a keyframe, 10 s long like the
	// audio, e.g. one a test made with ffmpeg at the bitrate it needs.
	Video []byte

	// clipFrames > 0 cuts the clip to that many video frames, so that a test sees the loop
	// wrap around within a couple of seconds.
	clipFrames int
}

// Camera is an RTSP camera serving the embedded H.264+AAC clip, looped forever at real-time pace,
// to any number of readers over TCP or UDP. Like a live camera, a reader joining mid-stream gets
// the current position, and RTP timestamps and sequence numbers run on across loops.
type Camera struct {
	cfg  CameraConfig
	log  *slog.Logger
	clip *clip
	ln   *rtspListeners

	mu     sync.RWMutex
	stream *gortsplib.ServerStream // nil until Run has set it up

	// dropped counts the packets a reader's write queue had no room for: what a real camera
	// does for a reader that does not keep up (its send buffer fills and it skips or resets).
	dropped atomic.Uint64
}

// NewCamera parses the clip and binds the camera's listeners; Run serves them.
func NewCamera(cfg CameraConfig) (*Camera, error) {
	if cfg.Path == "" {
		cfg.Path = "/stream1"
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		cfg.Path = "/" + cfg.Path
	}
	c, err := loadClip(cfg.clipFrames, cfg.Video)
	if err != nil {
		return nil, fmt.Errorf("sim camera: %w", err)
	}
	ln, err := listenRTSP(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim camera: %w", err)
	}
	return &Camera{cfg: cfg, log: loggerOrDiscard(cfg.Logger), clip: c, ln: ln}, nil
}

// Dropped is how many packets the camera dropped, over all its readers, because a reader did
// not keep up: its write queue (gortsplib's, 256 packets) and the socket's buffers were full.
func (c *Camera) Dropped() uint64 { return c.dropped.Load() }

// URL is the stream's address, without credentials.
func (c *Camera) URL() string {
	return c.ln.url() + c.cfg.Path
}

// Run serves the stream until ctx ends. It can be called once.
func (c *Camera) Run(ctx context.Context) error {
	srv := c.ln.server((*cameraHandler)(c))
	if err := srv.Start(); err != nil {
		c.ln.close()
		return fmt.Errorf("sim camera: start rtsp server: %w", err)
	}
	defer srv.Close()

	video := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: c.clip.sps, PPS: c.clip.pps}
	audioCfg := c.clip.audioCfg
	audio := &format.MPEG4Audio{
		PayloadTyp:       97,
		Config:           &audioCfg,
		SizeLength:       13,
		IndexLength:      3,
		IndexDeltaLength: 3,
	}
	desc := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{video}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{audio}},
	}}
	stream := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := stream.Initialize(); err != nil {
		return fmt.Errorf("sim camera: stream: %w", err)
	}
	defer stream.Close()

	c.mu.Lock()
	c.stream = stream
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.stream = nil
		c.mu.Unlock()
	}()

	c.log.Info("sim camera serving", "url", c.URL(), "width", c.clip.width, "height", c.clip.height,
		"loop", c.clip.duration())

	errc := make(chan error, 1)
	go func() { errc <- srv.Wait() }()

	p, err := newClipPlayer(c.clip, stream, desc.Medias[0], desc.Medias[1], video, audio)
	if err != nil {
		return fmt.Errorf("sim camera: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	played := p.play(ctx)
	select {
	case err := <-played:
		if err != nil {
			return fmt.Errorf("sim camera: %w", err)
		}
		return nil
	case err := <-errc:
		cancel()
		<-played //nolint:errcheck // cancelled just above: the server's error is the one to return
		return fmt.Errorf("sim camera: rtsp server stopped: %w", err)
	}
}

// cameraHandler is the Camera as gortsplib sees it, so that the callbacks stay out of Camera's API.
type cameraHandler Camera

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (c *cameraHandler) OnDescribe(
	ctx *gortsplib.ServerHandlerOnDescribeCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	return c.serve(ctx.Conn, ctx.Request, ctx.Path)
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (c *cameraHandler) OnSetup(
	ctx *gortsplib.ServerHandlerOnSetupCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	return c.serve(ctx.Conn, ctx.Request, ctx.Path)
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (c *cameraHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (c *cameraHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	c.log.Debug("sim camera: connection opened", "remote", ctx.Conn.NetConn().RemoteAddr())
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (c *cameraHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	c.log.Debug("sim camera: connection closed", "remote", ctx.Conn.NetConn().RemoteAddr(), "err", ctx.Error)
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError: a packet dropped
// for a reader that does not keep up. It is counted (Camera.Dropped) and logged as gortsplib
// logs it without this handler, naming the reader, so that a log names the slow one.
func (c *cameraHandler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	c.dropped.Add(1)
	reader := "?"
	if conns := ctx.Session.Conns(); len(conns) > 0 {
		reader = conns[0].NetConn().RemoteAddr().String()
	}
	log.Printf("%v (sim camera, reader %s)", ctx.Error, reader)
}

func (c *cameraHandler) serve(
	conn *gortsplib.ServerConn, req *base.Request, path string,
) (*base.Response, *gortsplib.ServerStream, error) {
	// Readers are checked on DESCRIBE and again on SETUP, as a client may skip DESCRIBE.
	if c.cfg.Username != "" && !conn.VerifyCredentials(req, c.cfg.Username, c.cfg.Password) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	if path != c.cfg.Path {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.stream == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// clipPlayer writes a clip into a server stream in a loop, at real-time pace.
type clipPlayer struct {
	clip                 *clip
	stream               *gortsplib.ServerStream
	videoMedia, audMedia *description.Media
	videoEnc             interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	audioEnc interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	// random starting points, as RFC 3550 asks and cameras do
	videoBase, audioBase uint32
}

func newClipPlayer(c *clip, stream *gortsplib.ServerStream, vm, am *description.Media,
	v *format.H264, a *format.MPEG4Audio,
) (*clipPlayer, error) {
	venc, err := v.CreateEncoder()
	if err != nil {
		return nil, fmt.Errorf("h264 encoder: %w", err)
	}
	aenc, err := a.CreateEncoder()
	if err != nil {
		return nil, fmt.Errorf("aac encoder: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random timestamp base: %w", err)
	}
	return &clipPlayer{
		clip: c, stream: stream, videoMedia: vm, audMedia: am, videoEnc: venc, audioEnc: aenc,
		videoBase: binary.BigEndian.Uint32(b[:4]), audioBase: binary.BigEndian.Uint32(b[4:]),
	}, nil
}

// play runs until ctx ends and then sends nil (or the write error that stopped it).
func (p *clipPlayer) play(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	return done
}

func (p *clipPlayer) run(ctx context.Context) error {
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	c := p.clip
	audioRate := int64(c.audioCfg.SampleRate)

	for loop := uint32(0); ; loop++ {
		loopStart := start.Add(time.Duration(loop) * c.duration())
		vi, ai := 0, 0
		for vi < len(c.video) || ai < len(c.audio) {
			// Interleave both tracks in presentation order.
			var at time.Duration
			sendVideo := ai >= len(c.audio)
			if vi < len(c.video) && ai < len(c.audio) {
				vt := time.Duration(c.video[vi].pts) * time.Second / videoClockRate
				atA := time.Duration(int64(c.audio[ai].pts) * int64(time.Second) / audioRate)
				sendVideo = vt <= atA
			}
			if sendVideo {
				at = time.Duration(c.video[vi].pts) * time.Second / videoClockRate
			} else {
				at = time.Duration(int64(c.audio[ai].pts) * int64(time.Second) / audioRate)
			}
			if err := sleepUntil(ctx, timer, loopStart.Add(at)); err != nil {
				return nil
			}
			ntp := loopStart.Add(at)
			if sendVideo {
				f := c.video[vi]
				ts := p.videoBase + loop*c.videoDuration + f.pts
				if err := p.write(p.videoMedia, p.videoEnc, f.au, ts, ntp); err != nil {
					return fmt.Errorf("write video: %w", err)
				}
				vi++
			} else {
				u := c.audio[ai]
				ts := p.audioBase + loop*c.audioDuration + u.pts
				if err := p.write(p.audMedia, p.audioEnc, [][]byte{u.au}, ts, ntp); err != nil {
					return fmt.Errorf("write audio: %w", err)
				}
				ai++
			}
		}
	}
}

func (p *clipPlayer) write(m *description.Media, enc interface {
	Encode([][]byte) ([]*rtp.Packet, error)
},
	au [][]byte, ts uint32, ntp time.Time,
) error {
	pkts, err := enc.Encode(au)
	if err != nil {
		return err
	}
	for _, pkt := range pkts {
		pkt.Timestamp += ts
		if err := p.stream.WritePacketRTPWithNTP(m, pkt, ntp); err != nil {
			return err
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, t *time.Timer, when time.Time) error {
	d := time.Until(when)
	if d <= 0 {
		return ctx.Err()
	}
	t.Reset(d)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
