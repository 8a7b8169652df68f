package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// daemon is a running `camgate run`, its output in a file.
type daemon struct {
	cmd *exec.Cmd
	log string
}

func startDaemon(ctx context.Context, bin, cfg, logPath string) (*daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.CommandContext(ctx, bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return &daemon{cmd: cmd, log: logPath}, nil
}

// stop interrupts the daemon and waits for it, killing it after 10 s: how it exits is not
// what this program measures.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(os.Interrupt) // it may have exited already; Wait says
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
}

// explain adds the end of camgate's log to an error.
func (d *daemon) explain(err error) error {
	b, _ := os.ReadFile(d.log) // best effort: the log only explains err
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Errorf("%w\ncamgate's log (end):\n%s", err, bytes.TrimSpace(b))
}

// episode is one measured motion episode of the motion camera.
type episode struct {
	mailed           []time.Time // the alarm mails' DATA ends
	started, stopped time.Time   // the motion events' utc_ms
	first, last      time.Time   // the first and last frame's time by the sender reports
	frames           int
	drops            uint64 // packets the sim camera dropped for a slow reader during the episode
	firstKey         bool   // the publish began with a keyframe and its parameter sets
	keyframes        int
	bytes            uint64 // payload bytes the server got in the episode's publish
	video, audio     uint64
	endBytes         uint64 // the stream's byte counter when the publish had ended
}

// rate is the always camera over the run.
type rate struct {
	seconds             float64
	bytes, video, audio uint64
}

func (r rate) perSecond() float64 { return float64(r.bytes) / r.seconds }

// measurement is everything one run measured.
type measurement struct {
	opt       options
	drops     *dropCounter
	eps       []episode
	outside   []uint64 // bytes outside the episodes: before the first alarm, then after each publish
	always    rate
	publishes int
}

// episode sends the k-th episode's alarm mails (one every hold/2 until episode - hold, so that
// the episode lasts -episode), waits for its motion_stopped and for the publish to end, and
// reads what the server got.
func (m *measurement) episode(server *sim.MediaServer, sink *sim.EventSink, smtpAddr string, k int) (episode, error) {
	o := m.opt
	var ep episode
	before := stream(server, motionStream)
	if before.Publishing {
		return ep, fmt.Errorf("episode %d: the motion camera is publishing before its alarm", k+1)
	}
	drops0 := m.drops.n.Load()
	first := time.Now()
	for at := first; !at.After(first.Add(o.episode - o.hold)); at = at.Add(o.hold / 2) {
		time.Sleep(time.Until(at))
		t, err := sendAlarm(smtpAddr, "porch")
		if err != nil {
			return ep, err
		}
		ep.mailed = append(ep.mailed, t)
	}
	if err := waitFor(o.episode+o.hold+30*time.Second, fmt.Sprintf("episode %d's motion_stopped", k+1), func() bool {
		_, stopped := episodeEvents(sink)
		return len(stopped) > k
	}); err != nil {
		return ep, err
	}
	if err := waitFor(o.postRoll+20*time.Second, fmt.Sprintf("episode %d's publish over", k+1), func() bool {
		return !stream(server, motionStream).Publishing
	}); err != nil {
		return ep, err
	}
	started, stopped := episodeEvents(sink)
	if len(started) != k+1 {
		return ep, fmt.Errorf("episode %d: %d motion_started events, want one per episode", k+1, len(started))
	}
	ep.started, ep.stopped = started[k], stopped[k]
	after := stream(server, motionStream)
	ep.bytes, ep.endBytes = after.Bytes-before.Bytes, after.Bytes
	ep.video, ep.audio = after.VideoBytes-before.VideoBytes, after.AudioBytes-before.AudioBytes
	frames := server.VideoFrames(motionStream) // of the latest publish: this episode's
	ep.frames = len(frames)
	if len(frames) == 0 || frames[0].NTP.IsZero() || frames[len(frames)-1].NTP.IsZero() {
		return ep, fmt.Errorf("episode %d: %d frames, not all placed in time by sender reports", k+1, len(frames))
	}
	ep.first, ep.last = frames[0].NTP, frames[len(frames)-1].NTP
	ep.firstKey = frames[0].Key && after.FirstVideoFrameKey
	for _, f := range frames {
		if f.Key {
			ep.keyframes++
		}
	}
	ep.drops = m.drops.n.Load() - drops0
	return ep, nil
}

