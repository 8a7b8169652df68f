package rtsp

import (
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// rtmpReceiver is a loopback RTMP server that takes one publisher at a time and counts what it
// sends. It is built on gortmplib's server side, which mediamtx uses: an implementation
// independent of the publisher under test, and one that speaks Enhanced RTMP.
type rtmpReceiver struct {
	ln net.Listener
	wg sync.WaitGroup

	mu          sync.Mutex
	videoCodec  string
	audioCodec  string
	videoFrames int
	audioFrames int
	firstIsIDR  bool
	sawFirst    bool
}

func startRTMPReceiver(t *testing.T) *rtmpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rr := &rtmpReceiver{ln: ln}
	rr.wg.Add(1)
	go func() {
		defer rr.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rr.wg.Add(1)
			go func() {
				defer rr.wg.Done()
				defer c.Close()
				_ = rr.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); rr.wg.Wait() })
	return rr
}

func (rr *rtmpReceiver) url() string { return "rtmp://" + rr.ln.Addr().String() + "/live/x" }

func (rr *rtmpReceiver) serve(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := &gortmplib.ServerConn{RW: c}
	if err := sc.Initialize(); err != nil {
		return err
	}
	if err := sc.AcceptConn(); err != nil {
		return err
	}
	r := &gortmplib.Reader{Conn: sc}
	if err := r.Initialize(); err != nil {
		return err
	}
	onVideo := func(au [][]byte, isPicture func([][]byte) bool, isKey func([][]byte) bool) {
		rr.mu.Lock()
		defer rr.mu.Unlock()
		if !isPicture(au) {
			return // the decoder configuration, delivered as parameter sets
		}
		if !rr.sawFirst {
			rr.sawFirst, rr.firstIsIDR = true, isKey(au)
		}
		rr.videoFrames++
	}
	onAudio := func() {
		rr.mu.Lock()
		rr.audioFrames++
		rr.mu.Unlock()
	}
	for _, tr := range r.Tracks() {
		rr.mu.Lock()
		switch codec := tr.Codec.(type) {
		case *codecs.H264:
			rr.videoCodec = "H264"
			r.OnDataH264(tr, func(_, _ time.Duration, au [][]byte) { onVideo(au, hasPicture, h264.IsRandomAccess) })
		case *codecs.H265:
			rr.videoCodec = "H265"
			r.OnDataH265(tr, func(_, _ time.Duration, au [][]byte) { onVideo(au, hasH265Picture, h265.IsRandomAccess) })
		case *codecs.MPEG4Audio:
			rr.audioCodec = "AAC"
			r.OnDataMPEG4Audio(tr, func(time.Duration, []byte) { onAudio() })
		case *codecs.G711:
			rr.audioCodec = "PCMU"
			if !codec.MULaw {
				rr.audioCodec = "PCMA"
			}
			r.OnDataG711(tr, func(time.Duration, []byte) { onAudio() })
		}
		rr.mu.Unlock()
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := r.Read(); err != nil {
			return err
		}
	}
}

func (rr *rtmpReceiver) codecs() (video, audio string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.videoCodec, rr.audioCodec
}

func (rr *rtmpReceiver) counts() (video, audio int, firstIDR bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.videoFrames, rr.audioFrames, rr.firstIsIDR
}

// TestRelayToRTMP relays a camera to gortmplib's RTMP server: H.264 with AAC or G.711 μ-law in
// classic FLV tags, what Flussonic takes over RTMP (SPEC §4). A G.711 A-law track is left out
// and named in Stats; H.265 is refused, since without video there is nothing to publish.
func TestRelayToRTMP(t *testing.T) {
	for _, tc := range []struct {
		name           string
		vcodec, acodec string
		wantVideo      string
		wantAudio      string
		wantDropped    string // in Stats.DroppedTracks and LastError
	}{
		{"H264+AAC", "libx264", "aac", "H264", "AAC", ""},
		{"H264+PCMU", "libx264", "pcm_mulaw", "H264", "PCMU", ""},
		{"H264+PCMA video only", "libx264", "pcm_alaw", "H264", "",
			"G.711 A-law (PCMA) audio left out: Flussonic does not take it over RTMP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := newTestServer(t)
			startCamera(t, cam.url("cam"), tc.vcodec, tc.acodec, 30)
			waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
			rr := startRTMPReceiver(t)

			r, stop := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: tc.acodec != "", Publish: rr.url()})
			waitFor(t, 10*time.Second, "relaying", func() bool { return r.Stats().Relaying })
			// The receiver learns the tracks from the first seconds of the stream.
			waitFor(t, 15*time.Second, "receiver to see video", func() bool { v, _, _ := rr.counts(); return v > 0 })
			c0 := cam.snapshot("cam").videoFrames
			v0, _, _ := rr.counts()
			time.Sleep(3 * time.Second)
			c1 := cam.snapshot("cam").videoFrames
			time.Sleep(500 * time.Millisecond)
			v1, audio, firstIDR := rr.counts()
			st := r.Stats()
			stop()

			if sent, got := c1-c0, v1-v0; got < sent*95/100 {
				t.Errorf("RTMP receiver got %d video frames, camera sent %d meanwhile: want >= 95%%", got, sent)
			}
			video, audioCodec := rr.codecs()
			if video != tc.wantVideo || audioCodec != tc.wantAudio {
				t.Errorf("receiver saw video %q audio %q, want %q %q", video, audioCodec, tc.wantVideo, tc.wantAudio)
			}
			if tc.wantAudio != "" && audio == 0 {
				t.Errorf("no %s frames over RTMP", tc.wantAudio)
			}
			if !firstIDR {
				t.Error("first video frame over RTMP is not a keyframe")
			}
			if tc.wantDropped == "" && len(st.DroppedTracks) != 0 {
				t.Errorf("dropped %q, want nothing dropped", st.DroppedTracks)
			}
			if tc.wantDropped != "" && (len(st.DroppedTracks) != 1 || st.DroppedTracks[0] != tc.wantDropped ||
				!strings.Contains(st.LastError, tc.wantDropped)) {
				t.Errorf("dropped %q, last error %q; want %q in both", st.DroppedTracks, st.LastError, tc.wantDropped)
			}
		})
	}
}

