package agent

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camgate/camgate/internal/sim"
	"github.com/camgate/camgate/internal/testtool"
)

// Issue 13 acceptance 8: without an SMTP password, a mail counts for a camera only when it
// comes from that camera's IP. swaks on 127.0.0.2 is another LAN host naming the camera at
// 127.0.0.1 by its recipient: no motion reaches the event sink, while the camera's own mail
// does. With the SMTP password set, a mail that authenticated may name any camera.
func TestMailFromAnotherHostStartsNoMotion(t *testing.T) {
	swaks := testtool.Need(t, "swaks", "swaks")
	tests := []struct {
		name       string
		smtpAuth   string // the smtp keys beyond listen
		from       string // swaks --local-interface
		swaksAuth  []string
		wantMotion bool
	}{
		{"impostor without credentials", "", "127.0.0.2", nil, false},
		{"the camera itself", "", "127.0.0.1", nil, true},
		{"another host with the SMTP password", ", username: alarm, password: 'mail-secret'", "127.0.0.2",
			[]string{"--auth", "LOGIN", "--auth-user", "alarm", "--auth-password", "mail-secret"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			testtool.Go(ctx, t, "sink", sink.Run)
			smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			d := startDaemon(t, smtpDaemonConfig("", smtpAddr, tt.smtpAuth, sink.URL()))
			host, port, _ := strings.Cut(smtpAddr, ":")
			args := append([]string{"--server", host, "--port", port, "--local-interface", tt.from, "--timeout", "30",
				"--to", "porch@gw", "--from", "camera@lan", "--header", "Subject: Motion Detection Alarm",
				"--body", "Alarm event: Motion Detection"}, tt.swaksAuth...)
			out, err := exec.Command(swaks, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("swaks: %v\n%s", err, out)
			}
			// Either way the mail is taken (250): an impostor learns nothing from the answer.
			if !strings.Contains(string(out), "<-  250 2.0.0 OK") || strings.Contains(string(out), "<** ") {
				t.Fatalf("want every step answered 2xx:\n%s", out)
			}
			started := func() int { return countSinkEvents(sink, "stream_motion_started") }
			if tt.wantMotion {
				waitFor(t, 15*time.Second, "motion at the event sink", func() bool { return started() == 1 })
				return
			}
			// The agent has handled the mail once it logged why it dropped it; the sink stays empty
			// through a motion.hold and a retry's time after that.
			waitFor(t, 10*time.Second, "the drop logged", func() bool {
				return strings.Contains(d.logs.String(), "alarm mail dropped")
			})
			time.Sleep(3 * time.Second)
			if n := started(); n != 0 {
				t.Fatalf("an impostor's mail started motion: %d events at the sink: %s", n, sink.Events())
			}
			if !strings.Contains(d.logs.String(), "ip=127.0.0.2") {
				t.Errorf("the drop's log line does not name the sender:\n%s", tail(d.logs.String(), 10))
			}
		})
	}
}

func countSinkEvents(s *sim.EventSink, kind string) int {
	n := 0
	for _, e := range s.Events() {
		if strings.Contains(string(e), `"event":"`+kind+`"`) {
			n++
		}
	}
	return n
}
