package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/rtsp"
)

func main() {
	counts := flag.String("n", "1,10,40", "comma-separated stream counts")
	dur := flag.Duration("dur", 20*time.Second, "measurement window per run")
	reps := flag.Int("reps", 1, "measure every way this many times per stream count, interleaved, and print the medians")
	child := flag.Bool("child", false, "internal: run the relays (src and dst base URLs, -n streams)")
	bin := flag.String("bin", "", "camgate binary: also measure `camgate run` relaying the same streams")
	profile := flag.String("profile", "",
		"write CPU and heap profiles of the rtsp.Relay child to PREFIX-N.cpu and PREFIX-N.heap")
	src := flag.String("src", "", "internal: camera server base URL")
	dst := flag.String("dst", "", "internal: upstream base URL")
	paceMins := flag.String("pace-min", "0", "comma-separated: relays before the rtsp.Relay child's "+
		"Pacer paces them (0: rtsp.DefaultPaceMinRelays; more than -n: never), one rtsp.Relay row per value; "+
		"`camgate run` always has the default")
	bitrate := flag.String("bitrate", "2M", "the clip's video bitrate (ffmpeg -b:v), e.g. 500k for a slow camera")
	noPeer := flag.Bool("no-ffmpeg", false, "skip the ffmpeg -c copy rows (and the ratios to them): for a memory "+
		"figure of camgate alone without 40 more ffmpeg processes on a shared machine")
	noLib := flag.Bool("no-lib", false, "skip the rtsp.Relay child rows")
	flag.Parse()
	// The stand-in servers' RTSP library logs every packet it cannot queue for a slow reader
	// through the standard logger; count those lines instead of flooding the report.
	complaints := &complaintCounter{out: os.Stderr}
	log.SetOutput(complaints)
	var pace []int
	for _, s := range strings.Split(*paceMins, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || m < 0 {
			log.Fatalf("bad -pace-min %q", s)
		}
		pace = append(pace, m)
	}
	if *child {
		n, _ := strconv.Atoi(*counts)
		runRelays(*src, *dst, n, *profile, *dur, pace[0])
		return
	}
	if *noLib {
		pace = nil
	}
	if err := run(*counts, *dur, *reps, *bin, *profile, *bitrate, pace, !*noPeer, complaints); err != nil {
		log.Fatal(err)
	}
}

// runRelays is the child: n relays until killed.
func runRelays(src, dst string, n int, profile string, dur time.Duration, paceMin int) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if profile != "" {
		go writeProfiles(fmt.Sprintf("%s-%d", profile, n), dur)
	}
	// One pacer for all relays, as camgate run has.
	pacer := rtsp.NewPacer(0, paceMin)
	var wg sync.WaitGroup
	for i := range n {
		r := rtsp.NewRelay(rtsp.RelayConfig{
			Source: fmt.Sprintf("%s/cam%d", src, i), Audio: true,
			Publish: fmt.Sprintf("%s/camgate%d", dst, i), Logger: logger, Pacer: pacer,
		})
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(context.Background()) }()
	}
	wg.Wait()
}

