package rtsp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/netnstest"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// Issue 15, acceptance 2: two 2 Mbit/s cameras, each with a 300 kbit/s substream, publish to a
// server behind an uplink shaped to 3 Mbit/s (tc tbf on the veth toward the server's own
// network namespace). Without adaptive quality both lose frames; with it the lower-priority
// camera is on its substream within 15 s and then each camera delivers at least 95 % of its
// frames; with the shaping lifted both are back on main within 90 s, switching at most twice.
func TestQualityFallbackBehindAShapedUplink(t *testing.T) {
	ffmpeg := testtool.Need(t, "ffmpeg", "ffmpeg")
	testtool.Need(t, "iproute2", "tc")
	testtool.Need(t, "util-linux", "nsenter")
	mainClip := shapedClip(t, ffmpeg, "1280x720", "2M")
	subClip := shapedClip(t, ffmpeg, "640x360", "300k")
	netnstest.Run(t, nil, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		server := serverBehindShapedLink(t, ctx)

		var cams [4]*sim.Camera // hall main, hall sub, yard main, yard sub
		for i := range cams {
			clip := mainClip
			if i%2 == 1 {
				clip = subClip
			}
			c, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0", Video: clip})
			if err != nil {
				t.Fatal(err)
			}
			cams[i] = c
			go c.Run(ctx) //nolint:errcheck // ends with ctx
		}
		relays := func(q *QualityGovernor) (hall, yard *cameraUnderTest) {
			hall = startShapedCamera(ctx, t, server, "hall", cams[0], cams[1], 5, q)
			yard = startShapedCamera(ctx, t, server, "yard", cams[2], cams[3], 1, q)
			return hall, yard
		}

		// (a) Today: the relays forward blindly and both lose frames.
		hall, yard := relays(nil)
		time.Sleep(8 * time.Second)
		hall.mark()
		yard.mark()
		time.Sleep(15 * time.Second)
		for _, c := range []*cameraUnderTest{hall, yard} {
			got, sent := c.delivered()
			t.Logf("without adaptive quality %s delivered %d of %d frames", c.name, got, sent)
			if sent == 0 || got*100 >= sent*95 {
				t.Errorf("without adaptive quality %s delivered %d of %d frames: the uplink was not short", c.name, got, sent)
			}
		}
		hall.stop()
		yard.stop()
		if t.Failed() {
			return
		}

		// (b) With adaptive quality: the yard (priority 1) steps down, the hall keeps main.
		hall, yard = relays(NewQualityGovernor())
		defer hall.stop()
		defer yard.stop()
		start := time.Now()
		for yard.relay.Stats().Quality != "sub" {
			if time.Since(start) > 15*time.Second {
				t.Fatalf("yard still on main after 15 s (hall %s)", hall.relay.Stats().Quality)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("yard on its substream after %s", time.Since(start).Round(100*time.Millisecond))
		watch := watchSwitches(ctx, hall, yard)
		hall.mark()
		yard.mark()
		time.Sleep(30 * time.Second)
		for _, c := range []*cameraUnderTest{hall, yard} {
			got, sent := c.delivered()
			t.Logf("with adaptive quality %s (%s) delivered %d of %d frames", c.name, c.relay.Stats().Quality, got, sent)
			if sent == 0 || got*100 < sent*95 {
				t.Errorf("with adaptive quality %s delivered %d of %d frames, want >= 95 %%", c.name, got, sent)
			}
		}
		if q := hall.relay.Stats().Quality; q != "main" {
			t.Errorf("the higher-priority hall is on %s", q)
		}

		// (c) The shaping is lifted: both are back on main within 90 s, and stay there.
		shape(t, false)
		lifted := time.Now()
		for hall.relay.Stats().Quality != "main" || yard.relay.Stats().Quality != "main" {
			if time.Since(lifted) > 90*time.Second {
				t.Fatalf("not back on main 90 s after the shaping was lifted: hall %s, yard %s",
					hall.relay.Stats().Quality, yard.relay.Stats().Quality)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("both on main %s after the shaping was lifted", time.Since(lifted).Round(100*time.Millisecond))
		time.Sleep(probeTrial + 2*time.Second) // the probe must hold, not flap back
		switches := watch()
		for _, c := range []*cameraUnderTest{hall, yard} {
			// The yard's step down was before the watch began.
			n := switches[c.name]
			if c == yard {
				n++
			}
			if n > 2 {
				t.Errorf("%s switched %d times, want at most 2", c.name, n)
			}
			if q := c.relay.Stats().Quality; q != "main" {
				t.Errorf("%s went back to %s after its probe", c.name, q)
			}
		}
		st, _ := server.Stream("yard")
		if st.VideoTSBackwards != 0 {
			t.Errorf("the yard's timestamps went backwards %d times across its switches", st.VideoTSBackwards)
		}
	})
}

// cameraUnderTest is one relay of the test with the counters its frames are judged by.
type cameraUnderTest struct {
	name   string
	relay  *Relay
	server *sim.MediaServer
	cancel context.CancelFunc
	done   chan struct{}
	// sent and got at mark: the frames the relay took from the camera, those at the sink
	sent, got uint64
}

func startShapedCamera(ctx context.Context, t *testing.T, server *sim.MediaServer, name string, main, sub *sim.Camera,
	priority int, q *QualityGovernor) *cameraUnderTest {
	ctx, cancel := context.WithCancel(ctx)
	c := &cameraUnderTest{name: name, server: server, cancel: cancel, done: make(chan struct{})}
	c.relay = NewRelay(RelayConfig{
		Source: main.URL(), Substream: sub.URL(), Transport: "tcp", Audio: true,
		Publish: server.URL() + name, Quality: q, Priority: priority,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("camera", name),
	})
	go func() {
		defer close(c.done)
		c.relay.Run(ctx) //nolint:errcheck // a valid config: ends with ctx
	}()
	return c
}

func (c *cameraUnderTest) stop() {
	c.cancel()
	<-c.done
}

func (c *cameraUnderTest) frames() (got, sent uint64) {
	st, _ := c.server.Stream(c.name)
	return st.VideoFrames, c.relay.Stats().FramesIn
}

// mark starts a measurement.
func (c *cameraUnderTest) mark() { c.got, c.sent = c.frames() }

// delivered is the frames at the sink and those the camera sent since mark.
func (c *cameraUnderTest) delivered() (got, sent uint64) {
	g, s := c.frames()
	return g - c.got, s - c.sent
}

// watchSwitches counts each camera's quality changes until the returned function is called.
func watchSwitches(ctx context.Context, cams ...*cameraUnderTest) func() map[string]int {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	counts := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := map[string]string{}
		for _, c := range cams {
			last[c.name] = c.relay.Stats().Quality
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, c := range cams {
				if q := c.relay.Stats().Quality; q != last[c.name] {
					mu.Lock()
					counts[c.name]++
					mu.Unlock()
					last[c.name] = q
				}
			}
		}
	}()
	return func() map[string]int {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return counts
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	if strings.Contains(string(b), "uplink quality") {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

const (
	shapedDev  = "cgq0"
	serverAddr = "10.77.0.2"
)

// serverBehindShapedLink starts the publish sink in a network namespace of its own, reached
// over a veth pair whose end on this side is shaped to 3 Mbit/s. The namespace belongs to one
// locked OS thread, which binds the sink's listeners there and then ends with the test.
func serverBehindShapedLink(t *testing.T, ctx context.Context) *sim.MediaServer {
	tid := make(chan int)
	configured := make(chan struct{})
	made := make(chan *sim.MediaServer)
	failed := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread, in the namespace, dies with the goroutine
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			failed <- fmt.Errorf("unshare: %w", err)
			return
		}
		tid <- syscall.Gettid()
		<-configured
		m, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: serverAddr + ":0"})
		if err != nil {
			failed <- err
			return
		}
		made <- m
		<-ctx.Done()
	}()
	var id int
	select {
	case id = <-tid:
	case err := <-failed:
		t.Fatal(err)
	}
	ns := "/proc/" + strconv.Itoa(id) + "/ns/net"
	run(t, "ip", "link", "add", shapedDev, "type", "veth", "peer", "name", "cgq1")
	run(t, "ip", "link", "set", "cgq1", "netns", strconv.Itoa(id))
	run(t, "nsenter", "--net="+ns, "ip", "link", "set", "lo", "up")
	run(t, "nsenter", "--net="+ns, "ip", "addr", "add", serverAddr+"/24", "dev", "cgq1")
	run(t, "nsenter", "--net="+ns, "ip", "link", "set", "cgq1", "up")
	run(t, "ip", "addr", "add", "10.77.0.1/24", "dev", shapedDev)
	run(t, "ip", "link", "set", shapedDev, "up")
	shape(t, true)
	close(configured)
	var m *sim.MediaServer
	select {
	case m = <-made:
	case err := <-failed:
		t.Fatal(err)
	}
	go m.Run(ctx) //nolint:errcheck // ends with ctx
	return m
}

// shape puts the 3 Mbit/s token bucket on the link toward the server, or takes it off.
func shape(t *testing.T, on bool) {
	if on {
		run(t, "tc", "qdisc", "add", "dev", shapedDev, "root", "tbf", "rate", "3mbit", "burst", "32kbit",
			"latency", "400ms")
		return
	}
	run(t, "tc", "qdisc", "del", "dev", shapedDev, "root")
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// shapedClip is a 10 s, 25 fps H.264 clip of noise over a test pattern, which no encoder can
// squeeze below its bitrate, made once with ffmpeg and cached between runs.
func shapedClip(t *testing.T, ffmpeg, size, rate string) []byte {
	t.Helper()
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25:duration=10,noise=alls=30:allf=t",
		"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-b:v", rate, "-maxrate", rate, "-bufsize", rate,
		"-x264-params", "keyint=25:min-keyint=25:scenecut=0:repeat-headers=1:aud=1:nal-hrd=cbr",
		"-f", "h264"}
	sum := sha256.Sum256([]byte(strings.Join(args, " ")))
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "camgate-test", "clip-"+hex.EncodeToString(sum[:8])+".h264")
	if b, err := os.ReadFile(path); err == nil {
		return b
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command(ffmpeg, append(args, tmp)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
