package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// alarmSinks are an event_sink and an episodes receiver (the stand-ins of SPEC §5), running until
// the test ends, and the config lines that send camgate's motion to both.
func alarmSinks(t *testing.T) (*sim.EventSink, *sim.EpisodeSink, []string) {
	t.Helper()
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(t.Context(), t, "sink", sink.Run)
	central, err := sim.NewEpisodeSink(sim.EpisodeSinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(t.Context(), t, "central", central.Run)
	return sink, central, []string{sink.URL(), fmt.Sprintf("{url: '%s', format: episodes}", central.URL())}
}

// alarmMailer sends a camera's alarm mail with swaks, a JPEG of about jpegKiB attached, and
// returns swaks' transcript: a full SMTP session, as a camera has it.
func alarmMailer(t *testing.T, smtpAddr string, jpegKiB int) func(rcpt string) (string, error) {
	t.Helper()
	swaks := needTool(t, "swaks", "swaks")
	jpeg := filepath.Join(t.TempDir(), "snap.jpg")
	// Noise does not compress: the picture is as big as asked.
	if err := os.WriteFile(jpeg, noiseJPEG(t, jpegKiB), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(smtpAddr, ":")
	return func(rcpt string) (string, error) {
		out, err := exec.Command(swaks, "--server", host, "--port", port, "--to", rcpt, "--from", "camera@lan",
			"--header", "Subject: Motion Detection Alarm", "--body", "Alarm event: Motion Detection",
			"--attach-type", "image/jpeg", "--attach-name", "snap.jpg", "--attach", "@"+jpeg).CombinedOutput()
		return string(out), err
	}
}

// noiseJPEG is a JPEG of random pixels, ffmpeg-made, of at least kib KiB.
func noiseJPEG(t *testing.T, kib int) []byte {
	t.Helper()
	ff := needTool(t, "ffmpeg", "ffmpeg")
	for side := 160; ; side *= 2 {
		out, err := exec.Command(ff, "-v", "error", "-f", "lavfi", "-i",
			fmt.Sprintf("nullsrc=size=%dx%d,geq=random(1)*255:128:128", side, side),
			"-frames:v", "1", "-q:v", "2", "-f", "mjpeg", "-").Output()
		if err != nil {
			t.Fatalf("making a JPEG: %v", err)
		}
		if len(out) >= kib<<10 || side > 4000 {
			return out
		}
	}
}

// dataReply is the SMTP reply code ("250", "451", ...) to the end of the mail's data in a swaks
// transcript: the answer that says whether the server took the mail. swaks marks what it sent
// "->" and what it got "<-" (or "<**" for an error reply).
func dataReply(transcript string) string {
	afterData := false
	for _, line := range strings.Split(transcript, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "->") {
			afterData = strings.TrimSpace(strings.TrimPrefix(line, "->")) == "."
			continue
		}
		for _, mark := range []string{"<**", "<-"} {
			if rest, ok := strings.CutPrefix(line, mark); ok && afterData {
				if rest = strings.TrimSpace(rest); len(rest) >= 3 {
					return rest[:3]
				}
			}
		}
	}
	return ""
}

// sinkEpisode is what the event sink got for one motion_id: its started and stopped events.
type sinkEpisode struct {
	started, stopped map[string]any
	startedN         int // distinct event_ids, a redelivery (at least once) counted once
	stoppedN         int
}

// oneSinkEpisode fails the test unless the sink got exactly one episode, with one started and
// one stopped event, and returns it.
func oneSinkEpisode(t *testing.T, evs []json.RawMessage) *sinkEpisode {
	t.Helper()
	eps := sinkEpisodes(t, evs)
	if len(eps) != 1 {
		t.Fatalf("the sink got %d motion ids, want exactly one episode: %s", len(eps), evs)
	}
	for id, ep := range eps {
		if ep.startedN != 1 || ep.stoppedN != 1 {
			t.Errorf("episode %s: %d started and %d stopped events, want one of each", id, ep.startedN, ep.stoppedN)
		}
		return ep
	}
	return nil
}

func sinkEpisodes(t *testing.T, evs []json.RawMessage) map[string]*sinkEpisode {
	t.Helper()
	out := map[string]*sinkEpisode{}
	seen := map[float64]bool{}
	for _, raw := range evs {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("the sink kept an event that is not a JSON object (%v): %s", err, raw)
		}
		id, _ := m["motion_id"].(string)
		ep := out[id]
		if ep == nil {
			ep = &sinkEpisode{}
			out[id] = ep
		}
		eid, _ := m["event_id"].(float64)
		dup := seen[eid]
		seen[eid] = true
		switch m["event"] {
		case "stream_motion_started":
			ep.started = m
			if !dup {
				ep.startedN++
			}
		case "stream_motion_stopped":
			ep.stopped = m
			if !dup {
				ep.stoppedN++
			}
		}
	}
	return out
}

