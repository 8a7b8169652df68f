package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// Acceptance 2 of issue 18: the sender reports camgate sends upstream state the camera's own
// timing. An ffmpeg camera (H.264 test pattern and an AAC sine) is relayed by `camgate run` to
// ffmpeg's RTSP server; a second ffmpeg reads the camera directly, as the reference. Both
// write every packet's PTS, as ffmpeg's RTSP demuxer derives it from the sender reports, and
// the packet's MD5, which pairs up the same packet in both. Over 60 s: the relayed stream's
// PTS never step by more than one frame interval (40 ms) beyond the packet's duration, and at
// every audio packet the A/V offset is within 20 ms of the reference's.
func TestRunSenderReportsKeepTheCamerasAVTiming(t *testing.T) {
	ff := needTool(t, "ffmpeg", "ffmpeg")
	const seconds = 60
	camURL := cameraRelayingSenderReports(t)
	recvURL := fmt.Sprintf("rtsp://127.0.0.1:%d/", freePort(t))
	dir := t.TempDir()
	relayed, reference := filepath.Join(dir, "relayed.md5"), filepath.Join(dir, "reference.md5")

	receiver := start(t, ff, "-hide_banner", "-loglevel", "warning", "-y", "-rtsp_flags", "listen",
		"-i", recvURL+"gw-cam1", "-c", "copy", "-f", "framemd5", relayed)
	// 997 Hz shares no factor with 16 kHz, so AAC frames repeat only every 8 s and their
	// hashes pair up unambiguously.
	camera := start(t, ff, "-hide_banner", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=997:sample_rate=16000",
		"-t", strconv.Itoa(seconds+25),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", "25", "-b:v", "600k", "-c:a", "aac", "-ar", "16000", "-b:a", "32k",
		"-f", "rtsp", "-rtsp_transport", "tcp", camURL)
	waitFor(t, 30*time.Second, "the camera to publish", func() bool { return probeReady(camURL) })
	gw, _ := runCamgate(t, relayConfig("gw", recvURL, cameraYAML("cam1", camURL, true)))
	ref := start(t, ff, "-hide_banner", "-loglevel", "warning", "-y", "-rtsp_transport", "tcp",
		"-i", camURL, "-t", strconv.Itoa(seconds+5), "-c", "copy", "-f", "framemd5", reference)

	time.Sleep((seconds + 5) * time.Second)
	gw.stop(t, syscall.SIGTERM, 10*time.Second)
	if err := receiver.wait(t, 30*time.Second); err != nil {
		t.Logf("receiver: %v", err)
	}
	if err := ref.wait(t, 30*time.Second); err != nil {
		t.Logf("reference: %v", err)
	}
	camera.kill()

	got, want := readFrameMD5(t, relayed), readFrameMD5(t, reference)
	r := compareTiming(got, want)
	t.Logf("relayed %d video and %d audio packets, %d and %d paired with the reference over %.1f s; "+
		"largest PTS step beyond a packet's duration: video %.1f ms, audio %.1f ms; "+
		"A/V offset against the reference's: %.1f to %.1f ms",
		len(got.video), len(got.audio), r.pairedVideo, r.pairedAudio, r.span.Seconds(),
		ms(r.videoStep), ms(r.audioStep), ms(r.minAV), ms(r.maxAV))
	if r.span < (seconds-5)*time.Second || r.pairedVideo < 25*(seconds-5) || r.pairedAudio < (16000/1024)*(seconds-5) {
		t.Fatalf("only %d video and %d audio packets over %s paired with the reference: the relay did not run for %d s",
			r.pairedVideo, r.pairedAudio, r.span, seconds)
	}
	const frame = 40 * time.Millisecond
	if r.videoStep > frame || r.audioStep > frame {
		t.Errorf("the relayed PTS stepped by %.1f ms (video) and %.1f ms (audio) beyond a packet's duration, "+
			"more than one frame interval (%s)",
			ms(r.videoStep), ms(r.audioStep), frame)
	}
	if r.minAV < -20*time.Millisecond || r.maxAV > 20*time.Millisecond {
		t.Errorf("the relayed A/V offset strays %.1f to %.1f ms from the camera's; want within 20 ms",
			ms(r.minAV), ms(r.maxAV))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// probeReady says whether the camera's path is being published: its server answers DESCRIBE.
func probeReady(u string) bool {
	pu, err := base.ParseURL(u)
	if err != nil {
		return false
	}
	c := gortsplib.Client{Scheme: pu.Scheme, Host: pu.Host}
	if err := c.Start(); err != nil {
		return false
	}
	defer c.Close()
	_, _, err = c.Describe(pu)
	return err == nil
}

// cameraRelayingSenderReports is the camera's RTSP server, as mediamtx is in front of many: it
// takes ffmpeg's publish and serves it with ffmpeg's own timing, stating in its sender reports
// the wall-clock time ffmpeg's sender reports gave each packet (gortsplib's PacketNTP), not the
// time the packet happened to pass through. It returns the URL to publish to and play.
func cameraRelayingSenderReports(t *testing.T) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	h := &passThrough{}
	h.srv = &gortsplib.Server{Handler: h, RTSPAddress: addr}
	if err := h.srv.Start(); err != nil {
		t.Fatalf("camera server: %v", err)
	}
	t.Cleanup(h.srv.Close)
	return "rtsp://" + addr + "/cam"
}

type passThrough struct {
	srv    *gortsplib.Server
	mu     sync.Mutex
	stream *gortsplib.ServerStream
}

func (h *passThrough) current() *gortsplib.ServerStream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stream
}

