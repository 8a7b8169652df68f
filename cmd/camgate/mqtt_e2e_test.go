package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// uplinkConfig is a camgate.yaml with MQTT, the alarm mail server, optional event sinks, and
// cameras that are registered but not relayed.
func uplinkConfig(gateway, mqttURL, smtpAddr string, sinks []string, extra string, cameras ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway_id: %s\ndata_dir: DATA_DIR\nlog: {level: debug}\nweb: {listen: \"\"}\n", gateway)
	fmt.Fprintf(&b, "smtp: {listen: '%s'}\ndiscovery: {onvif: false, mdns: false}\n", smtpAddr)
	fmt.Fprintf(&b, "mqtt: {url: '%s', telemetry_interval: 1s}\n", mqttURL)
	b.WriteString("flussonic:\n  events:\n")
	for _, s := range sinks {
		if strings.HasPrefix(s, "{") { // a whole sink, as YAML
			fmt.Fprintf(&b, "    - %s\n", s)
			continue
		}
		fmt.Fprintf(&b, "    - {url: '%s', format: event_sink, server: %s}\n", s, e2eStreamer)
	}
	b.WriteString(extra)
	b.WriteString("cameras:\n")
	for _, c := range cameras {
		b.WriteString(c)
	}
	return b.String()
}

// e2eStreamer is the "server" the e2e tests' sinks give their events: the streamer of SPEC §5.
const e2eStreamer = "streamer1.example.com"

func disabledCamera(id string) string {
	return fmt.Sprintf("  - {id: %s, url: 'rtsp://127.0.0.1:9/%s', enabled: false, password: 'cam-secret-%s'}\n",
		id, id, id)
}

var tenDigits = regexp.MustCompile(`^[1-9][0-9]{9}$`)

