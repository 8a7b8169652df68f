package rtsp

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/camgate/camgate/internal/testtool"
)

// testServer is a loopback RTSP server that accepts publishers (ffmpeg as a camera, or a Relay
// as upstream) and serves readers (a Relay pulling a camera). It records what each publisher
// sent, so tests can check what arrived upstream.
type testServer struct {
	srv  *gortsplib.Server
	addr string

	mu        sync.Mutex
	streams   map[string]*testStream
	announces int
	refuse    base.StatusCode // when set, ANNOUNCE is answered with it
}

type testStream struct {
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
	desc      *description.Session

	videoFrames  int
	audioPackets int
	firstNALs    []uint8  // NAL types of the first few video packets
	frameTS      []uint32 // RTP timestamp of each video frame, in arrival order
	lastFrameAt  time.Time
	recordAt     time.Time // when the latest RECORD was accepted
	firstVideoAt time.Time // when its first video packet arrived
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	s := &testServer{addr: freeAddr(t), streams: map[string]*testStream{}}
	s.srv = &gortsplib.Server{Handler: s, RTSPAddress: s.addr, ReadTimeout: 5 * time.Second}
	if err := s.srv.Start(); err != nil {
		t.Fatalf("start test RTSP server: %v", err)
	}
	t.Cleanup(s.srv.Close)
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *testServer) url(path string) string { return "rtsp://" + s.addr + "/" + path }

func (s *testServer) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for path, st := range s.streams {
		if st.publisher == ctx.Session {
			// Like a camera that stops sending before it hangs up, give readers a moment to
			// receive what is still queued for them; closing at once would cut the stream's
			// tail on a loaded machine and count it against the relay.
			stream := st.stream
			time.AfterFunc(300*time.Millisecond, stream.Close)
			st.stream = nil
			st.publisher = nil
			s.streams[path] = st
		}
	}
}

func (s *testServer) OnDescribe(
	ctx *gortsplib.ServerHandlerOnDescribeCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[strings.TrimPrefix(ctx.Path, "/")]
	if st == nil || st.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st.stream, nil
}

func (s *testServer) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announces++
	if s.refuse != 0 {
		return &base.Response{StatusCode: s.refuse}, nil
	}
	path := strings.TrimPrefix(ctx.Path, "/")
	st := s.streams[path]
	if st == nil {
		st = &testStream{}
		s.streams[path] = st
	}
	if st.stream != nil {
		st.stream.Close()
		st.publisher.Close()
	}
	st.stream = &gortsplib.ServerStream{Server: s.srv, Desc: ctx.Description}
	if err := st.stream.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil
	}
	st.publisher = ctx.Session
	st.desc = ctx.Description
	st.videoFrames, st.audioPackets, st.firstNALs, st.frameTS = 0, 0, nil, nil
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *testServer) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[strings.TrimPrefix(ctx.Path, "/")]
	if st == nil || st.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st.stream, nil
}

func (s *testServer) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *testServer) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	path := strings.TrimPrefix(ctx.Path, "/")
	s.mu.Lock()
	st := s.streams[path]
	stream := st.stream
	st.recordAt, st.firstVideoAt = time.Now(), time.Time{}
	s.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(m *description.Media, f format.Format, pkt *rtp.Packet) {
		s.mu.Lock()
		switch f.(type) {
		case *format.H264, *format.H265:
			if st.firstVideoAt.IsZero() {
				st.firstVideoAt = time.Now()
			}
			if len(st.firstNALs) < 4 && len(pkt.Payload) > 2 {
				st.firstNALs = append(st.firstNALs, firstNALType(f, pkt.Payload))
			}
			if pkt.Marker {
				st.videoFrames++
				st.lastFrameAt = time.Now()
				st.frameTS = append(st.frameTS, pkt.Timestamp)
			}
		default:
			st.audioPackets++
		}
		s.mu.Unlock()
		_ = stream.WritePacketRTP(m, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func firstNALType(f format.Format, p []byte) uint8 {
	codec := codecH264
	if _, ok := f.(*format.H265); ok {
		codec = codecH265
	}
	var first uint8
	seen := false
	scanNALs(codec, p, func(typ uint8, _ []byte) {
		if !seen {
			first, seen = typ, true
		}
	})
	return first
}

// snapshot returns a copy of what the publisher of path sent so far.
func (s *testServer) snapshot(path string) testStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[path]
	if st == nil {
		return testStream{}
	}
	c := *st
	c.firstNALs = append([]uint8(nil), st.firstNALs...)
	c.frameTS = append([]uint32(nil), st.frameTS...)
	return c
}

// needTool returns the path of a peer program, failing in CI and skipping elsewhere when it is
// missing.
func needTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	return testtool.Need(t, debianPackage, name)
}

// ffmpegCamera publishes a test pattern to url until stopped. vcodec is libx264 or libx265,
// acodec aac, pcm_alaw or "" for no audio; videoArgs go to the video encoder (cbr2M, say).
type ffmpegCamera struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// cbr2M makes libx264 send a constant 2 Mbit/s, padding with filler data: a camera fast
// enough for the kernel's low-water mark (lowwater.go).
var cbr2M = []string{"-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "1M", "-x264-params", "nal-hrd=cbr"}

func startCamera(t testing.TB, url, vcodec, acodec string, seconds int, videoArgs ...string) *ffmpegCamera {
	t.Helper()
	ff := needTool(t, "ffmpeg", "ffmpeg")
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
	}
	if acodec != "" {
		args = append(args, "-f", "lavfi", "-i", "sine=sample_rate=8000")
	}
	args = append(args, "-t", fmt.Sprint(seconds), "-c:v", vcodec, "-g", "25", "-pix_fmt", "yuv420p")
	args = append(args, videoArgs...)
	switch vcodec {
	case "libx264":
		args = append(args, "-preset", "ultrafast", "-tune", "zerolatency")
	case "libx265":
		args = append(args, "-preset", "ultrafast", "-tune", "zerolatency", "-x265-params", "log-level=error:keyint=25")
	}
	if acodec != "" {
		args = append(args, "-c:a", acodec, "-ar", "8000")
	}
	args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", url)
	cmd := exec.Command(ff, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ffmpeg: %v", err)
	}
	c := &ffmpegCamera{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	return c
}

func (c *ffmpegCamera) stop() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tempFile(t testing.TB, name string) string {
	return filepath.Join(t.TempDir(), name)
}
