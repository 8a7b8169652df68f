package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// camgateBin is the daemon under test, built once by TestMain exactly as users run it.
var camgateBin string

func TestMain(m *testing.M) {
	// A test re-run inside a network namespace reuses its parent's build.
	if bin := os.Getenv("CAMGATE_E2E_BIN"); bin != "" {
		camgateBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "camgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	camgateBin = filepath.Join(dir, "camgate")
	os.Setenv("CAMGATE_E2E_BIN", camgateBin)
	// Built as `make build` builds what ships (static, no HTTP/2, stripped): memory and size
	// measured here are those of the gateway's binary, not of a cgo build linking libc.
	build := exec.Command("go",
		"build", "-trimpath", "-tags", "nethttpomithttp2", "-ldflags", "-s -w", "-o", camgateBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building camgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool finds a real peer program; in CI its absence is a failure, not a skip.
func needTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	return testtool.Need(t, debianPackage, name)
}

// proc is a child process whose output is kept for the failure message.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(name), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s %s (last 3000 bytes):\n%s", p.name, strings.Join(args, " "), tail(p.out.String(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill() // it may have just exited: done says so either way
	<-p.done
}

// stop asks politely (SIGTERM for camgate, 'q'-equivalent SIGINT for ffmpeg) and waits.
func (p *proc) stop(t *testing.T, sig syscall.Signal, within time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig) // it may have exited already: done says so either way
	select {
	case <-p.done:
	case <-time.After(within):
		t.Errorf("%s did not stop within %s of %v", p.name, within, sig)
		p.kill()
	}
}

func (p *proc) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		p.kill()
		return fmt.Errorf("%s still running after %s", p.name, within)
	}
}

// waitFor polls cond until it holds; the machines are shared, so deadlines are generous and
// only the measured quantities (not these waits) carry the acceptance bounds.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mediaServer runs a sim.MediaServer until the test ends (or until the returned stop is called).
func mediaServer(t *testing.T, addr string) (*sim.MediaServer, func()) {
	t.Helper()
	var m *sim.MediaServer
	var err error
	for i := 0; i < 50; i++ { // a restarted server may wait for its old port
		if m, err = sim.NewMediaServer(sim.MediaServerConfig{Addr: addr}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("media server on %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("media server on %s: %v", addr, err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return m, stop
}

// ffmpegCamera publishes a test pattern into url like an IP camera would: real time, a keyframe
// every gop frames, parameter sets only in the SDP (so the relay must put them in band).
// With several URLs it publishes the same encoding to each (ffmpeg's tee muxer).
func ffmpegCamera(t *testing.T, url, vcodec, acodec string, seconds int, more ...string) *proc {
	t.Helper()
	ff := needTool(t, "ffmpeg", "ffmpeg")
	args := []string{"-hide_banner", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"}
	if seconds > 0 {
		args = append(args, "-t", strconv.Itoa(seconds))
	}
	switch vcodec {
	case "h264":
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p")
	case "h265":
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-x265-params", "log-level=error")
	}
	args = append(args, "-g", "10", "-keyint_min", "10", "-b:v", "600k")
	switch acodec {
	case "aac":
		args = append(args, "-c:a", "aac", "-ar", "16000", "-b:a", "32k")
	case "pcma":
		args = append(args, "-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1")
	case "opus":
		args = append(args, "-c:a", "libopus", "-ar", "48000", "-ac", "1", "-b:a", "24k")
	}
	if len(more) == 0 {
		args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", url)
		return start(t, ff, args...)
	}
	outs := []string{"[f=rtsp:rtsp_transport=tcp]" + url}
	for _, u := range more {
		outs = append(outs, "[f=rtsp:rtsp_transport=tcp]"+u)
	}
	args = append(args, "-map", "0:v", "-map", "1:a", "-f", "tee", strings.Join(outs, "|"))
	return start(t, ff, args...)
}

// ffmpegReceiver is an independent RTSP server (ffmpeg's listen mode) that takes one publish and
// writes it, untouched, to out.
func ffmpegReceiver(t *testing.T, url, out string) *proc {
	t.Helper()
	ff := needTool(t, "ffmpeg", "ffmpeg")
	return start(t, ff, "-hide_banner", "-loglevel", "warning", "-y", "-rtsp_flags", "listen",
		"-i", url, "-c", "copy", out)
}

type probedStream struct {
	CodecType    string `json:"codec_type"`
	CodecName    string `json:"codec_name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	NbReadFrames string `json:"nb_read_frames"`
}

// probeFile reads a recording with ffprobe: its streams with counted frames, and whether the
// first video packet is a keyframe.
func probeFile(t *testing.T, path string) (streams []probedStream, firstVideoKey bool) {
	t.Helper()
	fp := needTool(t, "ffprobe", "ffmpeg")
	out, err := exec.Command(fp, "-v", "error", "-count_frames", "-show_entries",
		"stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var r struct{ Streams []probedStream }
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	pk, err := exec.Command(fp, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags",
		"-read_intervals", "%+#1", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets %s: %v", path, err)
	}
	return r.Streams, strings.HasPrefix(strings.TrimSpace(string(pk)), "K")
}

func frames(s probedStream) uint64 {
	n, _ := strconv.ParseUint(s.NbReadFrames, 10, 64)
	return n
}

// runCamgate writes cfg to a file and starts `camgate run -c file`.
func runCamgate(t *testing.T, cfg string) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "camgate.yaml")
	cfg = strings.ReplaceAll(cfg, "DATA_DIR", dir)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, camgateBin, "run", "-c", path), path
}

func netDialAddr(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return c, err
}
