package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// The issue's camera (issue 15, "Speed"): 20 motion episodes of 30 s a day.
const (
	issueEpisodesPerDay = 20
	issueEpisode        = 30 * time.Second
	day                 = 24 * time.Hour
	// scaledBitrate is the camera the per-day figures are also given for: 2 Mbit/s in all.
	scaledBitrate = 2_000_000
)

// The daemon's defaults (SPEC §2): the program leaves a key out of the config when its flag
// has this value, so that the measured run shows what the daemon really does by default.
const (
	specPreRoll  = 5 * time.Second
	specPostRoll = 10 * time.Second
	specHold     = 30 * time.Second
)

// simGOP is the embedded sim clip's GOP (internal/sim/clip.go: keyint=25 at 25 fps).
const simGOP = time.Second

type options struct {
	bin      string
	episodes int
	episode  time.Duration // motion_started to motion_stopped
	hold     time.Duration
	preRoll  time.Duration
	postRoll time.Duration
	gap      time.Duration // from a publish's end to the next alarm
	gop      int           // frames; 0: the embedded clip's
	bitrate  string        // of the -gop clip
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/camgate", "camgate binary")
	flag.IntVar(&o.episodes, "episodes", 2, "motion episodes to measure (each takes about a minute)")
	flag.DurationVar(&o.episode, "episode", issueEpisode, "length of each episode, motion_started to "+
		"motion_stopped (at least -hold: the mails go every hold/2 until episode-hold)")
	flag.DurationVar(&o.hold, "hold", specHold, "motion.hold (left to the daemon's default when SPEC's)")
	flag.DurationVar(&o.preRoll, "pre-roll", specPreRoll, "pre_roll of the motion camera (default: SPEC's)")
	flag.DurationVar(&o.postRoll, "post-roll", specPostRoll, "post_roll of the motion camera (default: SPEC's)")
	flag.DurationVar(&o.gap, "gap", 0, "from one publish's end to the next alarm (0: pre_roll + 2 GOPs + 1 s)")
	flag.IntVar(&o.gop, "gop", 0, "GOP in frames at 25 fps of a clip made with ffmpeg at -bitrate "+
		"(0: the sim camera's embedded clip, 1 s GOPs)")
	flag.StringVar(&o.bitrate, "bitrate", "2M", "video bitrate (ffmpeg -b:v) of the -gop clip")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (config, camgate's log)")
	flag.Parse()
	if o.episodes < 1 || o.episode < o.hold || o.hold <= 0 || o.gop < 0 {
		log.Fatal("want -episodes >= 1, -hold > 0, -episode >= -hold, -gop >= 0")
	}
	if o.gap == 0 {
		o.gap = o.preRoll + 2*o.gopDuration() + time.Second
	}
	// The stand-in servers' RTSP library reports each packet it could not queue for a slow reader
	// through the standard logger: count those lines per episode instead of printing them.
	drops := &dropCounter{out: os.Stderr}
	log.SetOutput(drops)
	if err := run(context.Background(), o, drops); err != nil {
		log.Fatal(err)
	}
}

func (o options) gopDuration() time.Duration {
	if o.gop == 0 {
		return simGOP
	}
	return time.Duration(o.gop) * time.Second / 25
}

// The streams' names: gateway_id "bench", the default stream_name template.
const (
	alwaysStream = "bench-always"
	motionStream = "bench-porch"
)

func run(ctx context.Context, o options, drops *dropCounter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir, err := os.MkdirTemp("", "camgate-bench-relaymode")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Printf("# temporary directory kept: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	var video []byte
	clipName := "the sim camera's embedded clip (640x360 25 fps H.264 baseline ~300 kbit/s, GOP 1 s; AAC 16 kHz mono)"
	if o.gop > 0 {
		if video, err = makeVideo(dir, o.gop, o.bitrate); err != nil {
			return err
		}
		clipName = fmt.Sprintf("a 10 s 1280x720 25 fps H.264 clip made by ffmpeg at %s, GOP %d frames (%s), "+
			"with the sim's AAC 16 kHz mono", o.bitrate, o.gop, o.gopDuration())
	}
	cam, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0", Video: video})
	if err != nil {
		return err
	}
	server, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	go func() { _ = cam.Run(ctx) }()    // all three end with ctx
	go func() { _ = server.Run(ctx) }() //
	go func() { _ = sink.Run(ctx) }()   //
	smtpAddr, err := freeLoopbackPort()
	if err != nil {
		return err
	}

	cfg := filepath.Join(dir, "camgate.yaml")
	if err := os.WriteFile(cfg, []byte(o.config(dir, cam.URL(), server.URL(), sink.URL(), smtpAddr)), 0o600); err != nil {
		return err
	}
	daemon, err := startDaemon(ctx, o.bin, cfg, filepath.Join(dir, "camgate.log"))
	if err != nil {
		return err
	}
	defer daemon.stop()

	fmt.Printf("date:     %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("clip:     %s\n", clipName)
	fmt.Printf("daemon:   %s run, cameras \"always\" (relay: always) and \"porch\" (relay: motion%s), "+
		"both reading one sim camera; alarm mails over SMTP to %s\n", o.bin, o.motionKeys(), smtpAddr)
	if err := waitFor(60*time.Second, "the always camera's video at the server", func() bool {
		st, _ := server.Stream(alwaysStream)
		return st.VideoFrames > 25
	}); err != nil {
		return daemon.explain(err)
	}
	if err := waitFor(30*time.Second, "camgate's SMTP server", func() bool { return dialable(smtpAddr) }); err != nil {
		return daemon.explain(err)
	}
	always0, t0 := stream(server, alwaysStream), time.Now()
	// Let the motion camera's pre-roll fill: pre_roll, a GOP to reach back to, a second of margin.
	time.Sleep(o.preRoll + o.gopDuration() + time.Second)

	m := &measurement{opt: o, drops: drops}
	m.outside = append(m.outside, stream(server, motionStream).Bytes) // before the first alarm
	for k := range o.episodes {
		ep, err := m.episode(server, sink, smtpAddr, k)
		if err != nil {
			return daemon.explain(err)
		}
		m.eps = append(m.eps, ep)
		ep.print(k, o)
		// What arrives between this publish's end and the next alarm is outside every episode.
		time.Sleep(o.gap)
		m.outside = append(m.outside, stream(server, motionStream).Bytes-ep.endBytes)
	}
	always1, t1 := stream(server, alwaysStream), time.Now()
	m.always = rate{
		seconds: t1.Sub(t0).Seconds(),
		bytes:   always1.Bytes - always0.Bytes,
		video:   always1.VideoBytes - always0.VideoBytes,
		audio:   always1.AudioBytes - always0.AudioBytes,
	}
	m.publishes = stream(server, motionStream).Publishes
	m.report()
	return nil
}

// config is camgate's config for the two cameras; pre_roll, post_roll and motion.hold are
// written only where a flag moved them off SPEC's defaults.
func (o options) config(dir, camURL, publish, sinkURL, smtpAddr string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "gateway_id: bench\ndata_dir: %s\nlog: {level: warn}\nweb: {listen: \"\"}\n",
		filepath.Join(dir, "data"))
	sb.WriteString("discovery: {onvif: false, mdns: false}\n")
	fmt.Fprintf(&sb, "smtp: {listen: %q}\n", smtpAddr)
	if o.hold != specHold {
		fmt.Fprintf(&sb, "motion: {hold: %s}\n", o.hold)
	}
	fmt.Fprintf(&sb, "flussonic:\n  publish: %q\n  events: [{url: %q}]\n", publish, sinkURL)
	sb.WriteString("cameras:\n")
	fmt.Fprintf(&sb, "  - {id: always, url: %q, audio: true, relay: always}\n", camURL)
	fmt.Fprintf(&sb, "  - {id: porch, url: %q, audio: true, relay: motion%s}\n", camURL, o.motionKeys())
	return sb.String()
}

// motionKeys are the motion camera's keys that differ from SPEC's defaults, as YAML.
func (o options) motionKeys() string {
	var s string
	if o.preRoll != specPreRoll {
		s += fmt.Sprintf(", pre_roll: %s", o.preRoll)
	}
	if o.postRoll != specPostRoll {
		s += fmt.Sprintf(", post_roll: %s", o.postRoll)
	}
	return s
}

// makeVideo encodes a 10 s Annex-B H.264 clip with an access unit delimiter before each frame
// and the parameter sets before each keyframe: what sim.CameraConfig.Video takes.
func makeVideo(dir string, gop int, bitrate string) ([]byte, error) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, fmt.Errorf("-gop needs ffmpeg: install the Debian package ffmpeg: %w", err)
	}
	out := filepath.Join(dir, "clip.h264")
	keyint := fmt.Sprintf("keyint=%d:min-keyint=%d:scenecut=0:repeat-headers=1:aud=1:nal-hrd=cbr", gop, gop)
	cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10,noise=alls=30:allf=t",
		"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-x264-params", keyint, "-f", "h264", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("make the -gop clip: %w: %s", err, b)
	}
	return os.ReadFile(out)
}