func run(counts string, dur time.Duration, reps int, bin, profile, bitrate string, paceMins []int, withPeer bool,
	complaints *complaintCounter) error {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		return fmt.Errorf("ffmpeg not found: install the Debian package ffmpeg")
	}
	dir, err := os.MkdirTemp("", "camgate-bench-relay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	clip := filepath.Join(dir, "clip.mp4")
	gen := exec.Command(ff, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
		"-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate,
		"-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-y", clip)
	gen.Stderr = os.Stderr
	if err := gen.Run(); err != nil {
		return fmt.Errorf("make clip: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cams, err := sim.NewMediaServer(sim.MediaServerConfig{})
	if err != nil {
		return err
	}
	up, err := sim.NewMediaServer(sim.MediaServerConfig{})
	if err != nil {
		return err
	}
	go func() { _ = cams.Run(ctx) }()
	go func() { _ = up.Run(ctx) }()
	self, err := os.Executable()
	if err != nil {
		return err
	}

	fmt.Printf("%-8s %-14s %12s %10s %9s %8s %10s %10s %9s\n",
		"streams", "relay", "cpu%/stream", "rss MiB", "frames%", "cam fps", "cpu/ffmpeg", "rss/ffmpeg", "srv drops")
	for _, s := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad stream count %q", s)
		}
		var procs []*exec.Cmd
		for i := range n {
			procs = append(procs, start(ff, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
				"-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", fmt.Sprintf("%s/cam%d", cams.URL(), i)))
		}
		time.Sleep(3 * time.Second)

		// Each repetition measures every way again, in the same order, so that the ratios of one
		// repetition come from the same minutes; the median of each way's ratios is printed last.
		ratios := map[string][]float64{}
		rssRatios := map[string][]float64{}
		var order []string
		for rep := 1; rep <= reps; rep++ {
			var rows []row
			if bin != "" {
				cfg, err := daemonConfig(dir, n, cams.URL(), up.URL())
				if err != nil {
					return err
				}
				daemon := []*exec.Cmd{start(bin, "run", "-c", cfg)}
				rows = append(rows, measure(n, "camgate run", daemon, cams, up, "run-cam", dur, complaints))
				stopAll(daemon)
			}

			for _, m := range paceMins {
				lib := []*exec.Cmd{start(self, "-child", "-n", strconv.Itoa(n), "-src", cams.URL(), "-dst", up.URL(),
					"-profile", profile, "-dur", dur.String(), "-pace-min", strconv.Itoa(m))}
				rows = append(rows, measure(n, libName(paceMins, m, n), lib, cams, up, "camgate", dur, complaints))
				stopAll(lib)
			}

			// Without the peer the ratios are to a row of ones: NaN-free, and the report says so.
			peer := row{cpuPct: 1, rssMiB: 1}
			if withPeer {
				var copies []*exec.Cmd
				for i := range n {
					copies = append(copies, start(ff, "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp",
						"-i", fmt.Sprintf("%s/cam%d", cams.URL(), i), "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp",
						fmt.Sprintf("%s/ffmpeg%d", up.URL(), i)))
				}
				peer = measure(n, "ffmpeg", copies, cams, up, "ffmpeg", dur, complaints)
				stopAll(copies)
				rows = append(rows, peer)
			} else {
				fmt.Println("# -no-ffmpeg: the cpu/ffmpeg and rss/ffmpeg columns are the figures themselves")
			}
			for _, r := range rows {
				fmt.Printf("%-8d %-14s %12.2f %10.1f %9.1f %8.1f %10.2f %10.3f %9d\n",
					r.n, r.name, r.cpuPct, r.rssMiB, r.framesPct, r.camFPS,
					r.cpuPct/peer.cpuPct, r.rssMiB/peer.rssMiB, r.srvDrops)
				if r.camFPS < 24 || r.srvDrops > 0 {
					fmt.Printf("# INVALID row above (%d %s): cameras at %.1f fps, %d complaints of dropped or lost "+
						"packets from the stand-in servers: the machine was starved, not only the relay\n",
						r.n, r.name, r.camFPS, r.srvDrops)
					continue
				}
				if _, ok := ratios[r.name]; !ok {
					order = append(order, r.name)
				}
				ratios[r.name] = append(ratios[r.name], r.cpuPct/peer.cpuPct)
				rssRatios[r.name] = append(rssRatios[r.name], r.rssMiB)
			}
		}
		if reps > 1 {
			for _, name := range order {
				fmt.Printf("# median of %d valid runs, %d streams, %s: cpu/ffmpeg %.2f, rss %.1f MiB\n",
					len(ratios[name]), n, name, median(ratios[name]), median(rssRatios[name]))
			}
		}
		stopAll(procs)
	}
	return nil
}

// libName names an rtsp.Relay row: by its pacing when more than one is measured.
func libName(paceMins []int, m, n int) string {
	switch {
	case len(paceMins) == 1:
		return "rtsp.Relay"
	case m > n:
		return "Relay unpaced"
	case m == 0:
		return fmt.Sprintf("Relay pace>=%d", rtsp.DefaultPaceMinRelays)
	}
	return fmt.Sprintf("Relay pace>=%d", m)
}

// daemonConfig writes a camgate config relaying n cameras from the camera server to the
// upstream as run-cam0..run-cam<n-1>, with nothing else running.
func daemonConfig(dir string, n int, src, dst string) (string, error) {
	data := filepath.Join(dir, fmt.Sprintf("data-%d", n))
	var sb strings.Builder
	fmt.Fprintf(&sb, "gateway_id: run\ndata_dir: %s\nlog: {level: warn}\nweb: {listen: \"\"}\n", data)
	sb.WriteString("discovery: {onvif: false, mdns: false}\n")
	fmt.Fprintf(&sb, "flussonic: {publish: %q}\ncameras:\n", dst+"/")
	for i := range n {
		fmt.Fprintf(&sb, "  - {id: cam%d, url: %q, audio: true, enabled: true}\n", i, fmt.Sprintf("%s/cam%d", src, i))
	}
	path := filepath.Join(dir, fmt.Sprintf("camgate-%d.yaml", n))
	return path, os.WriteFile(path, []byte(sb.String()), 0o600)
}