func (ep episode) print(k int, o options) {
	fmt.Printf("episode %d: %d alarm mail(s); motion %s .. %s (%.1f s); frames from %.2f s before the start "+
		"(pre_roll %s + up to a GOP of %s) to %.2f s after the stop (post_roll %s); span %.1f s, %d frames "+
		"(%d at 25 fps), %d keyframes, the first frame a keyframe with its parameter sets: %v; %d B (video %d, "+
		"audio %d); %d packets dropped by the sim camera for a slow reader\n",
		k+1, len(ep.mailed), ep.started.Format("15:04:05.000"), ep.stopped.Format("15:04:05.000"),
		ep.stopped.Sub(ep.started).Seconds(), ep.started.Sub(ep.first).Seconds(), o.preRoll, o.gopDuration(),
		ep.last.Sub(ep.stopped).Seconds(), o.postRoll, ep.last.Sub(ep.first).Seconds(), ep.frames,
		int(ep.last.Sub(ep.first).Seconds()*25+1.5), ep.keyframes, ep.firstKey, ep.bytes, ep.video, ep.audio, ep.drops)
}

// report prints the run's figures and the per-day extrapolation.
func (m *measurement) report() {
	o, a := m.opt, m.always
	bps := a.perSecond()
	fmt.Printf("\nrelay: always   %d B in %.1f s (video %d, audio %d): %.0f B/s, %.1f kbit/s of RTP payload; "+
		"%d packets dropped by the sim camera for a slow reader in the whole run\n",
		a.bytes, a.seconds, a.video, a.audio, bps, bps*8/1000, m.drops.n.Load())
	var sum uint64
	var span, length float64
	for _, ep := range m.eps {
		sum += ep.bytes
		span += ep.last.Sub(ep.first).Seconds()
		length += ep.stopped.Sub(ep.started).Seconds()
	}
	n := float64(len(m.eps))
	mean := float64(sum) / n
	fmt.Printf("relay: motion   %d episodes of %.1f s (mean, motion_started to motion_stopped): %.0f B per episode "+
		"(mean), published span %.1f s (mean), %.1f s at the always camera's rate; one session per episode: %d "+
		"publishes for %d episodes\n", len(m.eps), length/n, mean, span/n, mean/bps, m.publishes, len(m.eps))
	fmt.Printf("outside episodes: %v B (before the first alarm, then after each publish until the next "+
		"alarm or the end)\n", m.outside)

	perDay := float64(issueEpisodesPerDay)
	alwaysDay := bps * day.Seconds()
	motionDay := perDay * mean
	scale := scaledBitrate / 8 / bps
	fmt.Printf("\nper day, the issue's camera: %d episodes of %s (EXTRAPOLATED: %d x the measured mean bytes per "+
		"episode; the measured episodes lasted %.1f s)\n", issueEpisodesPerDay, issueEpisode, issueEpisodesPerDay,
		length/n)
	fmt.Printf("%-28s %14s %14s %14s\n", "camera", "always /day", "motion /day", "motion/always")
	fmt.Printf("%-28s %14s %14s %13.2f%%\n", fmt.Sprintf("this clip, %.1f kbit/s", bps*8/1000),
		decimal(alwaysDay), decimal(motionDay), motionDay/alwaysDay*100)
	fmt.Printf("%-28s %14s %14s %13.2f%%\n", "scaled to 2 Mbit/s", decimal(alwaysDay*scale),
		decimal(motionDay*scale), motionDay/alwaysDay*100)
	fmt.Printf("\nformula: motion/always = %d x (pre_roll + g + episode + post_roll) / 86400 s, g in [0, GOP) "+
		"the keyframe at or before pre_roll reaches back; with pre_roll %s, episode %s, post_roll %s, GOP %s: "+
		"%.2f%% to %.2f%%; measured %.2f%% (%.1f s per episode at the always rate). The ratio does not depend on "+
		"the bitrate; RTSP/TCP framing (~1%%) and each session's ANNOUNCE/SETUP/RECORD (< 2 KB) are not "+
		"counted.\n", issueEpisodesPerDay, o.preRoll, issueEpisode, o.postRoll, o.gopDuration(),
		perDay*(o.preRoll+issueEpisode+o.postRoll).Seconds()/day.Seconds()*100,
		perDay*(o.preRoll+o.gopDuration()+issueEpisode+o.postRoll).Seconds()/day.Seconds()*100,
		motionDay/alwaysDay*100, mean/bps)
}

// decimal writes a byte count in decimal units, as uplink tariffs count them.
func decimal(b float64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.2f GB", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}