// stream is a path's counters, zero before anything was announced on it.
func stream(server *sim.MediaServer, name string) sim.StreamStats {
	st, _ := server.Stream(name)
	return st
}

// sendAlarm sends one Hikvision-style alarm mail to the camera and returns when its DATA ended.
func sendAlarm(addr, camera string) (time.Time, error) {
	msg := "From: camera@alarm.local\r\nTo: " + camera + "@camgate.local\r\nSubject: Motion Detection Alarm\r\n" +
		"\r\nAlarm Event: Motion Detection\r\n"
	if err := smtp.SendMail(addr, nil, "camera@alarm.local", []string{camera + "@camgate.local"},
		[]byte(msg)); err != nil {
		return time.Time{}, fmt.Errorf("alarm mail to %s: %w", camera, err)
	}
	return time.Now(), nil
}

func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close() // a probe: nothing was written
	return true
}

func waitFor(limit time.Duration, what string, cond func() bool) error {
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			return fmt.Errorf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// motionEvent is the part of a Watcher event (SPEC §5) the program reads.
type motionEvent struct {
	Event    string `json:"event"`
	Media    string `json:"media"`
	UTCMs    int64  `json:"utc_ms"`
	MotionID string `json:"motion_id"`
}

// episodeEvents are the motion camera's started and stopped events so far, in order.
func episodeEvents(sink *sim.EventSink) (started, stopped []time.Time) {
	for _, raw := range sink.Events() {
		var e motionEvent
		if json.Unmarshal(raw, &e) != nil || e.Media != motionStream {
			continue
		}
		switch {
		case strings.HasSuffix(e.Event, "motion_started"):
			started = append(started, time.UnixMilli(e.UTCMs))
		case strings.HasSuffix(e.Event, "motion_stopped"):
			stopped = append(stopped, time.UnixMilli(e.UTCMs))
		}
	}
	return started, stopped
}

// dropCounter passes log lines through, except the stand-in servers' "write queue is full"
// (a packet the sim camera dropped for a reader that did not keep up), which it counts.
// The first line for each reader is passed through: the sim camera names the reader, and
// whether one relay or both fell behind tells a stalled reader from a starved sim camera.
type dropCounter struct {
	out *os.File
	n   atomic.Uint64

	mu      sync.Mutex
	readers map[string]bool
}

func (d *dropCounter) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte("write queue is full")) {
		return d.out.Write(p)
	}
	d.n.Add(1)
	_, reader, _ := bytes.Cut(p, []byte("reader "))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.readers == nil {
		d.readers = map[string]bool{}
	}
	if r := string(reader); !d.readers[r] {
		d.readers[r] = true
		return d.out.Write(p)
	}
	return len(p), nil
}