func start(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatalf("start %s: %v", name, err)
	}
	return cmd
}

func stopAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

// writeProfiles profiles the relays over the same window the parent measures, then writes the
// live heap, to show where the CPU and the RSS go.
func writeProfiles(prefix string, dur time.Duration) {
	time.Sleep(3 * time.Second)
	f, err := os.Create(prefix + ".cpu")
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Print(err)
		return
	}
	time.Sleep(dur)
	pprof.StopCPUProfile()
	h, err := os.Create(prefix + ".heap")
	if err != nil {
		log.Print(err)
		return
	}
	defer h.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(h); err != nil {
		log.Print(err)
	}
}

// row is one measured relay set.
type row struct {
	n         int
	name      string
	cpuPct    float64 // user+system CPU of the relay processes per stream, % of one core
	rssMiB    float64 // total RSS of the relay processes at the end of the window
	framesPct float64 // video frames that reached upstream / frames the cameras published
	camFPS    float64 // frames per second per camera: 25 when the cameras keep real time
	srvDrops  uint64  // lines of the stand-in servers complaining of dropped or lost packets in the window
}

// complaintCounter passes log lines through, except the stand-in servers' per-packet
// complaints ("write queue is full", "N RTP packets lost"), which it counts.
type complaintCounter struct {
	out io.Writer
	n   atomic.Uint64
}

func (c *complaintCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("write queue is full")) || bytes.Contains(p, []byte(" lost")) {
		c.n.Add(1)
		return len(p), nil
	}
	return c.out.Write(p)
}

// measure warms up, then measures the relay processes' CPU and RSS over dur and the frames that
// reached upstream against the frames the cameras published meanwhile.
func measure(
	n int, name string, procs []*exec.Cmd, cams, up *sim.MediaServer, prefix string, dur time.Duration,
	complaints *complaintCounter,
) row {
	time.Sleep(3 * time.Second)
	drops0 := complaints.n.Load()
	cpu0 := cpuNanos(procs)
	// Upstream lags the cameras by a moment: read it half a second after the cameras, at both
	// ends of the window.
	in0 := frames(cams, "cam", n)
	t0 := time.Now()
	time.Sleep(500 * time.Millisecond)
	out0 := frames(up, prefix, n)
	time.Sleep(dur - 500*time.Millisecond)
	cpu1, rss := cpuNanos(procs), rssBytes(procs)
	in1 := frames(cams, "cam", n)
	elapsed := time.Since(t0).Seconds()
	time.Sleep(500 * time.Millisecond)
	out1 := frames(up, prefix, n)
	r := row{n: n, name: name, rssMiB: float64(rss) / (1 << 20), srvDrops: complaints.n.Load() - drops0}
	r.cpuPct = float64(cpu1-cpu0) / 1e9 / elapsed * 100 / float64(n)
	r.camFPS = float64(in1-in0) / elapsed / float64(n)
	if in1 > in0 {
		r.framesPct = float64(out1-out0) / float64(in1-in0) * 100
	}
	return r
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func frames(m *sim.MediaServer, prefix string, n int) uint64 {
	var total uint64
	for i := range n {
		if s, ok := m.Stream(fmt.Sprintf("%s%d", prefix, i)); ok {
			total += s.VideoFrames
		}
	}
	return total
}

// cpuNanos sums the time the processes' threads spent on a CPU, from
// /proc/PID/task/TID/schedstat: nanoseconds, where /proc/PID/stat counts 10 ms ticks, which
// at one stream (about 0.5 % of a core, 10 ticks in a 20 s window) is a 10 % error by itself.
// Both Go and ffmpeg keep their threads for the process's life, so none is lost by exiting
// during the window.
func cpuNanos(procs []*exec.Cmd) uint64 {
	var total uint64
	for _, p := range procs {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", p.Process.Pid))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseUint(f[0], 10, 64)
				total += ns
			}
		}
	}
	return total
}

// rssBytes sums VmRSS of the processes.
func rssBytes(procs []*exec.Cmd) uint64 {
	var total uint64
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Process.Pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}
