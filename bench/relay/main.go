// Command relay measures camgate's relay against ffmpeg -c copy on loopback: for each stream
// count it publishes a ~2 Mbit/s 720p25 H.264+AAC clip N times into a stand-in camera server,
// relays every stream to a stand-in Flussonic once with camgate's rtsp.Relay (in a child
// process, so its CPU and RSS are its own) and once with one `ffmpeg -c copy` per stream, and
// prints CPU% per stream, RSS and the share of frames that arrived upstream, for both.
//
//	go run ./bench/relay -n 1,10,40 -dur 20s
//
// Nothing leaves loopback. Needs ffmpeg.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/rtsp"
)

func main() {
	counts := flag.String("n", "1,10,40", "comma-separated stream counts")
	dur := flag.Duration("dur", 20*time.Second, "measurement window per run")
	child := flag.Bool("child", false, "internal: run the relays (src and dst base URLs, -n streams)")
	src := flag.String("src", "", "internal: camera server base URL")
	dst := flag.String("dst", "", "internal: upstream base URL")
	flag.Parse()
	if *child {
		n, _ := strconv.Atoi(*counts)
		runRelays(*src, *dst, n)
		return
	}
	if err := run(*counts, *dur); err != nil {
		log.Fatal(err)
	}
}

// runRelays is the child: n relays until killed.
func runRelays(src, dst string, n int) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var wg sync.WaitGroup
	for i := range n {
		r := rtsp.NewRelay(rtsp.RelayConfig{
			Source: fmt.Sprintf("%s/cam%d", src, i), Audio: true,
			Publish: fmt.Sprintf("%s/camgate%d", dst, i), Logger: logger,
		})
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(context.Background()) }()
	}
	wg.Wait()
}

func run(counts string, dur time.Duration) error {
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
		"-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "2M",
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

	fmt.Printf("%-8s %-8s %12s %10s %10s\n", "streams", "relay", "cpu%/stream", "rss MiB", "frames%")
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

		camgate := []*exec.Cmd{start(self, "-child", "-n", strconv.Itoa(n), "-src", cams.URL(), "-dst", up.URL())}
		report(n, "camgate", camgate, cams, up, "camgate", dur)
		stopAll(camgate)

		var copies []*exec.Cmd
		for i := range n {
			copies = append(copies, start(ff, "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp",
				"-i", fmt.Sprintf("%s/cam%d", cams.URL(), i), "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp",
				fmt.Sprintf("%s/ffmpeg%d", up.URL(), i)))
		}
		report(n, "ffmpeg", copies, cams, up, "ffmpeg", dur)
		stopAll(copies)
		stopAll(procs)
	}
	return nil
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

// report warms up, then measures the relay processes' CPU and RSS over dur and the frames that
// reached upstream against the frames the cameras published meanwhile.
func report(n int, name string, procs []*exec.Cmd, cams, up *sim.MediaServer, prefix string, dur time.Duration) {
	time.Sleep(3 * time.Second)
	cpu0 := cpuTicks(procs)
	// Upstream lags the cameras by a moment: read it half a second after the cameras, at both
	// ends of the window.
	in0 := frames(cams, "cam", n)
	t0 := time.Now()
	time.Sleep(500 * time.Millisecond)
	out0 := frames(up, prefix, n)
	time.Sleep(dur - 500*time.Millisecond)
	cpu1, rss := cpuTicks(procs), rssBytes(procs)
	in1 := frames(cams, "cam", n)
	time.Sleep(500 * time.Millisecond)
	out1 := frames(up, prefix, n)
	elapsed := time.Since(t0).Seconds()
	const ticksPerSecond = 100 // USER_HZ on Linux
	cpuPct := float64(cpu1-cpu0) / ticksPerSecond / elapsed * 100 / float64(n)
	share := 0.0
	if in1 > in0 {
		share = float64(out1-out0) / float64(in1-in0) * 100
	}
	fmt.Printf("%-8d %-8s %12.2f %10.1f %10.1f\n", n, name, cpuPct, float64(rss)/(1<<20), share)
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

// cpuTicks sums user+system clock ticks of the processes from /proc/PID/stat.
func cpuTicks(procs []*exec.Cmd) uint64 {
	var total uint64
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) > 12 {
			u, _ := strconv.ParseUint(fields[11], 10, 64)
			k, _ := strconv.ParseUint(fields[12], 10, 64)
			total += u + k
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