// An H.265 camera over RTMP is refused with a last error naming the codec and the protocol,
// and nothing reaches the receiver: Flussonic takes H.265 only over RTSP.
func TestRelayRefusesH265OverRTMP(t *testing.T) {
	cam := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx265", "", 30)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })
	rr := startRTMPReceiver(t)
	r, stop := startRelay(t, RelayConfig{Source: cam.url("cam"), Publish: rr.url()})
	defer stop()
	const want = "upstream: H265 video left out: Flussonic does not take it over RTMP: no video left to publish"
	waitFor(t, 10*time.Second, "the refusal", func() bool { return r.Stats().LastError == want })
	if st := r.Stats(); st.Relaying || st.FramesOut != 0 {
		t.Errorf("relaying %v with %d frames out, want nothing sent", st.Relaying, st.FramesOut)
	}
	if v, a, _ := rr.counts(); v != 0 || a != 0 {
		t.Errorf("receiver got %d video and %d audio frames, want none", v, a)
	}
}

func hasH265Picture(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && (n[0]>>1)&0x3f < 32 {
			return true
		}
	}
	return false
}

func hasPicture(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && n[0]&0x1f >= 1 && n[0]&0x1f <= 5 {
			return true
		}
	}
	return false
}

// TestRelayToRTMPFFmpeg relays to ffmpeg's own RTMP server (-listen 1), a second receiver
// independent of both gortmplib and this package, and counts what it recorded.
func TestRelayToRTMPFFmpeg(t *testing.T) {
	ff := needTool(t, "ffmpeg", "ffmpeg")
	probe := needTool(t, "ffprobe", "ffmpeg")
	cam := newTestServer(t)
	startCamera(t, cam.url("cam"), "libx264", "aac", 30)
	waitFor(t, 10*time.Second, "camera to publish", func() bool { return cam.snapshot("cam").videoFrames > 0 })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out := tempFile(t, "out.flv")
	rec := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-listen", "1",
		"-i", "rtmp://"+addr+"/live/x", "-c", "copy", "-y", out)
	var stderr bytes.Buffer
	rec.Stderr = &stderr
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	recDone := make(chan error, 1)
	go func() { recDone <- rec.Wait() }()
	t.Cleanup(func() {
		_ = rec.Process.Kill()
		<-recDone //nolint:errcheck // killed: Wait says so
	})

	r, stop := startRelay(t, RelayConfig{Source: cam.url("cam"), Audio: true, Publish: "rtmp://" + addr + "/live/x"})
	waitFor(t, 15*time.Second, "relaying", func() bool {
		if e := r.Stats().LastError; e != "" {
			t.Logf("relay: %s", e)
		}
		return r.Stats().Relaying
	})
	time.Sleep(3 * time.Second)
	stop()
	select {
	case err := <-recDone:
		recDone <- err
		if err != nil {
			t.Fatalf("ffmpeg receiver: %v: %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ffmpeg receiver did not finish after the publisher left")
	}

	res, err := exec.Command(probe, "-v", "error", "-count_packets", "-show_entries",
		"stream=codec_name,nb_read_packets", "-of", "csv=p=0", out).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, res)
	}
	// Decoding proves the decoder configuration record is right, not only the framing.
	dec, err := exec.Command(ff, "-v", "error", "-i", out, "-f", "null", "-").CombinedOutput()
	if err != nil || len(dec) > 0 {
		t.Errorf("ffmpeg cannot decode what it recorded: %v: %s", err, dec)
	}
	got := map[string]int{}
	for line := range strings.Lines(string(res)) {
		name, n, _ := strings.Cut(strings.TrimSpace(line), ",")
		got[name], _ = strconv.Atoi(n)
	}
	// About 3 s at 25 fps were relayed; far fewer means frames were lost or unreadable.
	if got["h264"] < 50 {
		t.Errorf("ffmpeg recorded %d H.264 packets, want >= 50 (ffprobe: %q)", got["h264"], res)
	}
	if got["aac"] == 0 {
		t.Errorf("ffmpeg recorded no AAC packets (ffprobe: %q)", res)
	}
}