// Acceptance 4 of issue 12: camgate is SIGKILLed while an episode is open, and its hold runs out
// while camgate is down. Started again on the same data dir, it ends the episode as motion's
// Restore says: stream_motion_stopped at the sink and the closing PUT at the episodes receiver,
// both with the episode's true end, last alarm + hold (not the restart).
func TestRunEndsAnOpenEpisodeAfterSIGKILL(t *testing.T) {
	const hold = 8 * time.Second
	b := startBroker(t, freePort(t), "")
	sink, central, sinks := alarmSinks(t)
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := uplinkConfig("gwk", b.url(), smtpAddr, sinks, fmt.Sprintf("motion: {hold: %v}\n", hold),
		disabledCamera("porch"))
	daemon, path := runCamgate(t, cfg)
	waitFor(t, 10*time.Second, "the mail server", func() bool { _, err := netDialAddr(smtpAddr); return err == nil })
	mail := alarmMailer(t, smtpAddr, 4)

	alarmAt := time.Now()
	if out, err := mail("porch@gw"); err != nil || dataReply(out) != "250" {
		t.Fatalf("alarm mail: %v (last reply %q):\n%s", err, dataReply(out), out)
	}
	waitFor(t, hold/2, "started at the sink and the episode opened at the receiver", func() bool {
		return countEvents(sink.Events(), "stream_motion_started") >= 1 && len(central.Puts()) >= 1
	})
	daemon.kill()
	if since := time.Since(alarmAt); since >= hold {
		t.Fatalf("killed %v after the alarm, not before its hold (%v) ran out", since, hold)
	}
	if n := countEvents(sink.Events(), "stream_motion_stopped"); n != 0 {
		t.Fatalf("the sink got %d stopped events before the kill", n)
	}
	// The hold runs out while camgate is down.
	time.Sleep(time.Until(alarmAt.Add(hold + time.Second)))
	start(t, camgateBin, "run", "-c", path)

	waitFor(t, 20*time.Second, "stopped at the sink and the closing PUT", func() bool {
		puts := central.Puts()
		return countEvents(sink.Events(), "stream_motion_stopped") >= 1 &&
			len(puts) >= 2 && puts[len(puts)-1].ClosedAt != nil
	})
	ep := oneSinkEpisode(t, sink.Events())
	if d, _ := ep.stopped["duration"].(float64); d != hold.Seconds() {
		t.Errorf("stopped duration %v s, want the hold (%v s): its end is last alarm + hold", d, hold.Seconds())
	}
	puts := central.Puts()
	last := puts[len(puts)-1]
	if last.EpisodeID != puts[0].EpisodeID {
		t.Errorf("closing PUT is for episode %d, the opening one for %d", last.EpisodeID, puts[0].EpisodeID)
	}
	if got := *last.ClosedAt - last.OpenedAt; got < hold.Milliseconds()-1000 || got > hold.Milliseconds()+1000 {
		t.Errorf("closed_at - opened_at = %d ms, want the hold (%d ms)", got, hold.Milliseconds())
	}
}

// smallTmpfs mounts a tmpfs of size bytes on a fresh directory until the test ends. Mounting needs
// root (CAP_SYS_ADMIN): without it the test fails under CI=true and is skipped elsewhere.
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).
		CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs (needs root): %v: %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes path until its filesystem has no byte left, and returns how much it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			break
		}
	}
	// The last bytes: a page-sized write can fail where a one-byte write still fits.
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
		n++
	}
	return n
}

// replyLine is the transcript's line with the reply code, for the log.
func replyLine(transcript, code string) string {
	for _, line := range strings.Split(transcript, "\n") {
		if strings.Contains(line, "<") && strings.Contains(line, " "+code+" ") {
			return strings.TrimSpace(line)
		}
	}
	return code
}

// Acceptance 3 of issue 12: the data dir is on a full filesystem. An alarm mail gets a 4xx (the
// camera tries again later), never 250, and camgate serves on: SMTP answers the next session.
// Once there is room again the camera's retry is taken (250) and makes exactly one episode,
// started and stopped, at the sink: the refused attempt left nothing half-done behind.
func TestRunRefusesAlarmMailWhileTheDataDirIsFull(t *testing.T) {
	const hold = 2 * time.Second
	data := smallTmpfs(t, 8<<20)
	b := startBroker(t, freePort(t), "")
	sink, _, sinks := alarmSinks(t)
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := uplinkConfig("gwf", b.url(), smtpAddr, sinks[:1], fmt.Sprintf("motion: {hold: %v}\n", hold),
		disabledCamera("porch"))
	cfgPath := filepath.Join(t.TempDir(), "camgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(cfg, "DATA_DIR", data)), 0o600); err != nil {
		t.Fatal(err)
	}
	daemon := start(t, camgateBin, "run", "-c", cfgPath)
	waitFor(t, 10*time.Second, "the mail server", func() bool { _, err := netDialAddr(smtpAddr); return err == nil })
	mail := alarmMailer(t, smtpAddr, 256)

	filler := filepath.Join(data, "filler")
	t.Logf("filled the data dir with %d bytes", fill(t, filler))
	for attempt := range 2 {
		out, _ := mail("porch@gw")
		code := dataReply(out)
		if !strings.HasPrefix(code, "4") {
			t.Fatalf("attempt %d on a full disk: the mail got %q, want a 4xx (never 250):\n%s", attempt, code, out)
		}
		t.Logf("attempt %d on a full disk: %s", attempt, replyLine(out, code))
		select {
		case <-daemon.done:
			t.Fatalf("camgate ended on a full disk: %v", daemon.err)
		default:
		}
	}
	if n := len(sink.Events()); n != 0 {
		t.Fatalf("the sink got %d events for mails that were refused: %s", n, sink.Events())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if out, err := mail("porch@gw"); err != nil || dataReply(out) != "250" {
		t.Fatalf("the retry after space was freed got %q (%v), want 250:\n%s", dataReply(out), err, out)
	}
	waitFor(t, 15*time.Second, "the retry's episode stopped at the sink", func() bool {
		return countEvents(sink.Events(), "stream_motion_stopped") >= 1
	})
	time.Sleep(hold) // room for an extra episode to show up, if the refused mails left one
	oneSinkEpisode(t, sink.Events())
}