// Acceptance 1 of issue 4: registration, its clearing, and the Last Will.
func TestRunRegistersCamerasOnMQTT(t *testing.T) {
	b := startBroker(t, freePort(t), "")
	sub := subscribe(t, b.port, "", "camgate/gwr/#")
	cfg := uplinkConfig("gwr", b.url(), "", nil, "", disabledCamera("cam1"), disabledCamera("cam2"))
	daemon, path := runCamgate(t, cfg)

	const p = "camgate/gwr"
	waitFor(t, 20*time.Second, "retained config and state of both cameras and status online", func() bool {
		r := retained(t, b.port, p+"/#")
		return len(r[p+"/cameras/cam1/config"]) > 0 && len(r[p+"/cameras/cam1/state"]) > 0 &&
			len(r[p+"/cameras/cam2/config"]) > 0 && strings.Contains(string(r[p+"/status"]), `"online"`)
	})
	r := retained(t, b.port, p+"/#")
	var reg map[string]any
	if err := json.Unmarshal(r[p+"/cameras/cam1/config"], &reg); err != nil {
		t.Fatalf("config payload: %v", err)
	}
	for _, k := range []string{"camera_id", "agent_id", "name", "stream_name", "publish_url", "play_url", "vendor",
		"model", "serial", "mac", "ip", "onvif", "snapshot", "ptz", "audio", "motion_sources", "quality", "uplink_bps",
		"ts"} {
		if _, ok := reg[k]; !ok {
			t.Errorf("registration lacks %q: %s", k, r[p+"/cameras/cam1/config"])
		}
	}
	if id, _ := reg["agent_id"].(string); !tenDigits.MatchString(id) {
		t.Errorf("agent_id %q is not 10 digits", reg["agent_id"])
	}
	// A camera not relayed is registered as on its main stream, with nothing measured (issue 15).
	if reg["quality"] != "main" || reg["uplink_bps"] != 0.0 {
		t.Errorf("registration of a disabled camera: quality %v, uplink_bps %v; want main, 0", reg["quality"],
			reg["uplink_bps"])
	}
	if reg["camera_id"] != "cam1" || reg["stream_name"] != "gwr-cam1" {
		t.Errorf("registration: %s", r[p+"/cameras/cam1/config"])
	}
	var state map[string]any
	if err := json.Unmarshal(r[p+"/cameras/cam1/state"], &state); err != nil {
		t.Errorf("state is not JSON: %v: %s", err, r[p+"/cameras/cam1/state"])
	}
	for _, k := range []string{"online", "relaying", "codec", "width", "height", "fps", "bitrate_bps", "reconnects",
		"last_error", "ts"} {
		if _, ok := state[k]; !ok {
			t.Errorf("state lacks %q: %s", k, r[p+"/cameras/cam1/state"])
		}
	}

	// A camera added by command is registered; removed by command, it is cleared.
	publish(t, b.port, p+"/cmd/add_camera", `{"id":"r1","url":"rtsp://viewer:url-secret@127.0.0.1:9/added",`+
		`"password":"cmd-secret","enabled":false,"name":"Garage"}`)
	waitFor(t, 10*time.Second, "the add_camera reply",
		func() bool { _, ok := sub.last(p + "/cmd/add_camera/reply"); return ok })
	reply, _ := sub.last(p + "/cmd/add_camera/reply")
	var rep struct {
		ID       string `json:"id"`
		OK       bool   `json:"ok"`
		CameraID string `json:"camera_id"`
		AgentID  string `json:"agent_id"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal(reply.Payload, &rep); err != nil {
		t.Fatalf("add_camera reply is not JSON: %v: %s", err, reply.Payload)
	}
	if !rep.OK || rep.ID != "r1" || rep.CameraID == "" || !tenDigits.MatchString(rep.AgentID) {
		t.Fatalf("add_camera reply: %s", reply.Payload)
	}
	added := p + "/cameras/" + rep.CameraID
	waitFor(t, 10*time.Second, "the added camera's registration",
		func() bool { return len(retained(t, b.port, added+"/config")[added+"/config"]) > 0 })
	publish(t, b.port, p+"/cmd/remove_camera", fmt.Sprintf(`{"id":"r2","camera_id":"%s"}`, rep.CameraID))
	waitFor(t, 10*time.Second, "the added camera's topics cleared", func() bool {
		r := retained(t, b.port, added+"/#")
		return len(r) == 0
	})

	// Removing a camera from the file (SIGHUP) clears its retained config and state.
	cfg = uplinkConfig("gwr", b.url(), "", nil, "", disabledCamera("cam2"))
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(cfg, "DATA_DIR", dirOf(path))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := daemon.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "cam1's topics cleared",
		func() bool { return len(retained(t, b.port, p+"/cameras/cam1/#")) == 0 })
	if len(retained(t, b.port, p+"/cameras/cam2/config")) == 0 {
		t.Error("cam2's registration went too")
	}

	// Bad commands get a reply that says why; none stops the next good one.
	for _, bad := range []struct{ topic, payload, want string }{
		{"cmd/add_camera", `{"id":"b1","url":"ftp://x/"}`, "url: scheme must be"},
		{"cmd/set_camera", `{"id":"b2","camera_id":"cam2","nmae":"x"}`, "unknown field"},
		{"cmd/remove_camera", `{"id":"b3","camera_id":"cam2"}`, "defined in the config file"},
		{"cmd/fly", `{"id":"b4"}`, "unknown command"},
		{"cmd/reboot_relay", `{"id":"b5"}`, "camera_id is required"},
	} {
		publish(t, b.port, p+"/"+bad.topic, bad.payload)
		waitFor(t, 10*time.Second, "reply to "+bad.topic, func() bool {
			m, ok := sub.last(p + "/" + bad.topic + "/reply")
			return ok && strings.Contains(string(m.Payload), bad.want)
		})
	}

	// Nothing camgate sent ever carried a secret (the commands are the test's own words).
	for _, m := range sub.all() {
		if strings.Contains(m.Topic, "/cmd/") && !strings.HasSuffix(m.Topic, "/reply") {
			continue
		}
		for _, secret := range []string{"cam-secret", "cmd-secret", "url-secret"} {
			if strings.Contains(string(m.Payload), secret) {
				t.Errorf("%s carried a password: %s", m.Topic, m.Payload)
			}
		}
	}

	// Killed without a goodbye, camgate is reported offline by the broker's Last Will.
	if err := daemon.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "status offline via the Last Will", func() bool {
		return strings.Contains(string(retained(t, b.port, p+"/status")[p+"/status"]), `"offline"`)
	})
}

func dirOf(path string) string { return path[:strings.LastIndex(path, "/")] }

// Acceptance 2 of issue 4 (and 5 of issue 6): with the uplink down, 1,000 motion events are
// produced from alarm mails, camgate is killed and restarted, the uplink comes back: every event
// arrives, in the order produced.
func TestRunDeliversQueuedEventsAfterOutageAndKill(t *testing.T) {
	const n = 1000
	cams := make([]string, n)
	rcpts := make([]string, n)
	for i := range cams {
		id := fmt.Sprintf("cam%04d", i)
		cams[i] = disabledCamera(id)
		rcpts[i] = id + "@camgate.lan"
	}
	hold := "motion: {hold: 10m}\n"

	t.Run("MQTT broker down", func(t *testing.T) {
		port := freePort(t)
		b := startBroker(t, port, "")
		sub := subscribe(t, port, "e2e-events", "camgate/gwo/cameras/+/events")
		smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg := uplinkConfig("gwo", b.url(), smtpAddr, nil, hold, cams...)
		daemon, path := runCamgate(t, cfg)
		waitFor(t, 30*time.Second, "camgate online", func() bool {
			return strings.Contains(string(retained(t, port, "camgate/gwo/status")["camgate/gwo/status"]), "online")
		})
		// The subscriber's persistent session must exist before the outage, or what is sent
		// while it reconnects is not kept for it.
		waitFor(t, 10*time.Second, "the subscriber's session", func() bool {
			publish(t, port, "camgate/gwo/cameras/probe/events", "{}")
			_, ok := sub.last("camgate/gwo/cameras/probe/events")
			return ok
		})
		b.stop(t)
		waitFor(t, 10*time.Second, "the mail server", func() bool { _, err := netDialAddr(smtpAddr); return err == nil })
		sendAlarmMails(t, smtpAddr, rcpts)
		if err := daemon.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-daemon.done

		start(t, camgateBin, "run", "-c", path)
		time.Sleep(time.Second)
		startBroker(t, port, b.dir)
		checkStartedInOrder(t, n, func() [][]byte {
			var out [][]byte
			for _, m := range sub.all() {
				out = append(out, m.Payload)
			}
			return out
		})
	})

	t.Run("event sink answering 503", func(t *testing.T) {
		sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		testtool.Go(t.Context(), t, "sink", sink.Run)
		sink.SetStatus(503)
		smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg := uplinkConfig("gwh", "", smtpAddr, []string{sink.URL()}, hold, cams...)
		cfg = strings.Replace(cfg, "mqtt: {url: '', telemetry_interval: 1s}\n", "", 1)
		daemon, path := runCamgate(t, cfg)
		waitFor(t, 10*time.Second, "the mail server", func() bool { _, err := netDialAddr(smtpAddr); return err == nil })
		sendAlarmMails(t, smtpAddr, rcpts)
		if err := daemon.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-daemon.done
		start(t, camgateBin, "run", "-c", path)
		time.Sleep(2 * time.Second)
		if got := len(sink.Events()); got != 0 {
			t.Fatalf("the sink recorded %d events while answering 503", got)
		}
		sink.SetStatus(200)
		checkStartedInOrder(t, n, func() [][]byte {
			var out [][]byte
			for _, e := range sink.Events() {
				out = append(out, e)
			}
			return out
		})
	})
}

// checkStartedInOrder waits for n distinct motion-started events, one per camera cam0000.., and
// checks that their first deliveries came in the order the mails were sent.
func checkStartedInOrder(t *testing.T, n int, got func() [][]byte) {
	t.Helper()
	var order []string
	dups := 0
	deadline := time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d distinct started events of %d (%d messages in all)", len(order), n, len(got()))
		}
		if collectStarted(got(), &order, &dups) >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d distinct started events, %d duplicates (at-least-once)", len(order), dups)
	if len(order) != n {
		t.Fatalf("got %d distinct started events, want %d", len(order), n)
	}
	for i, media := range order {
		if !strings.HasSuffix(media, fmt.Sprintf("-cam%04d", i)) {
			t.Fatalf("event %d is for %s, want cam%04d: out of order", i, media, i)
		}
	}
}

// collectStarted reads the started events out of payloads: their media in first-delivery order,
// and how many were duplicates of one already delivered.
func collectStarted(payloads [][]byte, order *[]string, dups *int) int {
	{
		seen := map[int64]bool{}
		*order, *dups = (*order)[:0], 0
		for _, p := range payloads {
			var ev struct {
				Event   string `json:"event"`
				EventID int64  `json:"event_id"`
				Media   string `json:"media"`
			}
			if json.Unmarshal(p, &ev) != nil || ev.Event != "stream_motion_started" {
				continue
			}
			if seen[ev.EventID] {
				*dups++
				continue
			}
			seen[ev.EventID] = true
			*order = append(*order, ev.Media)
		}
		return len(*order)
	}
}
