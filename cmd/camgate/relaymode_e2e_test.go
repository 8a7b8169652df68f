package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
)

// relayModeConfig is relayConfig with MQTT, the alarm mail server (smtpAddr, "" for none) and
// extra top-level keys.
func relayModeConfig(gateway, publish, mqttURL, smtpAddr, extra string, cameras ...string) string {
	return strings.Replace(relayConfig(gateway, publish, cameras...), `smtp: {listen: ""}`,
		fmt.Sprintf("smtp: {listen: '%s'}\nmqtt: {url: '%s', telemetry_interval: 1s}\n%s", smtpAddr, mqttURL, extra), 1)
}

// commandReply is a P/cmd/<name>/reply as SPEC §6 shapes it, with start_relay's fields.
type commandReply struct {
	ID       string `json:"id"`
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	CameraID string `json:"camera_id"`
	Relay    string `json:"relay"`
	Until    string `json:"until"`
}

// replyTo waits for the reply to the command with this id.
func replyTo(t *testing.T, sub *subscriber, topic, id string) commandReply {
	t.Helper()
	var got commandReply
	waitFor(t, 10*time.Second, "the reply to "+id, func() bool {
		for _, m := range sub.all() {
			var r commandReply
			if m.Topic == topic && json.Unmarshal(m.Payload, &r) == nil && r.ID == id {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// relayingState is the latest "relaying" of a camera's retained state on MQTT.
func relayingState(sub *subscriber, prefix, id string) (relaying, online, seen bool) {
	m, ok := sub.last(prefix + "/cameras/" + id + "/state")
	if !ok {
		return false, false, false
	}
	var st struct{ Relaying, Online bool }
	if json.Unmarshal(m.Payload, &st) != nil {
		return false, false, false
	}
	return st.Relaying, st.Online, true
}

// Acceptance 4 of issue 15: cameras with `relay: on_demand` relayed by `camgate run`, commanded
// over a real mosquitto. Nothing reaches the server before start_relay; then video, beginning
// with a keyframe and its parameter sets, arrives within 1 s of the command, and the stream
// ends when the window does: at 20 s for "door", early by stop_relay for "yard", and at the
// end of the extended window for "gate", whose second start_relay moved the end without a new
// session. Three cameras of one daemon run the cases side by side.
func TestRunRelaysOnDemandByMQTTCommand(t *testing.T) {
	b := startBroker(t, freePort(t), "")
	const p = "camgate/gwd"
	sub := subscribe(t, b.port, "", p+"/#")
	camURL := clipCamera(t)
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	var cams []string
	for _, id := range []string{"door", "yard", "gate"} {
		cams = append(cams, fmt.Sprintf("  - {id: %s, url: '%s', relay: on_demand}\n", id, camURL))
	}
	runCamgate(t, relayModeConfig("gwd", flussonic.URL(), b.url(), "", "", cams...))
	waitFor(t, 20*time.Second, "the cameras online, not relaying", func() bool {
		for _, id := range []string{"door", "yard", "gate"} {
			if relaying, online, _ := relayingState(sub, p, id); relaying || !online {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // a GOP of the 1 s GOP clip is cached long since; let any leak show
	for _, id := range []string{"door", "yard", "gate"} {
		if st, ok := flussonic.Stream("gwd-" + id); ok {
			t.Fatalf("%s: published before any start_relay: %+v", id, st)
		}
	}

	// Bad commands are refused with a reason and open nothing.
	publish(t, b.port, p+"/cmd/start_relay", `{"id":"bad-seconds","camera_id":"door","seconds":0}`)
	publish(t, b.port, p+"/cmd/start_relay", `{"id":"bad-camera","camera_id":"nobody","seconds":5}`)
	if r := replyTo(t, sub, p+"/cmd/start_relay/reply", "bad-seconds"); r.OK || !strings.Contains(r.Error, "1 to 86400") {
		t.Errorf("start_relay with seconds 0: reply %+v, want ok false naming 1 to 86400", r)
	}
	if r := replyTo(t, sub, p+"/cmd/start_relay/reply", "bad-camera"); r.OK || r.Error == "" {
		t.Errorf("start_relay of an unknown camera: reply %+v, want ok false with an error", r)
	}

	const window = 20 * time.Second
	sent := map[string]time.Time{}
	for _, c := range []struct{ id, cam string }{{"s-door", "door"}, {"s-yard", "yard"}, {"s-gate", "gate"}} {
		seconds := 20
		if c.cam == "gate" {
			seconds = 4
		}
		sent[c.cam] = time.Now()
		publish(t, b.port, p+"/cmd/start_relay", fmt.Sprintf(`{"id":%q,"camera_id":%q,"seconds":%d}`, c.id, c.cam, seconds))
	}
	for _, id := range []string{"door", "yard", "gate"} {
		r := replyTo(t, sub, p+"/cmd/start_relay/reply", "s-"+id)
		until, err := time.Parse(time.RFC3339, r.Until)
		if !r.OK || r.CameraID != id || r.Relay != "on_demand" || err != nil {
			t.Errorf("start_relay %s: reply %+v, want ok, camera_id, relay on_demand and until", id, r)
		}
		want := 20 * time.Second
		if id == "gate" {
			want = 4 * time.Second
		}
		if d := until.Sub(sent[id]); d < want-2*time.Second || d > want+2*time.Second {
			t.Errorf("start_relay %s: until %s is %s after the command, want about %s", id, r.Until, d, want)
		}
	}
	for _, id := range []string{"door", "yard", "gate"} {
		waitFor(t, 5*time.Second, id+": video at the server", func() bool {
			st, _ := flussonic.Stream("gwd-" + id)
			return !st.FirstVideoAt.IsZero()
		})
		st, _ := flussonic.Stream("gwd-" + id)
		took := st.FirstVideoAt.Sub(sent[id])
		t.Logf("%s: first video %s after the command was sent", id, took)
		if took > time.Second {
			t.Errorf("%s: first video %s after start_relay, want within 1 s", id, took)
		}
		if !st.FirstVideoFrameKey {
			t.Errorf("%s: the first frame was not a keyframe with its parameter sets", id)
		}
	}
	waitFor(t, 10*time.Second, "state relaying true", func() bool {
		for _, id := range []string{"door", "yard", "gate"} {
			if relaying, _, _ := relayingState(sub, p, id); !relaying {
				return false
			}
		}
		return true
	})

	// yard: stop_relay ends it early. gate: a second start_relay extends its 4 s to 2 s + 6 s.
	time.Sleep(time.Until(sent["gate"].Add(2 * time.Second)))
	extended := time.Now()
	publish(t, b.port, p+"/cmd/start_relay", `{"id":"s-gate-2","camera_id":"gate","seconds":6}`)
	stopped := time.Now()
	publish(t, b.port, p+"/cmd/stop_relay", `{"id":"x-yard","camera_id":"yard"}`)
	if r := replyTo(t, sub, p+"/cmd/stop_relay/reply", "x-yard"); !r.OK || r.CameraID != "yard" || r.Until != "" {
		t.Errorf("stop_relay: reply %+v, want ok and camera_id without until", r)
	}
	if r := replyTo(t, sub, p+"/cmd/start_relay/reply", "s-gate-2"); !r.OK {
		t.Errorf("second start_relay: reply %+v, want ok", r)
	}
	endsAt := map[string]time.Time{
		"door": sent["door"].Add(window), "yard": stopped, "gate": extended.Add(6 * time.Second),
	}
	waitFor(t, 30*time.Second, "every window over", func() bool {
		for id := range endsAt {
			if st, _ := flussonic.Stream("gwd-" + id); st.Publishing {
				return false
			}
		}
		return true
	})
	time.Sleep(1500 * time.Millisecond)
	for id, end := range endsAt {
		st, _ := flussonic.Stream("gwd-" + id)
		checkWindowEnd(t, id, st, end)
		if relaying, online, _ := relayingState(sub, p, id); relaying || !online {
			t.Errorf("%s: state after the window relaying %v, online %v; want false, true", id, relaying, online)
		}
	}
}

// checkWindowEnd says whether a stream ended within 1 s of its window's end, in one session
// (a window that moved must not make a second publish).
func checkWindowEnd(t *testing.T, id string, st sim.StreamStats, end time.Time) {
	t.Helper()
	late := st.LastFrameAt.Sub(end)
	t.Logf("%s: last frame %s after the window's end; %d publishes, %d frames", id, late, st.Publishes, st.VideoFrames)
	if late > time.Second || late < -time.Second {
		t.Errorf("%s: last frame %s from the window's end, want within 1 s", id, late)
	}
	if st.Publishes != 1 {
		t.Errorf("%s: %d publishes, want one session per window", id, st.Publishes)
	}
}

// motionEvent is the part of a stream_motion_* event (SPEC §5) this test reads.
type motionEvent struct {
	Event    string `json:"event"`
	UTCMs    int64  `json:"utc_ms"`
	MotionID string `json:"motion_id"`
}

// motionEvents are the events of a camera on MQTT, by name.
func motionEvents(sub *subscriber, topic string) map[string]motionEvent {
	got := map[string]motionEvent{}
	for _, m := range sub.all() {
		var e motionEvent
		if m.Topic == topic && json.Unmarshal(m.Payload, &e) == nil {
			got[e.Event] = e
		}
	}
	return got
}

// Acceptance 3 of issue 15: a camera with `relay: motion` (pre_roll 3 s, post_roll 4 s,
// motion.hold 2 s; the session outlasts the first sender report, due 5 s after it starts)
// relayed by `camgate run` from the sim camera (1 s GOPs), an alarm mail from swaks at t.
// Nothing is published before the mail; then the server, placing each frame in time by
// camgate's sender reports as a recorder does, gets frames from the keyframe at or before
// t − pre_roll (at most one GOP earlier) until the episode's stop plus post_roll, within 1 s,
// in one session with timestamps running on one frame at a time.
func TestRunRelaysMotionFromPreRollToPostRoll(t *testing.T) {
	const (
		preRoll  = 3 * time.Second
		postRoll = 4 * time.Second
		gop      = time.Second // the sim clip's
	)
	swaks := needTool(t, "swaks", "swaks")
	b := startBroker(t, freePort(t), "")
	const p = "camgate/gwv"
	sub := subscribe(t, b.port, "", p+"/#")
	camURL := clipCamera(t)
	flussonic, _ := mediaServer(t, "127.0.0.1:0")
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	runCamgate(t, relayModeConfig("gwv", flussonic.URL(), b.url(), smtpAddr, "motion: {hold: 2s}\n",
		fmt.Sprintf("  - {id: porch, url: '%s', relay: motion, pre_roll: 3s, post_roll: 4s}\n", camURL)))
	waitFor(t, 20*time.Second, "the camera online, not relaying", func() bool {
		relaying, online, _ := relayingState(sub, p, "porch")
		return online && !relaying
	})
	time.Sleep(preRoll + 2*gop) // the pre-roll fills; nothing may leak meanwhile
	if st, ok := flussonic.Stream("gwv-porch"); ok {
		t.Fatalf("published before any motion: %+v", st)
	}

	host, port, _ := strings.Cut(smtpAddr, ":")
	mailAt := time.Now()
	out, err := exec.Command(swaks, "--server", host, "--port", port, "--to", "porch@gw", "--from", "camera@lan",
		"--header", "Subject: Motion Detection Alarm", "--body", "Alarm event: Motion Detection").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	mailed := time.Now()
	events := p + "/cameras/porch/events"
	waitFor(t, 20*time.Second, "motion started and stopped on MQTT", func() bool {
		_, ok := motionEvents(sub, events)["stream_motion_stopped"]
		return ok
	})
	waitFor(t, 10*time.Second, "the publish over", func() bool {
		st, ok := flussonic.Stream("gwv-porch")
		return ok && !st.Publishing
	})
	evs := motionEvents(sub, events)
	start := time.UnixMilli(evs["stream_motion_started"].UTCMs)
	stop := time.UnixMilli(evs["stream_motion_stopped"].UTCMs)
	if start.Before(mailAt.Add(-time.Second)) || start.After(mailed.Add(time.Second)) {
		t.Fatalf("motion started at %v, the mail went from %v to %v", start, mailAt, mailed)
	}

	st, _ := flussonic.Stream("gwv-porch")
	frames := flussonic.VideoFrames("gwv-porch")
	if len(frames) == 0 || frames[0].NTP.IsZero() || frames[len(frames)-1].NTP.IsZero() {
		t.Fatalf("%d frames, not all placed in time by sender reports: %+v", len(frames), st)
	}
	first, last := frames[0], frames[len(frames)-1]
	t.Logf("motion %s .. %s; frames %s .. %s (pre-roll %s, post-roll %s); first arrived %s after the start; %d frames",
		start.Format("15:04:05.000"), stop.Format("15:04:05.000"),
		first.NTP.Format("15:04:05.000"), last.NTP.Format("15:04:05.000"),
		start.Sub(first.NTP), last.NTP.Sub(stop), first.Arrived.Sub(start), len(frames))
	if !first.Key || !st.FirstVideoFrameKey {
		t.Error("the first frame is not a keyframe with its parameter sets")
	}
	const tick = 50 * time.Millisecond // NTP is in ms at the event, frames are 40 ms apart
	if from := start.Add(-preRoll); first.NTP.After(from.Add(tick)) || first.NTP.Before(from.Add(-gop-tick)) {
		t.Errorf("the first frame is %s before the motion, want pre_roll %s to pre_roll + one GOP",
			start.Sub(first.NTP), preRoll)
	}
	if end := stop.Add(postRoll); last.NTP.Before(end.Add(-5*tick)) || last.NTP.After(end.Add(time.Second)) {
		t.Errorf("the last frame is %s after the motion stopped, want post_roll %s (within 1 s)",
			last.NTP.Sub(stop), postRoll)
	}
	if d := first.Arrived.Sub(start); d > time.Second {
		t.Errorf("the pre-roll reached the server %s after the alarm, want within 1 s", d)
	}
	if st.Publishes != 1 || st.VideoTSBackwards != 0 || st.VideoTSMaxStep != 3600 {
		t.Errorf("%d publishes, %d frames back in time, largest step %d; want one session stepping 3600 (25 fps)",
			st.Publishes, st.VideoTSBackwards, st.VideoTSMaxStep)
	}
	waitFor(t, 5*time.Second, "state relaying false, online after the episode", func() bool {
		relaying, online, _ := relayingState(sub, p, "porch")
		return !relaying && online
	})
	t.Logf("bytes at the server for one episode of %s: %d", last.NTP.Sub(first.NTP).Round(100*time.Millisecond), st.Bytes)
}
