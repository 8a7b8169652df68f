package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// Acceptance 1 of issue 6: swaks as the camera, AUTH LOGIN and AUTH PLAIN, a JPEG attached,
// subject "Motion Detection Alarm": one started event at the HTTP sink and on MQTT, a stopped one
// after motion.hold, the JPEG retained on the snapshot topic. A wrong password gets 535 and no event.
func TestRunTurnsAlarmMailIntoMotionEvents(t *testing.T) {
	swaks := needTool(t, "swaks", "swaks")
	b := startBroker(t, freePort(t), "")
	sub := subscribe(t, b.port, "", "camgate/gwm/#")
	// The sink takes events only with its API key, which the config names from the environment;
	// Central takes episodes only with its Bearer token.
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0", Header: http.Header{"X-Api-Key": {"sc-key-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(t.Context(), t, "sink", sink.Run)
	central, err := sim.NewEpisodeSink(sim.EpisodeSinkConfig{Header: http.Header{"Authorization": {"Bearer central-t0k"}}})
	if err != nil {
		t.Fatal(err)
	}
	testtool.Go(t.Context(), t, "central", central.Run)
	t.Setenv("CAMGATE_E2E_SC_KEY", "sc-key-1")
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := uplinkConfig("gwm", b.url(), smtpAddr, []string{
		fmt.Sprintf("{url: '%s', server: %s, headers: {X-Api-Key: '${CAMGATE_E2E_SC_KEY}'}}", sink.URL(), e2eStreamer),
		fmt.Sprintf("{url: '%s', format: episodes, headers: {Authorization: 'Bearer central-t0k'}}", central.URL()),
	}, "  publish: 'rtsp://fl.example.com/{stream_name}?password=pub-secret'\nmotion: {hold: 2s}\n",
		disabledCamera("porch"), disabledCamera("yard"))
	cfg = strings.Replace(cfg, fmt.Sprintf("smtp: {listen: '%s'}", smtpAddr),
		fmt.Sprintf("smtp: {listen: '%s', username: alarm, password: 'mail-secret'}", smtpAddr), 1)
	runCamgate(t, cfg)
	waitFor(t, 10*time.Second, "the mail server", func() bool { _, err := netDialAddr(smtpAddr); return err == nil })

	jpeg := filepath.Join(t.TempDir(), "snap.jpg")
	ff := needTool(t, "ffmpeg", "ffmpeg")
	if out, err := exec.Command(ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180", "-frames:v", "1",
		jpeg).CombinedOutput(); err != nil {
		t.Fatalf("making a JPEG: %v: %s", err, out)
	}
	jpegBytes, _ := os.ReadFile(jpeg)
	host, port, _ := strings.Cut(smtpAddr, ":")
	mail := func(rcpt, auth, password string) (string, error) {
		out, err := exec.Command(swaks, "--server", host, "--port", port, "--to", rcpt, "--from", "camera@lan",
			"--auth", auth, "--auth-user", "alarm", "--auth-password", password,
			"--header", "Subject: Motion Detection Alarm", "--body", "Alarm event: Motion Detection",
			"--attach-type", "image/jpeg", "--attach-name", "snap.jpg", "--attach", "@"+jpeg).CombinedOutput()
		return string(out), err
	}

	// A wrong password is refused with 535 and makes nothing.
	if out, err := mail("yard@gw", "LOGIN", "wrong"); err == nil || !strings.Contains(out, "535") {
		t.Fatalf("wrong password: want 535, got err=%v:\n%s", err, out)
	}
	for _, auth := range []string{"LOGIN", "PLAIN"} {
		if out, err := mail("porch@gw", auth, "mail-secret"); err != nil {
			t.Fatalf("AUTH %s: %v:\n%s", auth, err, out)
		}
	}
	// Two alarms inside motion.hold are one episode: one started, then one stopped after the hold.
	waitFor(t, 15*time.Second, "started and stopped at the sink", func() bool {
		return countEvents(sink.Events(), "stream_motion_stopped") >= 1
	})
	evs := sink.Events()
	if n := countEvents(evs, "stream_motion_started"); n != 1 {
		t.Errorf("sink got %d started events, want 1 for one episode: %s", n, evs)
	}
	var started, stopped map[string]any
	for _, e := range evs {
		var m map[string]any
		if err := json.Unmarshal(e, &m); err != nil {
			t.Fatalf("event %s: %v", e, err)
		}
		switch m["event"] {
		case "stream_motion_started":
			started = m
		case "stream_motion_stopped":
			stopped = m
		}
	}
	// The stand-in checked every field's name, type and unit (sim.CheckEvent); what is left is
	// what only this test knows: the configured server, the stream and how long it lasted.
	if started["media"] != "gwm-porch" || started["server"] != e2eStreamer || started["motion_id"] == "" ||
		started["motion_id"] != stopped["motion_id"] {
		t.Errorf("started %v / stopped %v: want media gwm-porch, server %s, one motion_id", started, stopped, e2eStreamer)
	}
	if d, _ := stopped["duration"].(float64); d < 2 || d > 30 {
		t.Errorf("stopped duration %v, want whole seconds of at least motion.hold (2)", stopped["duration"])
	}
	if a, b := started["event_id"].(float64), stopped["event_id"].(float64); !(a > 0 && b > a) {
		t.Errorf("event_id %v then %v, want increasing integers", started["event_id"], stopped["event_id"])
	}

	// The same episode reaches Central: opened, then closed, both with the mail's JPEG as preview.
	waitFor(t, 15*time.Second, "the episode opened and closed at Central", func() bool {
		puts := central.Puts()
		return len(puts) >= 2 && puts[len(puts)-1].ClosedAt != nil
	})
	puts := central.Puts()
	if len(puts) != 2 || puts[0].ClosedAt != nil || puts[0].EpisodeID != puts[1].EpisodeID ||
		puts[0].Media != "gwm-porch" {
		t.Errorf("episodes PUT %+v, want one episode of gwm-porch opened then closed", puts)
	} else {
		if *puts[1].ClosedAt < puts[1].OpenedAt+2000 {
			t.Errorf("closed_at %d is not a hold (2 s) after opened_at %d", *puts[1].ClosedAt, puts[1].OpenedAt)
		}
		for i, p := range puts {
			if !bytes.Equal(p.Preview, jpegBytes) {
				t.Errorf("PUT %d: preview of %d bytes, want the mail's %d-byte JPEG (it fits 64 KB as it is)",
					i, len(p.Preview), len(jpegBytes))
			}
		}
	}
	if md, _ := started["motion_data"].(string); !strings.Contains(md, "Motion Detection Alarm") {
		t.Errorf("motion_data %q does not say what the camera said", md)
	}

	waitFor(t, 10*time.Second, "the events on MQTT", func() bool {
		n := 0
		for _, m := range sub.all() {
			if m.Topic == "camgate/gwm/cameras/porch/events" {
				n++
			}
		}
		return n >= 2
	})
	snap := retained(t, b.port, "camgate/gwm/cameras/porch/snapshot")["camgate/gwm/cameras/porch/snapshot"]
	if !bytes.Equal(snap, jpegBytes) {
		t.Errorf("retained snapshot is %d bytes, want the %d-byte JPEG the camera sent", len(snap), len(jpegBytes))
	}
	for _, m := range sub.all() {
		if m.Topic == "camgate/gwm/cameras/yard/events" {
			t.Errorf("the refused mail made an event: %s", m.Payload)
		}
	}
}

func countEvents(evs []json.RawMessage, name string) int {
	n := 0
	for _, e := range evs {
		if bytes.Contains(e, []byte(`"event":"`+name+`"`)) {
			n++
		}
	}
	return n
}