func (h *passThrough) OnDescribe(
	*gortsplib.ServerHandlerOnDescribeCtx,
) (*base.Response, *gortsplib.ServerStream, error) {
	if s := h.current(); s != nil {
		return &base.Response{StatusCode: base.StatusOK}, s, nil
	}
	return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
}

func (h *passThrough) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	s := &gortsplib.ServerStream{Server: h.srv, Desc: ctx.Description}
	if err := s.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stream != nil {
		h.stream.Close()
	}
	h.stream = s
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *passThrough) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return h.OnDescribe(nil)
}

func (h *passThrough) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *passThrough) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	s := h.current()
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		at, ok := ctx.Session.PacketNTP(medi, pkt)
		if !ok {
			return // before ffmpeg's first sender report, which comes with its first packet
		}
		_ = s.WritePacketRTPWithNTP(medi, pkt, at) // fails only once the stream is closing
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// frameMD5 is what ffmpeg's framemd5 muxer wrote of one receiver's packets: per stream, each
// packet's PTS and duration in seconds and its MD5.
type frameMD5 struct{ video, audio []md5Packet }

type md5Packet struct {
	pts, dur float64
	hash     string
}

func readFrameMD5(t *testing.T, path string) frameMD5 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("receiver wrote nothing: %v", err)
	}
	defer f.Close()
	tb := map[string]float64{}
	kind := map[string]string{}
	var out frameMD5
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var idx, num, den int
		var codec string
		switch {
		case strings.HasPrefix(line, "#tb "):
			if _, err := fmt.Sscanf(line, "#tb %d: %d/%d", &idx, &num, &den); err == nil && den > 0 {
				tb[strconv.Itoa(idx)] = float64(num) / float64(den)
			}
			continue
		case strings.HasPrefix(line, "#media_type "):
			if _, err := fmt.Sscanf(line, "#media_type %d: %s", &idx, &codec); err == nil {
				kind[strconv.Itoa(idx)] = codec
			}
			continue
		case strings.HasPrefix(line, "#"):
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) < 6 {
			continue
		}
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		pts, err1 := strconv.ParseInt(fields[2], 10, 64)
		dur, err2 := strconv.ParseInt(fields[3], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		p := md5Packet{pts: float64(pts) * tb[fields[0]], dur: float64(dur) * tb[fields[0]], hash: fields[5]}
		switch kind[fields[0]] {
		case "video":
			out.video = append(out.video, p)
		case "audio":
			out.audio = append(out.audio, p)
		}
	}
	if len(out.video) == 0 || len(out.audio) == 0 {
		t.Fatalf("%s: %d video and %d audio packets, want both (media types %v)", path, len(out.video), len(out.audio), kind)
	}
	return out
}

// timing is how a relayed stream's PTS compare with the reference's.
type timing struct {
	pairedVideo, pairedAudio int
	span                     time.Duration // from the first to the last paired video packet
	// The largest jump of PTS between consecutive relayed packets beyond the earlier packet's
	// duration, either way.
	videoStep, audioStep time.Duration
	// The relayed audio's offset from its video, minus the reference's, at each paired audio
	// packet: its extremes.
	minAV, maxAV time.Duration
}

func compareTiming(got, want frameMD5) timing {
	var r timing
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	step := func(ps []md5Packet) time.Duration {
		var worst time.Duration
		// ffmpeg's receiver leaves the very first packet's timestamp unset and guesses it
		// ("Timestamps are unset in a packet"), so steps are measured from the second on.
		for i := 2; i < len(ps); i++ {
			d := sec(math.Abs(ps[i].pts - ps[i-1].pts - ps[i-1].dur))
			worst = max(worst, d)
		}
		return worst
	}
	r.videoStep, r.audioStep = step(got.video), step(got.audio)

	// Video frames of the test pattern are all different: a hash names one packet. The
	// relayed PTS minus the reference's is the video's delay through the relay, as the
	// receivers' clocks say.
	refVideo := map[string]float64{}
	for _, p := range want.video {
		refVideo[p.hash] = p.pts
	}
	type delay struct{ at, d float64 }
	var vd []delay
	for _, p := range got.video {
		if ref, ok := refVideo[p.hash]; ok {
			vd = append(vd, delay{p.pts, p.pts - ref})
		}
	}
	r.pairedVideo = len(vd)
	if len(vd) < 2 {
		return r
	}
	r.span = sec(vd[len(vd)-1].at - vd[0].at)
	videoDelayAt := func(pts float64) float64 {
		i, _ := slices.BinarySearchFunc(vd, pts, func(e delay, t float64) int {
			switch {
			case e.at < t:
				return -1
			case e.at > t:
				return 1
			}
			return 0
		})
		i = min(i, len(vd)-1)
		return vd[i].d
	}
	// Audio frames repeat every 8 s: of the reference's packets with the hash, the one nearest
	// to where the video's delay puts it.
	refAudio := map[string][]float64{}
	for _, p := range want.audio {
		refAudio[p.hash] = append(refAudio[p.hash], p.pts)
	}
	first := true
	for _, p := range got.audio {
		refs := refAudio[p.hash]
		if len(refs) == 0 {
			continue
		}
		vdel := videoDelayAt(p.pts)
		best := refs[0]
		for _, ref := range refs[1:] {
			if math.Abs(p.pts-vdel-ref) < math.Abs(p.pts-vdel-best) {
				best = ref
			}
		}
		off := sec(p.pts - best - vdel) // audio's delay minus video's
		if first || off < r.minAV {
			r.minAV = off
		}
		if first || off > r.maxAV {
			r.maxAV = off
		}
		first = false
		r.pairedAudio++
	}
	return r
}
