package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/agent/web"
	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// smtpDaemonConfig is a daemon with the page, the SMTP server (smtpKeys beyond listen), an
// event sink and one camera at 127.0.0.1; dataDir "" is a fresh one.
func smtpDaemonConfig(dataDir, smtpAddr, smtpKeys, sinkURL string) string {
	if dataDir == "" {
		dataDir = "DATA_DIR"
	}
	return fmt.Sprintf(`gateway_id: gwpass
data_dir: %s
web: {listen: "127.0.0.1:0"}
smtp: {listen: '%s'%s}
discovery: {onvif: false, mdns: false}
motion: {hold: 1s}
flussonic:
  publish: 'rtsp://127.0.0.1:9/{stream_name}'
  events: [{url: '%s'}]
cameras:
  - {id: porch, url: 'rtsp://127.0.0.1:9/porch', enabled: false}
`, dataDir, smtpAddr, smtpKeys, sinkURL)
}

// Issue 13, "SMTP by default tells cameras apart": a fresh install generates an SMTP password,
// keeps it in the store (not the config file) across a restart, and shows it in /api/status.
// A camera that logs in with it (swaks, from another address than the camera's) starts motion;
// a wrong password gets 535; a mail without AUTH still counts only from the camera's own IP.
// An smtp.username in the config wins: the generated password is then neither shown nor taken.
func TestGeneratedSMTPPassword(t *testing.T) {
	swaks := testtool.Need(t, "swaks", "swaks")
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = sink.Run(ctx) }()
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	host, port, _ := strings.Cut(smtpAddr, ":")
	mail := func(from string, auth ...string) (string, error) {
		args := append([]string{"--server", host, "--port", port, "--local-interface", from, "--timeout", "30",
			"--to", "porch@gw", "--from", "camera@lan", "--header", "Subject: Motion Detection Alarm",
			"--body", "Alarm event: Motion Detection"}, auth...)
		out, err := exec.Command(swaks, args...).CombinedOutput()
		return string(out), err
	}
	started := func() int { return countSinkEvents(sink, "stream_motion_started") }

	d := startDaemon(t, smtpDaemonConfig("", smtpAddr, "", sink.URL()))
	var st web.GatewayStatus
	if _, err := loginPage(t, d).do("GET", "/api/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	login := st.SMTP
	if login == nil || !login.Generated || login.Username != generatedSMTPUsername || len(login.Password) != 16 {
		t.Fatalf("status smtp = %+v, want the generated login with a 16-character password", login)
	}
	if cfg, _ := os.ReadFile(d.path); strings.Contains(string(cfg), login.Password) {
		t.Error("the generated password was written into the config file")
	}
	if strings.Contains(d.logs.String(), login.Password) {
		t.Error("the generated password was logged")
	}

	// A wrong password is refused and starts nothing.
	out, err := mail("127.0.0.2", "--auth", "LOGIN", "--auth-user", login.Username, "--auth-password", "guess")
	if err == nil || !strings.Contains(out, "535 ") {
		t.Fatalf("a wrong password: want 535, got %v\n%s", err, out)
	}
	// Without AUTH from another host: taken (250) but dropped, as before.
	if out, err := mail("127.0.0.2"); err != nil {
		t.Fatalf("swaks without AUTH: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the unauthenticated mail dropped", func() bool {
		return strings.Contains(d.logs.String(), "alarm mail dropped")
	})
	// With the generated password from another host: the camera named in the mail has motion.
	if out, err := mail("127.0.0.2", "--auth", "PLAIN", "--auth-user", login.Username,
		"--auth-password", login.Password); err != nil || !strings.Contains(out, "235 ") {
		t.Fatalf("the generated password: %v\n%s", err, out)
	}
	waitFor(t, 15*time.Second, "motion at the event sink", func() bool { return started() == 1 })

	// A restart keeps the password: it is in the store.
	dataDir := d.dir
	d.stop(t)
	d2 := startDaemon(t, smtpDaemonConfig(dataDir, smtpAddr, "", sink.URL()))
	if again := (webBackend{d2.a}).Status(ctx).SMTP; again == nil || again.Password != login.Password {
		t.Fatalf("after a restart: %+v, want the same password %q", again, login.Password)
	}
	d2.stop(t)

	// Configured credentials win: the generated password is neither shown nor taken.
	d3 := startDaemon(t, smtpDaemonConfig(dataDir, smtpAddr, ", username: alarm, password: 'mail-secret'", sink.URL()))
	if got := (webBackend{d3.a}).Status(ctx).SMTP; got == nil || got.Generated || got.Username != "alarm" ||
		got.Password != "" {
		t.Fatalf("with smtp.username set: %+v, want username alarm, no password, not generated", got)
	}
	if out, err := mail("127.0.0.1", "--auth", "LOGIN", "--auth-user", login.Username,
		"--auth-password", login.Password); err == nil || !strings.Contains(out, "535 ") {
		t.Fatalf("the generated password against a configured login: want 535, got %v\n%s", err, out)
	}
}

// The SMTP server checks the login it started with: a reload that changes smtp.username or
// password says it waits for the next start instead of seeming to take it.
func TestReloadOfSMTPLoginWarns(t *testing.T) {
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, smtpDaemonConfig("", smtpAddr, "", "http://127.0.0.1:9/events"))
	d.writeConfig(t, smtpDaemonConfig(d.dir, smtpAddr, ", username: alarm, password: 'mail-secret'",
		"http://127.0.0.1:9/events"))
	d.reload <- struct{}{}
	waitFor(t, 15*time.Second, "the reload's warning", func() bool {
		return strings.Contains(d.logs.String(), `key=smtp.username/password`)
	})
}
